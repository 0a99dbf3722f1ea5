"""`compare`: several models analysed on the same images, side by side, and groups of seeds against each other.

    comparison, files = spikescope.compare(["runs/baseline/checkpoint.pt", "runs/fsta/checkpoint.pt"])
    comparison, files = spikescope.compare(groups={"baseline": [...seeds...], "fsta": [...seeds...]})

Every model is analysed exactly as `analyze` would analyse it alone (same code, same images; each
model normalises them as it was trained), so its rows in `comparison.csv` are its `layers.csv`.
Models form groups (a lone model is a group of one); the first group is the reference that every
other one is compared with: per layer and in total, the change of the group mean, and across
seeds a paired test (seed i of one group against seed i of the reference).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from . import distributed
from .analyze import AnalysisResult
from .errors import SpikescopeError
from .groupstats import paired_difference, summarize
from .data import make_loader
from .lockstep import cross_model_cka
from .pipeline import analyze_file, model_and_test_images
from .report.folder import GENERIC_STEM, check_output_folder

LAYER_METRICS = ("firing_rate", "silent_fraction", "axis_OI", "wedge_OI", "spike_cosine_mean_off_diagonal",
                 "spectral_cosine_ac_mean_off_diagonal", "cka_mean_off_diagonal", "membrane_mean", "membrane_sd",
                 "near_threshold_share", "reset_share")
TOTAL_METRICS = ("accuracy", "firing_rate", "sops_per_image", "macs_per_image", "fsta_macs_per_image",
                 "energy_pj_per_image", "energy_pj_per_image_without_fsta")
DEFINITIONS = {
    "firing_rate (total)": "spikes / (T x samples x neurons) pooled over every spiking layer",
    "macs_per_image": "multiply-accumulates of analog-fed layers other than FSTA (the encoding layer, ...)",
    "fsta_macs_per_image": "FSTA's own multiply-accumulates (DCT, fusion, gates)",
    "energy_pj_per_image_without_fsta": "energy per image minus E_MAC x FSTA's MACs: what the synaptic layers cost",
    "change": "group mean minus the reference group's mean; in percent of the reference mean",
    "ci95": "95% confidence interval of a mean over seeds (Student's t), or of the mean paired difference",
    "cka": "linear CKA between every layer of the reference group's first model and every layer of another model, "
           "on the same images: features are each channel's spikes averaged over positions and timesteps, "
           "centred over the images",
    "p_value": "two-sided paired t-test over seeds (seed i of a group against seed i of the reference); "
               "needs at least two seeds per group",
}


def model_totals(result: AnalysisResult) -> dict[str, float]:
    """Accuracy, pooled firing rate, SOPs, MACs (FSTA's apart) and energy per image of one analysis."""
    layers = result.layers[result.layers["output"] != "analog"]
    firing = float(layers["spikes"].sum() / (layers["T"] * layers["samples"] * layers["neurons"]).sum())
    energy = result.energy
    fsta = energy["kind"] == "fsta" if len(energy) else pd.Series(dtype=bool)
    fsta_macs = float(energy.loc[fsta, "macs_per_image"].sum()) if len(energy) else 0.0
    totals = result.energy_totals()
    e_mac = result.info.get("energy_pj", {}).get("mac", float("nan"))
    accuracy = result.info.get("accuracy")
    return {"accuracy": float("nan") if accuracy is None else accuracy, "firing_rate": firing,
            "sops_per_image": totals["sops_per_image"], "macs_per_image": totals["macs_per_image"] - fsta_macs,
            "fsta_macs_per_image": fsta_macs, "energy_pj_per_image": totals["energy_pj_per_image"],
            "energy_pj_per_image_without_fsta": totals["energy_pj_per_image"] - e_mac * fsta_macs}


@dataclass
class Comparison:
    """Models analysed on the same images. `groups` maps each group to its models' labels (in seed order);
    `results[label]` is the model's `AnalysisResult` and `meta[label]` what it is (checkpoint, architecture)."""

    groups: dict[str, list[str]]
    results: dict[str, AnalysisResult]
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    cka: dict[str, dict[str, Any]] = field(default_factory=dict)  # per model but the reference: see `compare`

    @property
    def reference(self) -> str:
        return next(iter(self.groups))

    def group_of(self, label: str) -> str:
        return next(group for group, members in self.groups.items() if label in members)

    def layers(self) -> pd.DataFrame:
        """Long format: one row per model and layer, `model` and `group` then the columns of `layers.csv`."""
        frames = [result.layers.assign(model=label, group=self.group_of(label))
                  for label, result in self.results.items()]
        table = pd.concat(frames, ignore_index=True)
        return table[["model", "group", *[c for c in table.columns if c not in ("model", "group")]]]

    def totals(self) -> pd.DataFrame:
        """One row per model: `model`, `group` and `TOTAL_METRICS`."""
        return pd.DataFrame([{"model": label, "group": self.group_of(label), **model_totals(result)}
                             for label, result in self.results.items()])

    def _per_group(self, table: pd.DataFrame, metric: str, group: str, layer: str | None = None) -> list[float]:
        rows = table[table["group"] == group] if layer is None else table[(table["group"] == group)
                                                                          & (table["layer"] == layer)]
        order = {label: index for index, label in enumerate(self.groups[group])}
        return [float(v) for v in rows.sort_values("model", key=lambda s: s.map(order))[metric]]

    def layer_names(self) -> list[str]:
        """Layers of the reference group's first model, then any other model's extra layers, in depth order."""
        names: list[str] = []
        for result in self.results.values():
            names += [name for name in result.layers["layer"] if name not in names]
        return names

    def statistics(self) -> dict[str, Any]:
        """Per group: its members, and mean / std / 95% CI over its models of every total and per-layer metric;
        per group other than the reference: the change against the reference (paired over seeds)."""
        totals, layers = self.totals(), self.layers()
        groups: dict[str, Any] = {}
        for group, members in self.groups.items():
            groups[group] = {
                "models": members, "n": len(members),
                "totals": {m: summarize(self._per_group(totals, m, group)) for m in TOTAL_METRICS},
                "layers": {layer: {m: summarize(self._per_group(layers, m, group, layer)) for m in LAYER_METRICS
                                   if m in layers} for layer in self.layer_names()}}
        changes: dict[str, Any] = {}
        for group in list(self.groups)[1:]:
            changes[group] = {"against": self.reference, "totals": {}, "layers": {}}
            for metric in TOTAL_METRICS:
                changes[group]["totals"][metric] = self._change(totals, metric, group)
            for layer in self.layer_names():
                changes[group]["layers"][layer] = {m: self._change(layers, m, group, layer) for m in LAYER_METRICS
                                                   if m in layers}
        return {"reference": self.reference, "groups": groups, "changes": changes}

    def _change(self, table: pd.DataFrame, metric: str, group: str, layer: str | None = None) -> dict[str, float]:
        values = self._per_group(table, metric, group, layer)
        reference = self._per_group(table, metric, self.reference, layer)
        if len(values) == len(reference) and values:
            return {**paired_difference(values, reference), "paired": True}
        mean, base = np.nanmean(values) if values else np.nan, np.nanmean(reference) if reference else np.nan
        return {"n": min(len(values), len(reference)), "mean": float(mean - base),
                "percent": float(100 * (mean - base) / abs(base)) if base else float("nan"), "paired": False}


def models_cka(paths: dict[str, Path], data: str, data_root: str | None, limit: int | None, batch_size: int,
               device: str, layers: str | Sequence[str] = "all", progress: bool = False) -> dict[str, dict[str, Any]]:
    """Linear CKA between every layer of the first model and every layer of each other model, on the same test
    images run in lockstep: `{label: {"reference_layers", "layers", "matrix"}}`."""
    models, loaders, T = {}, {}, {}
    for label, path in paths.items():
        model, meta, dataset = model_and_test_images(path, data, data_root, limit, device)
        models[label], loaders[label], T[label] = model, make_loader(dataset, batch_size), meta["T"]
    return {label: {"reference_layers": cross.reference_layers, "layers": cross.layers, "matrix": cross.compute()}
            for label, cross in cross_model_cka(models, loaders, T, layers, device, progress).items()}


def _label(path: Path) -> str:
    """A short name for a checkpoint: its file name, or its run folder's for a generic name."""
    return path.parent.name if GENERIC_STEM.fullmatch(path.stem) and path.parent.name else path.stem


def parse_groups(models: Sequence[str | Path] = (), labels: Sequence[str] | None = None,
                 groups: dict[str, Sequence[str | Path]] | None = None) -> dict[str, dict[str, Path]]:
    """`{group: {label: checkpoint}}`: every model of `models` is a group of its own (named by `labels`, or by
    its file or run folder), followed by `groups`; members of a group are labelled `group/<name>`."""
    labels = list(labels or [])
    if labels and len(labels) != len(models):
        raise SpikescopeError(f"--label was given {len(labels)} times for {len(models)} models: give one per model")
    parsed: dict[str, dict[str, Path]] = {}
    for index, model in enumerate(models):
        name = labels[index] if labels else _label(Path(model))
        if name in parsed:
            name = f"{name}-{index + 1}"
        parsed[name] = {name: Path(model)}
    for group, members in (groups or {}).items():
        if group in parsed:
            raise SpikescopeError(f"the name {group!r} is used twice; give each model and group its own name")
        if not members:
            raise SpikescopeError(f"group {group!r} has no model")
        parsed[group] = {}
        for index, member in enumerate(members):
            name = f"{group}/{_label(Path(member))}"
            parsed[group][name if name not in parsed[group] else f"{name}-{index + 1}"] = Path(member)
    if sum(len(members) for members in parsed.values()) < 2:
        raise SpikescopeError("compare needs at least two models")
    return parsed


def compare(models: Sequence[str | Path] = (), labels: Sequence[str] | None = None,
            groups: dict[str, Sequence[str | Path]] | None = None, data: str | None = None,
            data_root: str | None = None, limit: int | None = None, batch_size: int = 100, device: str = "cpu",
            energy: str = "fp32", layers: str | Sequence[str] = "all", out: str | Path | None = None,
            plotly_js: str | None = None, command: str | None = None, membrane: bool = False,
            progress: bool = False) -> tuple[Comparison, dict[str, Path]]:
    """Analyze every model on the same images and write the comparison folder; returns `(comparison, files)`.

    The images are the first model's default test set (or `data`), for every model. `out` defaults to
    `reports/compare-<first>-<last>`; it is checked before anything is loaded and written whole or not at
    all. `plotly_js` is the path of a plotly.js the page should load instead of its own copy. `membrane` adds
    the membrane-potential statistics of every model (overlaid in the report). The layers of every model
    are also compared with those of the first by linear CKA on the same images (`comparison.cka`). In a
    process group (see `spikescope.distributed`) the models' batches are shared out and rank 0 alone writes.
    """
    from .report.comparison import write_comparison  # the report renders with plotly; import it only here

    parsed = parse_groups(models, labels, groups)
    missing = [path for members in parsed.values() for path in members.values() if not path.is_file()]
    if missing:
        raise SpikescopeError(f"checkpoint not found: {missing[0]}")
    names = [label for members in parsed.values() for label in members]
    destination = check_output_folder(out if out is not None else Path("reports") / (
        "compare-" + "-".join(re.sub(r"[^\w.-]", "_", n) for n in dict.fromkeys([names[0], names[-1]]))))
    results, meta, dataset = {}, {}, data
    for group, members in parsed.items():
        for label, path in members.items():
            result, info = analyze_file(path, layers=layers, data=dataset, data_root=data_root, limit=limit,
                                        batch_size=batch_size, device=device, energy=energy, capture=0,
                                        membrane=membrane, progress=progress)
            dataset = dataset or info["dataset_name"]  # every later model is analysed on the first one's images
            results[label], meta[label] = result, info
    samples = {result.info["samples"] for result in results.values()}
    if len(samples) != 1:
        raise SpikescopeError(f"the models saw different numbers of images ({sorted(samples)})")
    paths = {label: path for members in parsed.values() for label, path in members.items()}
    cka = models_cka(paths, dataset, data_root, limit, batch_size, device, layers, progress)
    comparison = Comparison({group: list(members) for group, members in parsed.items()}, results, meta, cka)
    if not distributed.is_main():  # in a process group every process holds the whole comparison; rank 0 writes
        return comparison, {}
    return comparison, write_comparison(comparison, destination, plotly_js,
                                        command or "spikescope.compare(...) (Python)")
