"""The comparison folder: comparison.csv, comparison.json and comparison.html (plotly), written whole or not at all;
and the summary `compare` prints."""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from .. import __version__
from ..compare import DEFINITIONS, ENERGY_TERMS, Comparison
from ..fsta import fsta_branches
from . import figures
from .comparison_figures import (any_interval, cka_heatmaps, compared_terms, energy_split, energy_term_changes,
                                 escaped, firing_by_layer, orientation_by_depth, similarity_summary,
                                 spectrum_difference)
from .figures import TERM_NAMES, beside_total, term_column
from .folder import report_folder, report_marker
from .outputs import plain
from .page import PLOTLY_JS, figure_block, page, plotly_js
from .tables import COLUMN_FORMATS, model_name, table

ENERGY_UNITS = (("µJ", 1e6), ("nJ", 1e3))  # picojoules per unit, the largest first; 1 nJ or 0.1 nJ resolution
ENERGY_DECIMALS = {"µJ": 3, "nJ": 1}
ENERGY_METRICS = ("energy_pj_per_image", "energy_pj_per_image_without_fsta", *ENERGY_TERMS, "ann_energy_pj_per_image")
SHARE_METRICS = ("accuracy", "silent_fraction", "near_threshold_share", "reset_share")  # fractions shown in %
CAVEAT = "†"  # marks a number that a warning of the report qualifies (`*` in the terminal, which may lack "†")
ACCURACY_WARNINGS = ("its accuracy there is meaningless", "no accuracy is reported")  # see `qualifies_accuracy`


def energy_unit(energies_pj: Iterable[float]) -> tuple[str, float]:
    """The one energy unit a comparison is written in, with its size in pJ: µJ when some energy per image reaches
    1 µJ, else nJ (so that numbers read 9.805 µJ or 523.4 nJ, never "9.8M pJ")."""
    largest = max((abs(e) for e in energies_pj if np.isfinite(e)), default=0.0)
    return next(((name, size) for name, size in ENERGY_UNITS if largest >= size), ENERGY_UNITS[-1])


def _energy(value_pj: float, unit: tuple[str, float]) -> str:
    """An energy given in pJ as a number in `unit` (name, pJ per unit), with that unit's fixed decimals."""
    if not np.isfinite(value_pj):
        return "–"
    return f"{value_pj / unit[1]:,.{ENERGY_DECIMALS[unit[0]]}f}"


def _formats(unit: tuple[str, float]) -> dict[str, Callable[[Any], str]]:
    """The table formats of every metric, energies in `unit` (name, pJ per unit)."""
    return {**COLUMN_FORMATS, **{m: (lambda v: _energy(v, unit)) for m in ENERGY_METRICS}}


def _unit_of(stats: dict[str, Any]) -> tuple[str, float]:
    """The energy unit of a comparison (see `energy_unit`) from its statistics' group means (and their ANN twins')."""
    return energy_unit(g["totals"][m]["mean"] for g in stats["groups"].values()
                       for m in ("energy_pj_per_image", "ann_energy_pj_per_image"))


def qualifies_accuracy(warning: str) -> bool:
    """Whether a model's warning qualifies its accuracy: one of `ACCURACY_WARNINGS`, the endings of the warnings
    that the data's labels are not those the model was trained on (pipeline) and that the model gives no logits to
    score (analyze)."""
    return any(ending in warning for ending in ACCURACY_WARNINGS)


def _accuracy_caveats(comparison: Comparison) -> dict[str, list[str]]:
    """Per group, the warnings of its models that qualify their accuracy (`qualifies_accuracy`): its accuracy cells
    are marked with `CAVEAT`."""
    caveats: dict[str, list[str]] = {}
    for group, members in comparison.groups.items():
        found = [w for label in members for w in comparison.results[label].info.get("warnings", [])
                 if qualifies_accuracy(w)]
        if found:
            caveats[group] = list(dict.fromkeys(found))
    return caveats


def _cell(summary: dict[str, Any], fmt: Callable[[Any], str]) -> str:
    """`mean [ci_low, ci_high]` in the metric's format; the mean alone for a group of one model."""
    if summary["n"] > 1:
        return f"{fmt(summary['mean'])} [{fmt(summary['ci_low'])}, {fmt(summary['ci_high'])}]"
    return fmt(summary["mean"])


