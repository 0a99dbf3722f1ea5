"""The comparison folder: comparison.csv, comparison.json and comparison.html (plotly), written whole or not at all."""
from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .. import __version__
from ..compare import DEFINITIONS, Comparison
from . import figures
from .figures import PALETTE
from .folder import report_folder
from .outputs import plain
from .page import PLOTLY_JS, figure_block, page, plotly_js
from .tables import COLUMN_FORMATS, table


def _errors(values) -> dict[str, Any] | None:
    """Plotly error bars for 95% CI half-widths; none when every group has a single model."""
    values = np.nan_to_num(np.asarray(values, dtype=float))
    return dict(type="data", array=values) if values.any() else None


def _mean_and_error(stats: dict[str, Any], group: str, layer: str, metric: str) -> tuple[float, float]:
    """A group's mean of `metric` in `layer` and the half-width of its 95% CI (0 for a group of one)."""
    summary = stats["groups"][group]["layers"].get(layer, {}).get(metric)
    if summary is None:
        return float("nan"), 0.0
    half = (summary["ci_high"] - summary["ci_low"]) / 2
    return summary["mean"], 0.0 if np.isnan(half) else half


def firing_by_layer(comparison: Comparison, stats: dict[str, Any]) -> go.Figure:
    """Left: each group's firing rate per layer (mean over its seeds, 95% CI); right: the change in percent."""
    layers = comparison.layer_names()
    fig = make_subplots(rows=1, cols=2, column_widths=[0.55, 0.45],
                        subplot_titles=("firing rate per layer", f"change against {stats['reference']} (%)"))
    for index, group in enumerate(comparison.groups):
        means, errors = zip(*(_mean_and_error(stats, group, layer, "firing_rate") for layer in layers))
        fig.add_bar(x=layers, y=means, error_y=_errors(errors), name=group, row=1, col=1,
                    marker_color=PALETTE[index % len(PALETTE)], legendgroup=group)
        change = stats["changes"].get(group)
        if change is not None:
            rows = [change["layers"][layer]["firing_rate"] for layer in layers]
            base = [abs(_mean_and_error(stats, stats["reference"], layer, "firing_rate")[0]) for layer in layers]
            errors = [(r.get("ci_high", np.nan) - r.get("ci_low", np.nan)) / 2 / b * 100 if b else np.nan
                      for r, b in zip(rows, base)]
            fig.add_bar(x=layers, y=[r["percent"] for r in rows], name=group, showlegend=False, row=1, col=2,
                        error_y=_errors(errors), legendgroup=group,
                        marker_color=PALETTE[index % len(PALETTE)])
    fig.update_yaxes(title_text="spikes / (T x samples x neurons)", row=1, col=1)
    fig.update_layout(height=420, barmode="group", margin=dict(t=60, b=40))
    return fig


def energy_split(comparison: Comparison, stats: dict[str, Any]) -> go.Figure:
    """Energy per image of each group (mean), split into synaptic SOPs, analog MACs and FSTA's own MACs."""
    pj = next(iter(comparison.results.values())).info.get("energy_pj", {"mac": float("nan"), "ac": float("nan")})
    groups = list(comparison.groups)
    means = {m: [stats["groups"][g]["totals"][m]["mean"] for g in groups]
             for m in ("sops_per_image", "macs_per_image", "fsta_macs_per_image")}
    fig = go.Figure()
    fig.add_bar(x=groups, y=[pj["ac"] * v for v in means["sops_per_image"]], name="synaptic SOPs (AC)")
    fig.add_bar(x=groups, y=[pj["mac"] * v for v in means["macs_per_image"]], name="analog MACs")
    fig.add_bar(x=groups, y=[pj["mac"] * v for v in means["fsta_macs_per_image"]], name="FSTA's MACs")
    fig.update_yaxes(title_text="pJ per image")
    fig.update_layout(barmode="stack", height=380, margin=dict(t=30, b=40))
    return fig


