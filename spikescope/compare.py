"""`compare`: several models analysed on the same images, side by side, and groups of seeds against each other.

    comparison, files = spikescope.compare(["runs/baseline/checkpoint.pt", "runs/fsta/checkpoint.pt"])
    comparison, files = spikescope.compare(groups={"baseline": [...seeds...], "fsta": [...seeds...]})
    comparison, files = spikescope.compare({"before": net_a, "after": net_b}, data="fashion-mnist", T=4)

Every model is analysed exactly as `analyze` would analyse it alone (same code, same images; each
model normalises them as it was trained), so its rows in `comparison.csv` are its `layers.csv`; all
models run once, side by side (`lockstep`). Models form groups (a lone model is a group of one); the
first group is the reference that every other one is compared with: per layer and in total, the
change of the group mean, and across seeds a paired test (the model with seed s in a group against
the one with seed s in the reference: `Comparison.pairing`).
"""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence, Sized

import numpy as np
import pandas as pd
from torch import nn

from . import distributed
from .analyze import AnalysisResult
from .checkpoint import check_model_file
from .data import make_loader
from .errors import SpikescopeError, note, recorded_warnings, warn
from .groupstats import paired_difference, summarize
from .lockstep import analyze_together
from .energy.models import TERMS, energy_model
from .pipeline import MODULE_SOURCE, PreparedModel, prepare_file
from .report.folder import check_output_folder, default_report_folder, model_label

LAYER_METRICS = ("firing_rate", "silent_fraction", "axis_OI", "wedge_OI", "spike_cosine_mean_off_diagonal",
                 "spectral_cosine_ac_mean_off_diagonal", "cka_mean_off_diagonal", "membrane_mean", "membrane_sd",
                 "near_threshold_share", "reset_share")
ENERGY_TERMS = tuple(f"energy_{term}_pj_per_image" for term in TERMS)  # the energy model's terms of the total
TOTAL_METRICS = ("accuracy", "firing_rate", "sops_per_image", "macs_per_image", "fsta_macs_per_image",
                 "energy_pj_per_image", "energy_pj_per_image_without_fsta", *ENERGY_TERMS, "ann_energy_pj_per_image",
                 "snn_ann_ratio")
DEFINITIONS = {
    "firing_rate (total)": "spikes / (T x samples x neurons) pooled over every spiking layer",
    "macs_per_image": "multiply-accumulates of analog-fed layers other than FSTA (the encoding layer, ...)",
    "fsta_macs_per_image": "FSTA's own multiply-accumulates (DCT, fusion, gates)",
    "energy_pj_per_image_without_fsta": ("energy per image minus FSTA's own (compute only: E_MAC x FSTA's MACs): "
                                         "what the rest costs"),
    "energy_{term}_pj_per_image": ("the energy model's terms of energy_pj_per_image: operations (ops), addressing, "
                                   "memory of inputs and outputs (inout), of parameters (params) and of membrane "
                                   "potentials (potentials); compute-only models have operations alone"),
    "ann_energy_pj_per_image": ("energy per image of the model's ANN twin: the same architecture run once per image "
                                "as a dense network, under the same energy model"),
    "snn_ann_ratio": "energy_pj_per_image / ann_energy_pj_per_image: below 1, the SNN spends less than its twin",
    "change": "group mean minus the reference group's mean; in percent of the reference mean",
    "ci95": "95% confidence interval of a mean over seeds (Student's t), or of the mean paired difference",
    "cka": "linear CKA between every layer of the reference group's first model and every layer of another model, "
           "on the same images: features are each channel's spikes averaged over positions and timesteps, "
           "centred over the images",
    "p_value": "two-sided paired t-test over seeds (seed i of a group against seed i of the reference); "
               "needs at least two seeds per group",
}


def model_totals(result: AnalysisResult) -> dict[str, float]:
    """Accuracy, pooled firing rate, SOPs, MACs (FSTA's apart) and energy per image of one analysis: the total, its
    terms, the ANN twin's total and the SNN/ANN ratio."""
    layers = result.layers[result.layers["output"] != "analog"]
    firing = float(layers["spikes"].sum() / (layers["T"] * layers["samples"] * layers["neurons"]).sum())
    energy = result.energy
    fsta = energy["kind"] == "fsta" if len(energy) else pd.Series(dtype=bool)
    fsta_macs = float(energy.loc[fsta, "macs_per_image"].sum()) if len(energy) else 0.0
    totals = result.energy_totals()
    accuracy = result.info.get("accuracy")
    return {"accuracy": float("nan") if accuracy is None else accuracy, "firing_rate": firing,
            "sops_per_image": totals["sops_per_image"], "macs_per_image": totals["macs_per_image"] - fsta_macs,
            "fsta_macs_per_image": fsta_macs, "energy_pj_per_image": totals["energy_pj_per_image"],
            "energy_pj_per_image_without_fsta": totals["energy_pj_per_image"] - (
                float(energy.loc[fsta, "energy_pj_per_image"].sum()) if len(energy) else 0.0),
            **{metric: totals[metric] for metric in (*ENERGY_TERMS, "ann_energy_pj_per_image", "snn_ann_ratio")}}