def _signed(text: str, value: float) -> str:
    return f"+{text}" if value > 0 else text


def _difference(metric: str, value: float, fmt: Callable[[Any], str]) -> str:
    """A difference of two values of `metric`: in percentage points for shares, else in the metric's unit."""
    if metric in SHARE_METRICS:
        return f"{100 * value:+.1f} pp"
    return _signed(fmt(value), value)


def _change_cell(change: dict[str, Any], metric: str, fmt: Callable[[Any], str]) -> str:
    """The change of a group mean against the reference: shares in percentage points (pp), everything else in its
    unit and in percent of the reference (%); with two pairs or more, the 95% CI and p-value of the paired test."""
    text = _difference(metric, change["mean"], fmt)
    if metric not in SHARE_METRICS and np.isfinite(change.get("percent", np.nan)):
        text += f" ({change['percent']:+.1f} %)"
    if change.get("paired") and change["n"] > 1:
        low, high = (_difference(metric, change[k], fmt) for k in ("ci_low", "ci_high"))
        p = change.get("p_value", np.nan)
        text += f", CI [{low}, {high}]" + (f", p = {p:.3g}" if p == p else "")
    return text


def _pairing(change: dict[str, Any]) -> str:
    """How a group was paired with the reference (a change of `Comparison.statistics`), with the number of pairs."""
    pairs = len(change["pairs"])
    return f"{pairs} pair{'s' if pairs != 1 else ''}, {change['pairing']}" if pairs else change["pairing"]


TOTAL_HEADERS = {"accuracy": "accuracy", "firing_rate": "firing rate", "sops_per_image": "SOPs",
                 "macs_per_image": "analog MACs", "fsta_macs_per_image": "FSTA MACs",
                 "energy_pj_per_image": "energy ({unit})",
                 "energy_pj_per_image_without_fsta": "energy without FSTA ({unit})"}
CHANGE_METRICS = ("accuracy", "firing_rate", "sops_per_image", "energy_pj_per_image",
                  "energy_pj_per_image_without_fsta")


def _totals_section(comparison: Comparison, stats: dict[str, Any], unit: tuple[str, float]) -> str:
    formats, intervals = _formats(unit), any_interval(stats)
    caveats = _accuracy_caveats(comparison)
    headers = {m: h.format(unit=unit[0]) for m, h in TOTAL_HEADERS.items()}
    rows = []
    for group in comparison.groups:
        summary = stats["groups"][group]
        row = {"group": group, "n": summary["n"],
               **{m: _cell(summary["totals"][m], formats[m]) for m in TOTAL_HEADERS}}
        row["accuracy"] += f" {CAVEAT}" if group in caveats else ""
        rows.append(row)
    columns = {"group": "group", **({"n": "models"} if intervals else {}), **headers}
    caption = ("Mean [95% CI] over each group's models (Student's t, clipped to the range the quantity can take; "
               "a group of one model shows its value alone), per image." if intervals else
               "One model per group: its values per image (no interval: that needs two models or more).")
    if caveats:
        caption += f" {CAVEAT} The accuracy is qualified by a warning (see Warnings and notes at the top)."
    groups_table = table(pd.DataFrame(rows), columns, numbers=False)
    if not stats["changes"]:
        return groups_table + f"<p class='caption'>{html.escape(caption)}</p>"
    changes = []
    for group, change in stats["changes"].items():
        row = {"group": group, "pairing": _pairing(change),
               **{m: _change_cell(change["totals"][m], m, formats[m]) for m in CHANGE_METRICS}}
        row["accuracy"] += f" {CAVEAT}" if group in caveats or stats["reference"] in caveats else ""
        changes.append(row)
    change_columns = {"group": "group", **({"pairing": "models compared"} if intervals else {}),
                      **{m: headers[m] for m in CHANGE_METRICS}}
    change_caption = ("Group mean minus the reference's mean: accuracy in percentage points (pp); every other "
                      "quantity in its own unit and, in brackets, in percent of the reference (%).")
    if intervals:
        change_caption += (" With two pairs of models or more: the 95% CI of the mean paired difference and the "
                           "p-value of a paired t-test.")
    return (groups_table + f"<p class='caption'>{html.escape(caption)}</p>"
            f"<h3>Change against {html.escape(stats['reference'])}</h3>"
            + table(pd.DataFrame(changes), change_columns, numbers=False)
            + f"<p class='caption'>{html.escape(change_caption)}</p>")