def orientation_by_depth(comparison: Comparison, stats: dict[str, Any]) -> go.Figure:
    """Orientation index against depth for every group (axis split solid, wedge split dashed)."""
    fig = go.Figure()
    layers = comparison.layer_names()
    for index, group in enumerate(comparison.groups):
        for split, dash in (("axis", "solid"), ("wedge", "dash")):
            means, errors = zip(*(_mean_and_error(stats, group, layer, f"{split}_OI") for layer in layers))
            fig.add_scatter(x=layers, y=means, error_y=_errors(errors), mode="lines+markers",
                            name=f"{group}, {split}", line=dict(dash=dash, color=PALETTE[index % len(PALETTE)]))
    fig.add_hline(y=0, line_color="#999999")
    fig.update_yaxes(title_text="OI: + vertical variation, - horizontal", range=[-1, 1])
    fig.update_layout(height=380, margin=dict(t=30, b=40))
    return fig


def similarity_summary(comparison: Comparison, stats: dict[str, Any]) -> go.Figure:
    """Mean off-diagonal spike cosine and spectral cosine (no DC) across timesteps, per layer and group."""
    layers = comparison.layer_names()
    fig = make_subplots(rows=1, cols=2, subplot_titles=("spike cosine between timesteps",
                                                        "spectral cosine between timesteps, no DC"))
    for index, group in enumerate(comparison.groups):
        for col, metric in ((1, "spike_cosine_mean_off_diagonal"), (2, "spectral_cosine_ac_mean_off_diagonal")):
            means, errors = zip(*(_mean_and_error(stats, group, layer, metric) for layer in layers))
            fig.add_bar(x=layers, y=means, error_y=_errors(errors), name=group, row=1, col=col,
                        marker_color=PALETTE[index % len(PALETTE)], legendgroup=group, showlegend=col == 1)
    fig.update_layout(height=400, barmode="group", margin=dict(t=60, b=40))
    return fig


def mean_spectrum_shares(comparison: Comparison, group: str, layer: str) -> np.ndarray | None:
    """The group's mean over its models of the layer's DCT power (summed over time) as shares of its total."""
    shares = []
    for label in comparison.groups[group]:
        power = comparison.results[label].spectra.get(layer)
        if power is not None and power.sum() > 0:
            summed = power.sum(axis=0)
            shares.append(summed / summed.sum())
    return np.mean(shares, axis=0) if shares else None


def spectrum_differences(comparison: Comparison, reference: str) -> go.Figure | None:
    """Per layer (columns) and group (rows): log10 share of the DCT power minus the reference group's."""
    others = [g for g in comparison.groups if g != reference]
    layers = [layer for layer in comparison.layer_names() if mean_spectrum_shares(comparison, reference, layer)
              is not None]
    if not layers or not others:
        return None
    fig = make_subplots(rows=len(others), cols=len(layers), horizontal_spacing=0.03,
                        vertical_spacing=0.5 / max(1, len(others)) if len(others) > 1 else 0.0,
                        subplot_titles=[f"{layer}<br>{group} - {reference}" for group in others for layer in layers])
    for row, group in enumerate(others, start=1):
        for col, layer in enumerate(layers, start=1):
            ref, shares = mean_spectrum_shares(comparison, reference, layer), mean_spectrum_shares(comparison, group,
                                                                                                 layer)
            if shares is None or shares.shape != ref.shape:
                continue
            difference = np.log10(np.maximum(shares, 1e-8)) - np.log10(np.maximum(ref, 1e-8))
            height, width = difference.shape
            fig.add_heatmap(z=difference, x=np.arange(width) / width, y=np.arange(height) / height, row=row, col=col,
                            coloraxis="coloraxis",
                            hovertemplate="v/W %{x:.2f}<br>u/H %{y:.2f}<br>difference %{z:.2f}<extra></extra>")
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=260 * len(others) + 100, margin=dict(t=70, b=30),
                      coloraxis=dict(colorscale="RdBu_r", cmid=0, colorbar_title="log10 share<br>difference"))
    return fig


def _cell(summary: dict[str, Any], metric: str) -> str:
    """`mean [ci_low, ci_high] (n)` in the metric's format, or the mean alone for a group of one."""
    fmt = COLUMN_FORMATS.get(metric, lambda v: f"{v:.4g}")
    if summary["n"] > 1:
        return f"{fmt(summary['mean'])} [{fmt(summary['ci_low'])}, {fmt(summary['ci_high'])}] (n={summary['n']})"
    return f"{fmt(summary['mean'])} (n={summary['n']})"