BOUNDS = {"accuracy": (0.0, 1.0), "firing_rate": (0.0, np.inf), "silent_fraction": (0.0, 1.0),
          "axis_OI": (-1.0, 1.0), "wedge_OI": (-1.0, 1.0), "spike_cosine_mean_off_diagonal": (0.0, 1.0),
          "spectral_cosine_ac_mean_off_diagonal": (0.0, 1.0), "cka_mean_off_diagonal": (0.0, 1.0),
          "near_threshold_share": (0.0, 1.0), "reset_share": (0.0, 1.0), "membrane_sd": (0.0, np.inf),
          "snn_ann_ratio": (0.0, np.inf),
          **{metric: (0.0, np.inf) for metric in TOTAL_METRICS if "_per_image" in metric}}
"""The range each metric cannot leave: confidence intervals over seeds are clipped to it (a firing rate has no
upper bound: layers of multi-spike neurons count spikes, and their mean count can exceed 1)."""


@dataclass
class Comparison:
    """Models analysed on the same images. `groups` maps each group to its models' labels (in the order given);
    `results[label]` is the model's `AnalysisResult` and `meta[label]` what it is (checkpoint, architecture,
    recorded seed). `warnings` are the comparison's own (how groups were paired, ...); each model's are in
    `results[label].info["warnings"]`. How each group is paired with the reference group: `pairing()`."""

    groups: dict[str, list[str]]
    results: dict[str, AnalysisResult]
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    cka: dict[str, dict[str, Any]] = field(default_factory=dict)  # per model but the reference: see `compare`
    warnings: list[str] = field(default_factory=list)

    @property
    def reference(self) -> str:
        return next(iter(self.groups))

    def group_of(self, label: str) -> str:
        return next(group for group, members in self.groups.items() if label in members)

    def seed_of(self, label: str) -> int | None:
        """The seed the model's checkpoint records (None for models trained elsewhere)."""
        return self.meta.get(label, {}).get("seed")

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

    @property
    def folder_variant(self) -> str:
        """What tells comparisons of the same model files apart in their folder's marker (see `folder_variant`)."""
        return folder_variant(self.groups)

    def pairing(self) -> dict[str, "Pairing"]:
        """How every group but the reference is paired with the reference group, for the paired tests.

        Models are paired by the seed their checkpoints record: seed s of a group with seed s of the
        reference group. Seeds without a partner are left out of the paired test; groups without a seed in
        common are compared unpaired. When some checkpoint records no seed (or a seed twice in a group),
        groups of equal size are paired in the order given, and groups of unequal size are compared
        unpaired. Two lone models are simply one pair. Each `Pairing` carries what the user should be told.
        """
        reference = self.groups[self.reference]
        return {group: _pair(self.reference, reference, group, members, self.seed_of)
                for group, members in list(self.groups.items())[1:]}

    def _values(self, table: pd.DataFrame, metric: str, labels: Sequence[str], layer: str | None = None) -> list[float]:
        """`metric` of each model of `labels`, in that order (of `layer`, for a per-layer table)."""
        rows = table if layer is None else table[table["layer"] == layer]
        values = rows.set_index("model")[metric]
        return [float(values[label]) if label in values.index else float("nan") for label in labels]

    def layer_names(self) -> list[str]:
        """Layers of the reference group's first model, then any other model's extra layers, in depth order."""
        names: list[str] = []
        for result in self.results.values():
            names += [name for name in result.layers["layer"] if name not in names]
        return names

    def statistics(self) -> dict[str, Any]:
        """Per group: its members and their recorded seeds, and mean / std / 95% CI over its models of every total
        and per-layer metric (intervals clipped to `BOUNDS`); per group other than the reference: the change
        against the reference, paired as `pairing` says."""
        totals, layers, pairing = self.totals(), self.layers(), self.pairing()
        groups: dict[str, Any] = {}
        for group, members in self.groups.items():
            groups[group] = {
                "models": members, "n": len(members), "seeds": [self.seed_of(label) for label in members],
                "totals": {m: summarize(self._values(totals, m, members), BOUNDS.get(m)) for m in TOTAL_METRICS},
                "layers": {layer: {m: summarize(self._values(layers, m, members, layer), BOUNDS.get(m))
                                   for m in LAYER_METRICS if m in layers} for layer in self.layer_names()}}
        changes: dict[str, Any] = {}
        for group in list(self.groups)[1:]:
            pairs = pairing[group].pairs
            changes[group] = {"against": self.reference, "pairing": pairing[group].how,
                              "pairs": [list(pair) for pair in pairs],
                              "totals": {m: self._change(totals, m, group, pairs) for m in TOTAL_METRICS},
                              "layers": {layer: {m: self._change(layers, m, group, pairs, layer) for m in LAYER_METRICS
                                                 if m in layers} for layer in self.layer_names()}}
        return {"reference": self.reference, "groups": groups, "changes": changes}

    def _change(self, table: pd.DataFrame, metric: str, group: str, pairs: list[tuple[str, str]],
                layer: str | None = None) -> dict[str, Any]:
        if pairs:
            values = self._values(table, metric, [label for _, label in pairs], layer)
            reference = self._values(table, metric, [label for label, _ in pairs], layer)
            return {**paired_difference(values, reference), "paired": True}
        values = self._values(table, metric, self.groups[group], layer)
        reference = self._values(table, metric, self.groups[self.reference], layer)
        mean, base = np.nanmean(values), np.nanmean(reference)
        return {"n": min(len(values), len(reference)), "mean": float(mean - base),
                "percent": float(100 * (mean - base) / abs(base)) if base else float("nan"), "paired": False}