def _energy_terms_section(comparison: Comparison, stats: dict[str, Any], unit: tuple[str, float]) -> str:
    """Each group's energy per term the model prices, its total, its ANN twin's total and the SNN/ANN ratio; then
    the change of each against the reference (table and figure)."""
    formats, intervals = _formats(unit), any_interval(stats)
    terms = beside_total(compared_terms(stats))
    headers = {**{term_column("SNN", term): f"{TERM_NAMES[term]} ({unit[0]})" for term in terms},
               "energy_pj_per_image": f"total ({unit[0]})", "ann_energy_pj_per_image": f"ANN twin ({unit[0]})",
               "snn_ann_ratio": "SNN / ANN"}
    rows = [{"group": group, **{m: _cell(stats["groups"][group]["totals"][m], formats[m]) for m in headers}}
            for group in comparison.groups]
    described = next(iter(comparison.results.values())).info.get("energy_model_description", "")
    caption = (f"Energy model {described} " + '(docs/metrics.md, "Energy models"). Per image'
               + (", mean [95% CI] over each group" if intervals else "") + "; ANN twin: the same architecture run "
               "once per image as a dense network under the same model; SNN / ANN: the energy over the twin's.")
    section = table(pd.DataFrame(rows), {"group": "group", **headers}, numbers=False)
    section += f"<p class='caption'>{html.escape(caption)}</p>"
    if not stats["changes"]:
        return section
    changes = [{"group": group, **{m: _change_cell(change["totals"][m], m, formats[m]) for m in headers}}
               for group, change in stats["changes"].items()]
    return (section + f"<h3>Change of each term against {html.escape(stats['reference'])}</h3>"
            + table(pd.DataFrame(changes), {"group": "group", **headers}, numbers=False)
            + figure_block("energy-terms", energy_term_changes(comparison, stats, unit),
                           f"Group mean minus {html.escape(stats['reference'])}'s, in {unit[0]} per image, of each "
                           "term, of the total and of the ANN twin's total"
                           + (" (95% CI of the mean paired difference where there are two pairs or more)."
                              if intervals else ".")))


def _fsta(meta: dict[str, Any]) -> str:
    """Which FSTA a model has, in one vocabulary: none, both, temporal or spatial."""
    value = meta.get("arch_kwargs", {}).get("fsta", meta.get("train_config", {}).get("fsta", False))
    return fsta_branches(value) or "none"


def _models_section(comparison: Comparison) -> str:
    rows = [{"model": label, "group": comparison.group_of(label), "checkpoint": meta.get("checkpoint"),
             "architecture": model_name(meta), "fsta": _fsta(meta),
             "seed": meta.get("train_config", {}).get("seed", "?")} for label, meta in comparison.meta.items()]
    return table(pd.DataFrame(rows), {"model": "model", "group": "group", "architecture": "architecture",
                                      "fsta": "FSTA", "seed": "training seed", "checkpoint": "checkpoint"})


def _notes_section(comparison: Comparison) -> str:
    """Every warning of the comparison and of its models (a warning shared by models listed once, with them), in a
    box at the top of the page; empty when there is none."""
    shared: dict[str, list[str]] = {}
    for label, result in comparison.results.items():
        for message in result.info.get("warnings", []):
            shared.setdefault(message, []).append(label)
    items = [html.escape(message) for message in comparison.warnings]
    items += [f"{html.escape(message)} <i>({html.escape(', '.join(labels))})</i>" for message, labels in shared.items()]
    if not items:
        return ""
    return ("<div class='notes' style='border: 1px solid #d9a400; background: #fff8e1; padding: 4px 14px; "
            "border-radius: 4px'><ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul></div>")


