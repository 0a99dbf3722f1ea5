"""The plotly figures of a comparison report: firing, energy, orientation, similarity, spectra and CKA."""
from __future__ import annotations

import html
from typing import Any, Iterable

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..compare import Comparison
from ..energy.models import TERMS
from .figures import PALETTE, TERM_COLOURS, TERM_NAMES, beside_total, grid_shape, priced_terms, term_column


def escaped(text: Any) -> str:
    """`text` as plotly must be given it to show it literally (plotly reads tags such as <b> and entities)."""
    return html.escape(str(text), quote=False)


def _spread(summary: dict[str, Any] | None) -> tuple[float, float, float]:
    """`(mean, mean - ci_low, ci_high - mean)` of a summary; no interval (0, 0) for fewer than two models."""
    if summary is None:
        return float("nan"), 0.0, 0.0
    if summary["n"] < 2:
        return summary["mean"], 0.0, 0.0
    return summary["mean"], summary["mean"] - summary["ci_low"], summary["ci_high"] - summary["mean"]


def _error_bars(minus: Iterable[float], plus: Iterable[float]) -> dict[str, Any] | None:
    """Plotly error bars from the distances to a 95% CI's ends (clipped intervals are not symmetric); none when
    no value has an interval."""
    minus, plus = (np.nan_to_num(np.asarray(list(v), dtype=float)) for v in (minus, plus))
    if not (minus.any() or plus.any()):
        return None
    return dict(type="data", symmetric=False, array=plus, arrayminus=minus)


def _layer_spreads(stats: dict[str, Any], group: str, layers: list[str], metric: str) -> tuple[list, list, list]:
    """Means and CI distances of `metric` in each layer for a group (see `_spread`)."""
    spreads = [_spread(stats["groups"][group]["layers"].get(layer, {}).get(metric)) for layer in layers]
    return tuple(map(list, zip(*spreads))) if spreads else ([], [], [])


def any_interval(stats: dict[str, Any]) -> bool:
    """Whether some group has two models or more (so that a 95% CI means something)."""
    return any(group["n"] > 1 for group in stats["groups"].values())


def firing_by_layer(comparison: Comparison, stats: dict[str, Any]) -> go.Figure:
    """Left: each group's firing rate per layer (mean over its models, 95% CI for two or more); right: the change of
    the group mean in percent of the reference's (a relative change)."""
    layers = comparison.layer_names()
    reference = stats["reference"]
    fig = make_subplots(rows=1, cols=2, column_widths=[0.55, 0.45],
                        subplot_titles=("firing rate per layer",
                                        f"relative change against {escaped(reference)} (%)"))
    x = [escaped(layer) for layer in layers]
    for index, group in enumerate(comparison.groups):
        means, minus, plus = _layer_spreads(stats, group, layers, "firing_rate")
        style = dict(marker_color=PALETTE[index % len(PALETTE)], legendgroup=escaped(group))
        fig.add_bar(x=x, y=means, error_y=_error_bars(minus, plus), name=escaped(group), row=1, col=1, **style)
        change = stats["changes"].get(group)
        if change is None:
            continue
        rows = [change["layers"][layer]["firing_rate"] for layer in layers]
        base = [abs(m) for m in _layer_spreads(stats, reference, layers, "firing_rate")[0]]
        scale = [100 / b if b else np.nan for b in base]
        minus = [(r["mean"] - r.get("ci_low", np.nan)) * s for r, s in zip(rows, scale)]
        plus = [(r.get("ci_high", np.nan) - r["mean"]) * s for r, s in zip(rows, scale)]
        fig.add_bar(x=x, y=[r["percent"] for r in rows], error_y=_error_bars(minus, plus), name=escaped(group),
                    showlegend=False, row=1, col=2, **style)
    fig.update_yaxes(title_text="spikes / (T x samples x neurons)", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="% of the reference's rate", row=1, col=2)
    fig.update_layout(height=420, barmode="group", margin=dict(t=60, b=40))
    return fig


def compared_terms(stats: dict[str, Any]) -> list[str]:
    """The energy terms the model prices on some group (`figures.priced_terms`): operations alone under compute-only
    models."""
    means = {term_column("SNN", term): sum(abs(g["totals"][term_column("SNN", term)]["mean"])
                                           for g in stats["groups"].values()) for term in TERMS}
    return priced_terms(means)