def _change_cell(change: dict[str, Any], metric: str) -> str:
    fmt = COLUMN_FORMATS.get(metric, lambda v: f"{v:.4g}")
    text = f"{fmt(change['mean'])} ({change['percent']:+.1f} %)"
    if change.get("paired") and change["n"] > 1:
        p = change.get("p_value")
        text += f", CI [{fmt(change['ci_low'])}, {fmt(change['ci_high'])}], p = {p:.3g}" if p == p else ""
    return f"{text} (n={change['n']})"


def _totals_section(comparison: Comparison, stats: dict[str, Any]) -> str:
    rows = []
    for group in comparison.groups:
        totals = stats["groups"][group]["totals"]
        row = {"group": group, **{m: _cell(totals[m], m) for m in totals}}
        rows.append(row)
    groups_table = table(pd.DataFrame(rows), {"group": "group", "accuracy": "accuracy", "firing_rate": "firing rate",
                                              "sops_per_image": "SOPs", "macs_per_image": "analog MACs",
                                              "fsta_macs_per_image": "FSTA MACs",
                                              "energy_pj_per_image": "energy (pJ)",
                                              "energy_pj_per_image_without_fsta": "energy without FSTA (pJ)"},
                         numbers=False)
    changes = [{"group": group, **{m: _change_cell(c, m) for m, c in change["totals"].items()}}
               for group, change in stats["changes"].items()]
    changes_table = table(pd.DataFrame(changes), {"group": "group", "accuracy": "accuracy",
                                                  "firing_rate": "firing rate", "sops_per_image": "SOPs",
                                                  "energy_pj_per_image": "energy (pJ)",
                                                  "energy_pj_per_image_without_fsta": "energy without FSTA (pJ)"},
                          numbers=False)
    return (groups_table
            + f"<p class='caption'>Mean [95% CI] over each group's models, per image; n = models (seeds).</p>"
            f"<h3>Change against {html.escape(stats['reference'])}</h3>"
            + changes_table
            + "<p class='caption'>Group mean minus the reference mean (percent of the reference); with seeds on "
              "both sides, the CI and p-value of the paired difference (paired t-test).</p>")


def _models_section(comparison: Comparison) -> str:
    rows = [{"model": label, "group": comparison.group_of(label), "checkpoint": meta.get("checkpoint"),
             "architecture": meta.get("model"), "fsta": meta.get("arch_kwargs", {}).get("fsta", False),
             "seed": meta.get("train_config", {}).get("seed", "?")} for label, meta in comparison.meta.items()]
    return table(pd.DataFrame(rows), {"model": "model", "group": "group", "architecture": "architecture",
                                      "fsta": "FSTA", "seed": "training seed", "checkpoint": "checkpoint"})


def cka_heatmaps(comparison: Comparison, columns: int = 3) -> go.Figure:
    """One heatmap per model other than the reference: linear CKA between every reference layer (rows) and
    every layer of the model (columns), on the same images."""
    labels = list(comparison.cka)
    rows, columns = math.ceil(len(labels) / columns), max(1, min(columns, len(labels)))
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=labels, horizontal_spacing=0.12,
                        vertical_spacing=0.25 / rows if rows > 1 else 0.0)
    for index, label in enumerate(labels):
        entry = comparison.cka[label]
        fig.add_heatmap(z=entry["matrix"], x=entry["layers"], y=entry["reference_layers"], coloraxis="coloraxis",
                        text=np.round(entry["matrix"], 2), texttemplate="%{text}",
                        row=index // columns + 1, col=index % columns + 1,
                        hovertemplate=f"{label} %{{x}} vs reference %{{y}}: %{{z:.3f}}<extra></extra>")
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=360 * rows + 80, margin=dict(t=60, b=60),
                      coloraxis=dict(colorscale="Blues", cmin=0, cmax=1, colorbar_title="linear CKA"))
    return fig