def _membrane_section(comparison: Comparison) -> str:
    """Each group's membrane-potential distribution per layer (counts pooled over its models and timesteps)."""
    pooled = {escaped(group): {layer: sum(comparison.results[label].membrane[layer].sum(axis=0) for label in members)
                              for layer in comparison.results[members[0]].membrane}
              for group, members in comparison.groups.items()}
    rows = comparison.layers().dropna(subset=["membrane_mean"])
    return (figure_block("membrane", figures.membrane_histograms(pooled),
                         "Membrane potential u in units of each layer's threshold, at the spike decision, of the "
                         "neurons that did not fire, as a share of all neurons (timesteps and a group's models "
                         "pooled); hover for the share that fired. Lower potentials mean fewer neurons close to "
                         "firing; a narrower distribution, fewer far from it.")
            + table(rows, {"model": "model", "layer": "layer", "membrane_mean": "mean u / threshold",
                           "membrane_sd": "SD", "near_threshold_share": "within 10 % below threshold",
                           "reset_share": "reset (fired)"}))


def _spectra_sections(comparison: Comparison, reference: str) -> list[tuple[str, str]]:
    """One figure per group but the reference: its spectrum differences with the reference, layer by layer."""
    blocks = []
    for group in [g for g in comparison.groups if g != reference]:
        fig = spectrum_difference(comparison, group, reference)
        if fig is not None:
            blocks.append(figure_block("spectra" if not blocks else f"spectra-{len(blocks) + 1}", fig,
                                       f"log10 of each layer's DCT power share (mean over {html.escape(group)}'s "
                                       f"models) minus {html.escape(reference)}'s: red where {html.escape(group)} "
                                       "puts more of its power, blue where less; low frequencies at the top left."))
    return [("Spectrum differences", "".join(blocks))] if blocks else []


def render_comparison(comparison: Comparison, stats: dict[str, Any], plotly_src: str, command: str) -> str:
    first = next(iter(comparison.results.values()))
    dataset = next(iter(comparison.meta.values())).get("dataset", "?")
    reference = stats["reference"]
    unit = _unit_of(stats)
    interval = any_interval(stats)
    notes = _notes_section(comparison)
    sections = [("Warnings and notes", notes)] if notes else []
    sections += [
        ("Models and data", f"<p>{first.info['samples']:,} images of {html.escape(dataset)}, the same for every "
                            f"model; T = {first.info['T']}. Reference: <b>{html.escape(reference)}</b>. Command: "
                            f"<code>{html.escape(command)}</code>.</p>" + _models_section(comparison)),
        ("Totals", _totals_section(comparison, stats, unit)),
        ("Firing rate per layer", figure_block("firing", firing_by_layer(comparison, stats),
                                               ("Mean over each group's models with 95% CI; right: the change of "
                                                "the group mean in percent of the reference's rate, with the CI of "
                                                "the paired difference." if interval else
                                                "Each model's rate; right: its change in percent of the "
                                                "reference's rate."))),
        ("Energy", figure_block("energy", energy_split(comparison, stats, unit),
                                f"Energy per image in {unit[0]} (group means"
                                f"{', total with 95% CI' if interval else ''}) "
                                + ("split into the energy model's terms." if compared_terms(stats) != ["ops"] else
                                   "split into accumulates of spike-fed synaptic layers, multiply-accumulates of "
                                   "analog-fed layers, and FSTA's own multiply-accumulates (compute only: memory "
                                   "access is not included)."))
         + _energy_terms_section(comparison, stats, unit)),
        ("Orientation against depth", figure_block("orientation", orientation_by_depth(comparison, stats),
                                                   "OI = (E_vert - E_horz) / (E_vert + E_horz) per layer; "
                                                   "positive when variation along the height dominates.")),
        ("Similarity across timesteps", figure_block("similarity", similarity_summary(comparison, stats),
                                                     "Mean of the off-diagonal entries of each layer's T x T "
                                                     "cosine matrices.")),
    ]
    if comparison.cka:
        reference_model = comparison.groups[reference][0]
        sections.append(("Representations across models (CKA)", figure_block(
            "cka", cka_heatmaps(comparison),
            f"Linear CKA between the layers of <b>{html.escape(reference_model)}</b> (rows) and those of each other "
            "model (columns), on the same images run side by side: each layer's channel features (spikes averaged "
            "over positions and timesteps), centred over the images. 1 on the diagonal: the layer represents the "
            "images as the reference's does, up to a rotation and a scale; lower: the model changed what it "
            "represents there.")))
    if any(result.membrane for result in comparison.results.values()):
        sections.append(("Membrane potentials", _membrane_section(comparison)))
    sections += _spectra_sections(comparison, reference)
    definitions = "".join(f"<tr><th class='text'>{html.escape(k)}</th><td class='text'>{html.escape(v)}</td></tr>"
                          for k, v in {**first.definitions, **DEFINITIONS}.items())
    sections.append(("Definitions", f"<table>{definitions}</table>"))
    groups = f" in {len(comparison.groups)} groups" if interval else ""
    title = f"{len(comparison.results)} models{groups} on {dataset}"
    return page("spikescope comparison", title, sections, plotly_src)