@dataclass(frozen=True)
class Pairing:
    """How a group is compared with the reference group: the `(reference model, model)` pairs of its paired test
    (none: unpaired), how they were formed, and what the user should be told (a warning, or a note)."""

    pairs: list[tuple[str, str]]
    how: str
    message: str | None = None
    is_note: bool = False

    def tell(self) -> str | None:
        """Issue `message` as a warning or a note (if there is one); returns it."""
        if self.message is None:
            return None
        return note(self.message) if self.is_note else warn(self.message)


def _pair(reference_group: str, reference: list[str], group: str, members: list[str], seed_of: Any) -> Pairing:
    """The `Pairing` of `members` of `group` against the `reference` models (see `Comparison.pairing`)."""
    if len(reference) == len(members) == 1:
        return Pairing([(reference[0], members[0])], "one model against one")
    seeds = {label: seed_of(label) for label in reference + members}
    by_seed = [{seeds[label]: label for label in labels} for labels in (reference, members)]
    if None not in seeds.values() and all(len(index) == len(labels) for index, labels in zip(by_seed, (reference,
                                                                                                       members))):
        common = sorted(set(by_seed[0]) & set(by_seed[1]))
        pairs = [(by_seed[0][seed], by_seed[1][seed]) for seed in common]
        unmatched = sorted(set(by_seed[0]) ^ set(by_seed[1]))
        if not common:
            how = f"unpaired ({len(members)} vs {len(reference)} models; no seed in common)"
            return Pairing([], how, f"{group} and {reference_group} share no seed: their difference is {how}")
        if unmatched:
            how = f"by recorded seed (seeds {', '.join(map(str, common))}; seeds {', '.join(map(str, unmatched))} " \
                  "have no partner and are left out of the paired test)"
            return Pairing(pairs, how, f"{group} against {reference_group}: paired {how}")
        return Pairing(pairs, "by recorded seed")
    if len(reference) == len(members):
        how = "by the order given (the checkpoints do not record one seed per model)"
        return Pairing(list(zip(reference, members)), how, f"{group} against {reference_group}: models paired {how}",
                       is_note=True)
    how = f"unpaired ({len(members)} vs {len(reference)} models)"
    return Pairing([], how, f"{group} against {reference_group}: {how}, so no paired test")


Model = str | Path | nn.Module  # a model file, or a module given in Python