def energy_split(comparison: Comparison, stats: dict[str, Any], unit: tuple[str, float]) -> go.Figure:
    """Energy per image of each group (mean) in `unit`, split into the energy model's terms, or under a compute-only
    model into synaptic SOPs, analog MACs and FSTA's own MACs; with two models or more in a group, the 95% CI of
    its total."""
    pj = next(iter(comparison.results.values())).info.get("energy_pj", {"mac": float("nan"), "ac": float("nan")})
    groups = list(comparison.groups)
    x = [escaped(group) for group in groups]
    terms = compared_terms(stats)
    split = ([(TERM_NAMES[term], term_column("SNN", term), 1.0, TERM_COLOURS[term]) for term in terms]
             if terms != ["ops"] else [("synaptic SOPs (AC)", "sops_per_image", pj["ac"], PALETTE[0]),
                                       ("analog MACs", "macs_per_image", pj["mac"], PALETTE[1]),
                                       ("FSTA's MACs", "fsta_macs_per_image", pj["mac"], PALETTE[2])])
    fig = go.Figure()
    for name, metric, per_op, colour in split:
        fig.add_bar(x=x, y=[per_op * stats["groups"][g]["totals"][metric]["mean"] / unit[1] for g in groups],
                    name=name, marker_color=colour, hovertemplate=f"%{{x}}: %{{y:.4g}} {unit[0]}<extra>{name}</extra>")
    if any_interval(stats):
        means, minus, plus = zip(*(_spread(stats["groups"][g]["totals"]["energy_pj_per_image"]) for g in groups))
        fig.add_scatter(x=x, y=[m / unit[1] for m in means], mode="markers", name="total: 95% CI over models",
                        marker=dict(color="black", symbol="line-ew-open", size=14),
                        error_y=_error_bars([m / unit[1] for m in minus], [p / unit[1] for p in plus]))
    fig.update_yaxes(title_text=f"{unit[0]} per image", rangemode="tozero")
    fig.update_layout(barmode="stack", height=380, margin=dict(t=30, b=40))
    return fig


def energy_term_changes(comparison: Comparison, stats: dict[str, Any], unit: tuple[str, float]) -> go.Figure:
    """The change of each group's mean energy per image against the reference in `unit`: per term the model prices,
    in total and of the ANN twin's total; with the 95% CI of the mean paired difference where there are two pairs
    or more."""
    metrics = {**{TERM_NAMES[term]: term_column("SNN", term) for term in beside_total(compared_terms(stats))},
               "total": "energy_pj_per_image", "ANN twin's total": "ann_energy_pj_per_image"}
    fig = go.Figure()
    for index, group in enumerate(comparison.groups):
        change = stats["changes"].get(group)
        if change is None:
            continue
        rows = [change["totals"][metric] for metric in metrics.values()]
        minus = [(r["mean"] - r.get("ci_low", np.nan)) / unit[1] for r in rows]
        plus = [(r.get("ci_high", np.nan) - r["mean"]) / unit[1] for r in rows]
        fig.add_bar(x=list(metrics), y=[r["mean"] / unit[1] for r in rows], error_y=_error_bars(minus, plus),
                    name=escaped(group), marker_color=PALETTE[index % len(PALETTE)],
                    hovertemplate=f"%{{x}}: %{{y:+.4g}} {unit[0]}<extra>{escaped(group)}</extra>")
    fig.add_hline(y=0, line_color="#999999")
    fig.update_yaxes(title_text=f"change, {unit[0]} per image")
    fig.update_layout(barmode="group", height=380, margin=dict(t=30, b=40), showlegend=True)
    return fig


def orientation_by_depth(comparison: Comparison, stats: dict[str, Any]) -> go.Figure:
    """Orientation index against depth for every group (axis split solid, wedge split dashed)."""
    fig = go.Figure()
    layers = comparison.layer_names()
    for index, group in enumerate(comparison.groups):
        for split, dash in (("axis", "solid"), ("wedge", "dash")):
            means, minus, plus = _layer_spreads(stats, group, layers, f"{split}_OI")
            fig.add_scatter(x=[escaped(layer) for layer in layers], y=means, error_y=_error_bars(minus, plus),
                            mode="lines+markers", name=f"{escaped(group)}, {split}",
                            line=dict(dash=dash, color=PALETTE[index % len(PALETTE)]))
    fig.add_hline(y=0, line_color="#999999")
    fig.update_yaxes(title_text="OI: + vertical variation, - horizontal", range=[-1.05, 1.05])
    fig.update_layout(height=380, margin=dict(t=30, b=40))
    return fig