def comparison_summary(comparison: Comparison, stats: dict[str, Any]) -> str:
    """What `compare` prints when done: the data and images, then one aligned line per group (n, accuracy, firing
    rate, energy in the report's unit, and the change against the reference)."""
    first = next(iter(comparison.results.values()))
    dataset = next(iter(comparison.meta.values())).get("dataset", "?")
    reference, unit = stats["reference"], _unit_of(stats)
    caveats = _accuracy_caveats(comparison)
    width = max(len(name) for name in [*comparison.groups, "group"])
    lines = [f"{first.info['samples']:,} images of {dataset}, T = {first.info['T']}; reference: {reference}",
             f"{'group':<{width}}  {'n':>3}  {'accuracy':>9}  {'firing rate':>11}  {f'energy ({unit[0]})':>12}"
             f"  change against {reference}"]
    for group, summary in stats["groups"].items():
        totals = summary["totals"]
        accuracy = COLUMN_FORMATS["accuracy"](totals["accuracy"]["mean"]) + ("*" if group in caveats else " ")
        line = (f"{group:<{width}}  {summary['n']:>3}  {accuracy:>9}  "
                f"{COLUMN_FORMATS['firing_rate'](totals['firing_rate']['mean']):>11}  "
                f"{_energy(totals['energy_pj_per_image']['mean'], unit):>12}  ")
        change = stats["changes"].get(group)
        if change is None:
            line += "(reference)"
        else:
            c = change["totals"]
            line += (f"accuracy {100 * c['accuracy']['mean']:+.1f} pp, firing rate {c['firing_rate']['percent']:+.1f} "
                     f"%, energy {c['energy_pj_per_image']['percent']:+.1f} %")
        lines.append(line.rstrip())
    lines += [f"* {message}" for message in dict.fromkeys(w for ws in caveats.values() for w in ws)]
    return "\n".join(lines)


def write_comparison(comparison: Comparison, out: str | Path, plotly_src: str | None = None,
                     command: str = "") -> dict[str, Path]:
    """Write comparison.csv, comparison.json and comparison.html (+ plotly.min.js unless `plotly_src` names a
    shared copy) into the folder `out`, whole or not at all; returns the files by name."""
    stats = comparison.statistics()
    models = {label: {"group": comparison.group_of(label), **meta, **comparison_totals,
                      "warnings": comparison.results[label].info.get("warnings", [])}
              for (label, meta), comparison_totals in zip(comparison.meta.items(),
                                                          comparison.totals().drop(columns=["model", "group"])
                                                          .to_dict(orient="records"))}
    summary = {"spikescope_version": __version__, "command": command, "definitions": DEFINITIONS,
               "samples": next(iter(comparison.results.values())).info["samples"],
               "warnings": comparison.warnings, "models": models, **stats,
               "cka": {"reference": next(iter(comparison.groups[stats["reference"]])), "models": comparison.cka}}
    contents = {
        "comparison.csv": comparison.layers().to_csv(index=False).encode(),
        "comparison.json": json.dumps(plain(summary), indent=1, allow_nan=False).encode(),
        "comparison.html": render_comparison(comparison, stats, plotly_src or PLOTLY_JS, command).encode(),
    }
    if plotly_src is None:
        contents[PLOTLY_JS] = plotly_js().encode()
    marker = report_marker("compare", [meta["checkpoint"] for meta in comparison.meta.values()],
                           comparison.folder_variant, spikescope_version=__version__)
    with report_folder(out, marker) as staging:
        for name, data in contents.items():
            (staging / name).write_bytes(data)
    return {name: Path(out) / name for name in contents}