def parse_groups(models: Sequence[Model] | Mapping[str, Model] = (), labels: Sequence[str] | None = None,
                 groups: dict[str, Sequence[Model]] | None = None) -> dict[str, dict[str, Path | nn.Module]]:
    """`{group: {label: checkpoint or module}}`: every model of `models` is a group of its own (named by `labels`
    or by the keys of a mapping, else by its file or run folder, or a module by its class), followed by `groups`;
    members of a group are labelled `group/<name>`."""
    if isinstance(models, Mapping):
        if labels:
            raise SpikescopeError("models given as a mapping are named by its keys: give no labels as well")
        labels, models = list(models), list(models.values())
    labels = list(labels or [])
    if labels and len(labels) != len(models):
        given = "once" if len(labels) == 1 else f"{len(labels)} times"
        raise SpikescopeError(f"--label names the models given by path, one label each: it was given {given} for "
                              f"{len(models)} such model{'' if len(models) == 1 else 's'} (members of --group are "
                              "named after their files)")
    empty = next((label for label in labels if not label.strip()), None)
    if empty is not None:
        raise SpikescopeError("--label must not be empty: give every model a name")
    twice = next((label for label in labels if labels.count(label) > 1), None)
    if twice is not None:
        raise SpikescopeError(f"--label {twice!r} is given twice: give every model its own name")
    parsed: dict[str, dict[str, Path | nn.Module]] = {}
    for index, model in enumerate(models):
        name = _unique(labels[index] if labels else _label(model), parsed)
        parsed[name] = {name: _member(model)}
    for group, members in (groups or {}).items():
        if group in parsed:
            raise SpikescopeError(f"the name {group!r} is used twice; give each model and group its own name")
        if not members:
            raise SpikescopeError(f"group {group!r} has no model")
        parsed[group] = {}
        for member in members:
            parsed[group][_unique(f"{group}/{_label(member)}", parsed[group])] = _member(member)
    if sum(len(members) for members in parsed.values()) < 2:
        raise SpikescopeError("compare needs at least two models")
    return parsed


def _member(model: Model) -> Path | nn.Module:
    return model if isinstance(model, nn.Module) else Path(model)


def _label(model: Model) -> str:
    """A model's default name: its file's (see `model_label`), or a module's class name."""
    return type(model).__name__ if isinstance(model, nn.Module) else model_label(Path(model))


def _unique(name: str, taken: Sized) -> str:
    """`name`, or `name-2`, `name-3`, ... if it is taken (two files that share a name: runs/a/checkpoint.pt and
    other/a/checkpoint.pt)."""
    candidate, number = name, 1
    while candidate in taken:
        number += 1
        candidate = f"{name}-{number}"
    return candidate


def check_model_files(parsed: dict[str, dict[str, Path | nn.Module]]) -> None:
    """One-line errors for a model file that is missing, a folder, or given twice (the same file, or a copy of it,
    in one group or in two), and for a module given twice: a model compared with itself would give statistics
    that mean nothing."""
    members = {label: member for group in parsed.values() for label, member in group.items()}
    modules: dict[int, str] = {}
    for label, module in members.items():
        if isinstance(module, nn.Module) and modules.setdefault(id(module), label) != label:
            raise SpikescopeError(f"{label} and {modules[id(module)]} are the same module; compare each model once "
                                  "(a model against itself gives statistics that mean nothing)")
    files = {label: path for label, path in members.items() if isinstance(path, Path)}
    seen: dict[tuple[int, str], str] = {}
    sizes = Counter(check_model_file(path).stat().st_size for path in files.values())
    for label, path in files.items():
        size = path.stat().st_size
        key = (size, _digest(path) if sizes[size] > 1 else "")  # only files of equal size can be copies
        if key in seen:
            raise SpikescopeError(f"{label} and {seen[key]} are the same model file ({path}); compare each "
                                  "model once (a model against itself gives statistics that mean nothing)")
        seen[key] = label


