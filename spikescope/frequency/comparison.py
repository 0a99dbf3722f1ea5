"""Frequency dependence of several models (or groups of seeds) on the same images, and its change across groups.

    comparison, files = spikescope.compare_frequency(groups={"baseline": [...seeds...], "fsta": [...seeds...]})

Every model gets the same `frequency_ablation` (same images, bands, controls' seed); per model, each layer and band's
specific effect (band minus its energy-matched controls, `FrequencyAblation.against_controls`) is one number, and
groups are summarised over their seeds and compared with the first (reference) group seed by seed, paired as
`spikescope compare` pairs them (by the seed each checkpoint records; `compare.Comparison.pairing`).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from .. import distributed
from ..compare import Model, Pairing, _pair, _prepare, check_model_files, parse_groups
from ..data import make_loader
from ..groupstats import paired_difference, summarize
from ..pipeline import MODULE_SOURCE
from ..report.folder import check_output_folder, default_report_folder
from .ablation import frequency_ablation
from .bands import DEFAULT_BAND_SETS
from .checkpoint import checked_request
from .result import MEASURES, FrequencyAblation

COMPARED = tuple(f"{measure}{suffix}" for measure in MEASURES for suffix in ("", "_control", "_specific"))


@dataclass
class FrequencyComparison:
    """Models ablated on the same images: `groups` maps each group to its models' labels; `results[label]` is the
    model's `FrequencyAblation`, `seeds[label]` the seed its checkpoint records (None if none); `warnings` are the
    comparison's own (how groups were paired)."""

    groups: dict[str, list[str]]
    results: dict[str, FrequencyAblation]
    seeds: dict[str, int | None]
    checkpoints: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def reference(self) -> str:
        return next(iter(self.groups))

    def pairing(self) -> dict[str, Pairing]:
        """How every group but the reference is paired with it (see `compare.Comparison.pairing`)."""
        reference = self.groups[self.reference]
        return {group: _pair(self.reference, reference, group, members, self.seeds.get)
                for group, members in list(self.groups.items())[1:]}

    def models(self) -> pd.DataFrame:
        """One row per model, layer and band: `model`, `group`, `seed`, then `against_controls()`'s columns."""
        frames = [result.against_controls().assign(model=label, group=group, seed=self.seeds.get(label))
                  for group, members in self.groups.items() for label in members
                  for result in [self.results[label]]]
        table = pd.concat(frames, ignore_index=True)
        return table[["model", "group", "seed", *[c for c in table.columns if c not in ("model", "group", "seed")]]]

    def statistics(self) -> pd.DataFrame:
        """One row per group, layer, band and measure (`COMPARED`): the mean over the group's models with its 95 % t
        interval over seeds (`n` models); and for every group but the reference, the change against the reference
        (`change_*`: paired over seeds where `pairing` pairs them, with the paired t-test's p-value)."""
        table = self.models()
        pairing = self.pairing()
        rows = []
        for group, members in self.groups.items():
            for (layer, band), rows_of in table[table["group"] == group].groupby(["layer", "band"], sort=False):
                values = rows_of.set_index("model")
                for measure in COMPARED:
                    row = {"group": group, "layer": layer, "band": band, "measure": measure,
                           **summarize([values[measure].get(label, float("nan")) for label in members])}
                    if group != self.reference:
                        row.update(self._change(table, layer, band, measure, group, pairing[group]))
                    rows.append(row)
        return pd.DataFrame(rows)

    def _change(self, table: pd.DataFrame, layer: str, band: str, measure: str, group: str,
                pairing: Pairing) -> dict[str, Any]:
        at = table[(table["layer"] == layer) & (table["band"] == band)].set_index("model")[measure]
        value = lambda label: float(at.get(label, float("nan")))  # noqa: E731  (a model may lack the layer)
        if pairing.pairs:
            change = paired_difference([value(b) for _, b in pairing.pairs], [value(a) for a, _ in pairing.pairs])
            return {"change_mean": change["mean"], "change_ci_low": change["ci_low"],
                    "change_ci_high": change["ci_high"], "change_n": change["n"], "p_value": change["p_value"],
                    "pairing": pairing.how}
        mine = summarize([value(label) for label in self.groups[group]])["mean"]
        theirs = summarize([value(label) for label in self.groups[self.reference]])["mean"]
        return {"change_mean": mine - theirs, "pairing": pairing.how}


def compare_frequency(models: Sequence[Model] | Mapping[str, Model] = (), labels: Sequence[str] | None = None,
                      groups: dict[str, Sequence[Model]] | None = None, data: str | None = None,
                      data_root: str | None = None, limit: int | None = None, batch_size: int = 100,
                      device: str = "cpu", layers: str | Sequence[str] = "all",
                      bands: str | Sequence[str] = DEFAULT_BAND_SETS, coefficients: int = 0, draws: int = 3,
                      seed: int = 0, binarize: bool = False, out: str | Path | None = None, command: str | None = None,
                      progress: bool = False, **model_options: Any) -> tuple[FrequencyComparison, dict[str, Path]]:
    """`frequency_ablation` of every model on the same images (the first model's test set, or `data`), and the
    comparison folder `out` (default `reports/compare-<first>-<last>-frequency`), written whole or not at all;
    returns `(comparison, files)`. Models and groups as for `spikescope.compare`; `model_options` (`arch`, `T`, ...)
    apply to every model. Every file, option and the folder are checked before any pass runs."""
    from ..report.frequency_comparison import write_frequency_comparison  # plotly loads only here

    checked_request(bands, coefficients, draws, batch_size)
    parsed = parse_groups(models, labels, groups)
    check_model_files(parsed)
    destination = check_output_folder(out if out is not None else default_frequency_comparison_folder(parsed),
                                      "frequency")
    prepared, _ = _prepare(parsed, data, data_root, limit, device, model_options)
    results = {}
    for label, model in prepared.items():
        if progress and distributed.is_main():
            print(f"spikescope: {label}", file=sys.stderr, flush=True)
        results[label] = frequency_ablation(
            model.model, make_loader(model.dataset, batch_size), layers=layers, bands=bands, coefficients=coefficients,
            draws=draws, seed=seed, binarize=binarize, T=model.T, device=device, run=model.run, fold=model.fold,
            batch_first=model.batch_first, tokens=model.tokens, progress=progress)
    comparison = FrequencyComparison({group: list(members) for group, members in parsed.items()}, results,
                                     {label: model.meta.get("train_config", {}).get("seed")
                                      for label, model in prepared.items()},
                                     {label: str(model.path or MODULE_SOURCE) for label, model in prepared.items()})
    comparison.warnings += [message for pairing in comparison.pairing().values() if (message := pairing.tell())]
    if not distributed.is_main():
        return comparison, {}
    return comparison, write_frequency_comparison(comparison, destination,
                                                  command or "spikescope.compare_frequency(...) (Python)")


def default_frequency_comparison_folder(parsed: dict[str, dict[str, Any]]) -> Path:
    """`reports/compare-<first>-<last>-frequency`, by `default_report_folder`'s rule."""
    sources = [member if isinstance(member, Path) else MODULE_SOURCE
               for members in parsed.values() for member in members.values()]
    names = [label if len(members) == 1 else group for group, members in parsed.items() for label in members]
    first_last = "-".join(dict.fromkeys([names[0], names[-1]]))
    return default_report_folder("frequency", sources, "compare", [f"compare-{first_last}"])