def _membrane_section(comparison: Comparison) -> str:
    """Each group's membrane-potential distribution per layer (counts pooled over its models and timesteps)."""
    pooled = {group: {layer: sum(comparison.results[label].membrane[layer].sum(axis=0) for label in members)
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


def render_comparison(comparison: Comparison, stats: dict[str, Any], plotly_src: str, command: str) -> str:
    first = next(iter(comparison.results.values()))
    dataset = next(iter(comparison.meta.values())).get("dataset", "?")
    reference = stats["reference"]
    sections = [
        ("Models and data", f"<p>{first.info['samples']:,} images of {html.escape(dataset)}, the same for every "
                            f"model; T = {first.info['T']}. Reference: <b>{html.escape(reference)}</b>. Command: "
                            f"<code>{html.escape(command)}</code>.</p>" + _models_section(comparison)),
        ("Totals", _totals_section(comparison, stats)),
        ("Firing rate per layer", figure_block("firing", firing_by_layer(comparison, stats),
                                               "Mean over each group's models with 95% CI; right: change of the "
                                               "group mean against the reference, with the CI of the paired "
                                               "difference.")),
        ("Energy", figure_block("energy", energy_split(comparison, stats),
                                "Compute energy per image (group means): accumulates of spike-fed synaptic layers, "
                                "multiply-accumulates of analog-fed layers, and FSTA's own multiply-accumulates.")),
        ("Orientation against depth", figure_block("orientation", orientation_by_depth(comparison, stats),
                                                   "OI = (E_vert - E_horz) / (E_vert + E_horz) per layer; "
                                                   "positive when variation along the height dominates.")),
        ("Similarity across timesteps", figure_block("similarity", similarity_summary(comparison, stats),
                                                     "Mean of the off-diagonal entries of each layer's T x T "
                                                     "cosine matrices.")),
    ]
    if comparison.cka:
        reference_model = next(iter(comparison.groups[reference]))
        sections.append(("Representations across models (CKA)", figure_block(
            "cka", cka_heatmaps(comparison),
            f"Linear CKA between the layers of <b>{html.escape(reference_model)}</b> (rows) and those of each other "
            "model (columns), on the same images run side by side: each layer's channel features (spikes averaged "
            "over positions and timesteps), centred over the images. 1 on the diagonal: the layer represents the "
            "images as the reference's does, up to a rotation and a scale; lower: the model changed what it "
            "represents there.")))
    if any(result.membrane for result in comparison.results.values()):
        sections.append(("Membrane potentials", _membrane_section(comparison)))
    spectra = spectrum_differences(comparison, reference)
    if spectra is not None:
        sections.append(("Spectrum differences", figure_block(
            "spectra", spectra, "log10 of each layer's DCT power share (group mean) minus the reference's: red "
                                "where a group puts more of its power, blue where less.")))
    definitions = "".join(f"<tr><th class='text'>{html.escape(k)}</th><td class='text'>{html.escape(v)}</td></tr>"
                          for k, v in {**first.definitions, **DEFINITIONS}.items())
    sections.append(("Definitions", f"<table>{definitions}</table>"))
    title = f"{len(comparison.results)} models in {len(comparison.groups)} groups on {dataset}"
    return page("spikescope comparison", title, sections, plotly_src)


def write_comparison(comparison: Comparison, out: str | Path, plotly_src: str | None = None,
                     command: str = "") -> dict[str, Path]:
    """Write comparison.csv, comparison.json and comparison.html (+ plotly.min.js unless `plotly_src` names a
    shared copy) into the folder `out`, whole or not at all; returns the files by name."""
    stats = comparison.statistics()
    models = {label: {"group": comparison.group_of(label), **meta, **comparison_totals}
              for (label, meta), comparison_totals in zip(comparison.meta.items(),
                                                          comparison.totals().drop(columns=["model", "group"])
                                                          .to_dict(orient="records"))}
    summary = {"spikescope_version": __version__, "command": command, "definitions": DEFINITIONS,
               "samples": next(iter(comparison.results.values())).info["samples"], "models": models, **stats,
               "cka": {"reference": next(iter(comparison.groups[stats["reference"]])), "models": comparison.cka}}
    contents = {
        "comparison.csv": comparison.layers().to_csv(index=False).encode(),
        "comparison.json": json.dumps(plain(summary), indent=1, allow_nan=False).encode(),
        "comparison.html": render_comparison(comparison, stats, plotly_src or PLOTLY_JS, command).encode(),
    }
    if plotly_src is None:
        contents[PLOTLY_JS] = plotly_js().encode()
    with report_folder(out, {"kind": "compare", "source": None, "spikescope_version": __version__}) as staging:
        for name, data in contents.items():
            (staging / name).write_bytes(data)
    return {name: Path(out) / name for name in contents}