def _digest(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, read in chunks (checkpoints can be large)."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def default_comparison_folder(parsed: dict[str, dict[str, Path | nn.Module]]) -> Path:
    """`reports/compare-<first>-<last>` by `report.folder.default_report_folder`'s one rule; the folder's identity is
    the model files in order (`MODULE_SOURCE` for a module) and, with groups, how they are grouped."""
    sources = [member if isinstance(member, Path) else MODULE_SOURCE
               for members in parsed.values() for member in members.values()]
    names = [label if len(members) == 1 else group for group, members in parsed.items() for label in members]
    return default_report_folder("compare", sources, folder_variant(parsed), names)


def folder_variant(groups: dict[str, Sized]) -> str:
    """What tells comparisons of the same files apart: the groups and their sizes (empty for lone models)."""
    if all(len(members) == 1 for members in groups.values()):
        return ""
    return "groups " + " ".join(f"{group}:{len(members)}" for group, members in groups.items())


def compare(models: Sequence[Model] | Mapping[str, Model] = (), labels: Sequence[str] | None = None,
            groups: dict[str, Sequence[Model]] | None = None, data: str | None = None,
            data_root: str | None = None, limit: int | None = None, batch_size: int = 100, device: str = "cpu",
            energy: str = "fp32", layers: str | Sequence[str] = "all", out: str | Path | None = None,
            plotly_js: str | None = None, command: str | None = None, membrane: bool = False,
            progress: bool = False, **model_options: Any) -> tuple[Comparison, dict[str, Path]]:
    """Analyze every model on the same images and write the comparison folder; returns `(comparison, files)`.

    `models` are model files or modules (`torch.nn.Module`s; a mapping names them by its keys:
    `compare({"before": net_a, "after": net_b}, data="cifar10", T=4)`). The images are the first model's
    default test set (or `data`, which a module needs: it names no dataset), for every model. Every model file,
    option and the output folder are checked first (one-line errors before any pass runs); then the
    models run once, batch by batch in lockstep, each under its own recorder (`lockstep.analyze_together`),
    which also gives the linear CKA between the layers of every model and those of the first
    (`comparison.cka`). `model_options` (`arch`, `arch_kwargs`, `T`, `trust_pickle`, `time_first_input`,
    `fold`, `batch_first`, `tokens`) apply to every model, as in `analyze_file`. Groups are paired with the reference
    group by the seed each checkpoint records (see `Comparison.pairing`). `out` defaults to
    `reports/compare-<first>-<last>` (see `default_comparison_folder`); it is written whole or not at all.
    `plotly_js` is the path of a plotly.js the page should load instead of its own copy. `membrane` adds the
    membrane-potential statistics of every model (overlaid in the report). In a process group (see
    `spikescope.distributed`) the batches are shared out and rank 0 alone writes.
    """
    from .report.comparison import write_comparison  # the report renders with plotly; import it only here

    energy_model(energy)
    if batch_size < 1:
        raise SpikescopeError(f"--batch-size must be at least 1, got {batch_size}")
    parsed = parse_groups(models, labels, groups)
    check_model_files(parsed)
    destination = check_output_folder(out if out is not None else default_comparison_folder(parsed), "compare")
    prepared, model_warnings = _prepare(parsed, data, data_root, limit, device, model_options)
    with recorded_warnings(show=False) as run_warnings:  # shown below, each with the model it concerns
        analyses = {label: model.analysis(layers, device, energy, membrane=membrane)
                    for label, model in prepared.items()}
        results, cross = analyze_together(analyses, {label: make_loader(model.dataset, batch_size)
                                                     for label, model in prepared.items()}, progress)
    seen = {message for result in results.values() for message in result.info["warnings"]}
    for label, result in results.items():
        for message in result.info["warnings"]:
            warn(f"{label}: {message}")
        result.info["warnings"] = list(dict.fromkeys(model_warnings[label] + result.info["warnings"]))
    for message in run_warnings:
        if message not in seen:
            warn(message)
    comparison = Comparison({group: list(members) for group, members in parsed.items()}, results,
                            {label: model.description(results[label]) for label, model in prepared.items()},
                            {label: {"reference_layers": c.reference_layers, "layers": c.layers, "matrix": c.compute()}
                             for label, c in cross.items()},
                            warnings=[message for message in run_warnings if message not in seen])
    comparison.warnings += [message for pairing in comparison.pairing().values() if (message := pairing.tell())]
    if not distributed.is_main():  # in a process group every process holds the whole comparison; rank 0 writes
        return comparison, {}
    return comparison, write_comparison(comparison, destination, plotly_js,
                                        command or "spikescope.compare(...) (Python)")


def _prepare(parsed: dict[str, dict[str, Path | nn.Module]], data: str | None, data_root: str | None, limit: int | None,
             device: str, model_options: dict[str, Any]) -> tuple[dict[str, PreparedModel], dict[str, list[str]]]:
    """Every model loaded and checked against the first model's images (or `data`) before any pass runs, with the
    warnings each gave on the way."""
    prepared, warnings_seen = {}, {}
    for members in parsed.values():
        for label, path in members.items():
            with recorded_warnings(prefix=f"{label}: ") as warnings_seen[label]:
                model = prepare_file(path, data, data_root, limit, device, **model_options)
            if data is None:
                data = model.dataset.name  # every later model is analysed on the first one's images
            prepared[label] = model
    return prepared, warnings_seen