def similarity_summary(comparison: Comparison, stats: dict[str, Any]) -> go.Figure:
    """Mean off-diagonal spike cosine and spectral cosine (no DC) across timesteps, per layer and group."""
    layers = comparison.layer_names()
    fig = make_subplots(rows=1, cols=2, subplot_titles=("spike cosine between timesteps",
                                                        "spectral cosine between timesteps, no DC"))
    for index, group in enumerate(comparison.groups):
        for col, metric in ((1, "spike_cosine_mean_off_diagonal"), (2, "spectral_cosine_ac_mean_off_diagonal")):
            means, minus, plus = _layer_spreads(stats, group, layers, metric)
            fig.add_bar(x=[escaped(layer) for layer in layers], y=means, error_y=_error_bars(minus, plus),
                        name=escaped(group), row=1, col=col, marker_color=PALETTE[index % len(PALETTE)],
                        legendgroup=escaped(group), showlegend=col == 1)
    fig.update_yaxes(title_text="mean cosine", range=[0, 1.05])
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


def _axis_id(axis: Any) -> str:
    """The short id plotly uses to anchor one axis to another ('x', 'x2', ...)."""
    return axis.plotly_name.replace("axis", "")


def spectrum_difference(comparison: Comparison, group: str, reference: str, columns: int = 5) -> go.Figure | None:
    """One heatmap per layer: log10 share of the group's DCT power minus the reference group's, in square cells
    (u: vertical frequency, rows; v: horizontal frequency, columns); None when no layer has both spectra."""
    differences = {}
    for layer in comparison.layer_names():
        ref, shares = (mean_spectrum_shares(comparison, g, layer) for g in (reference, group))
        if ref is not None and shares is not None and shares.shape == ref.shape:
            differences[layer] = np.log10(np.maximum(shares, 1e-8)) - np.log10(np.maximum(ref, 1e-8))
    if not differences:
        return None
    rows, columns = grid_shape(len(differences), columns)
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=[escaped(layer) for layer in differences],
                        horizontal_spacing=0.06, vertical_spacing=0.3 / rows if rows > 1 else 0.0)
    for index, (layer, difference) in enumerate(differences.items()):
        row, col = index // columns + 1, index % columns + 1
        fig.add_heatmap(z=difference, coloraxis="coloraxis", row=row, col=col,
                        hovertemplate=f"{escaped(layer)}<br>u %{{y}}, v %{{x}}<br>difference %{{z:.2f}}<extra></extra>")
        axes = fig.get_subplot(row, col)
        fig.update_xaxes(title_text="v (horizontal)", constrain="domain", row=row, col=col)
        fig.update_yaxes(title_text="u (vertical)" if col == 1 else None, autorange="reversed", constrain="domain",
                         scaleanchor=_axis_id(axes.xaxis), scaleratio=1, row=row, col=col)
    limit = max(float(np.abs(d).max()) for d in differences.values()) or 1.0
    fig.update_layout(height=250 * rows + 90, margin=dict(t=70, b=40),
                      title=dict(text=f"{escaped(group)} minus {escaped(reference)}", x=0, font_size=14),
                      coloraxis=dict(colorscale="RdBu_r", cmin=-limit, cmax=limit,
                                     colorbar_title="log10 share<br>difference"))
    return fig


def cka_heatmaps(comparison: Comparison, columns: int = 3) -> go.Figure:
    """One heatmap per model other than the reference: linear CKA between every layer of the reference model (rows)
    and every layer of the model (columns), on the same images."""
    labels = list(comparison.cka)
    reference = comparison.groups[comparison.reference][0]
    rows, columns = grid_shape(len(labels), columns)
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=[escaped(label) for label in labels],
                        horizontal_spacing=0.12, vertical_spacing=0.3 / rows if rows > 1 else 0.0)
    for index, label in enumerate(labels):
        entry, row, col = comparison.cka[label], index // columns + 1, index % columns + 1
        fig.add_heatmap(z=entry["matrix"], x=[escaped(x) for x in entry["layers"]],
                        y=[escaped(y) for y in entry["reference_layers"]], coloraxis="coloraxis",
                        text=np.round(entry["matrix"], 2), texttemplate="%{text}", row=row, col=col,
                        hovertemplate=f"{escaped(label)} %{{x}} vs {escaped(reference)} %{{y}}: "
                                      "%{z:.3f}<extra></extra>")
        axes = fig.get_subplot(row, col)
        fig.update_xaxes(title_text=f"layers of {escaped(label)}", constrain="domain", row=row, col=col)
        fig.update_yaxes(title_text=f"layers of {escaped(reference)} (reference)" if col == 1 else None,
                         autorange="reversed",
                         constrain="domain", scaleanchor=_axis_id(axes.xaxis), row=row, col=col)
    fig.update_layout(height=400 * rows + 60, margin=dict(t=60, b=60),
                      coloraxis=dict(colorscale="Blues", cmin=0, cmax=1, colorbar_title="linear CKA"))
    return fig
