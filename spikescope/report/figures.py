"""Interactive plotly figures of an `AnalysisResult` (one function per figure of the report)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..analyze import AnalysisResult
from ..energy.models import TERMS
from ..metrics.membrane import EDGES

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def grid_shape(count: int, columns: int) -> tuple[int, int]:
    """`(rows, columns)` of a grid of `count` panels at most `columns` wide (fewer columns for fewer panels)."""
    columns = max(1, min(columns, count))
    return math.ceil(count / columns), columns


def firing_rates(result: AnalysisResult) -> go.Figure:
    """Bars: firing rate per layer; lines: per timestep; second panel: silent-neuron percentage."""
    layers = result.layers
    fig = make_subplots(rows=1, cols=2, column_widths=[0.68, 0.32],
                        subplot_titles=("firing rate per layer and timestep", "silent neurons (%)"))
    fig.add_bar(x=layers["layer"], y=layers["firing_rate"], name="all timesteps", marker_color="#9ecae1",
                row=1, col=1)
    for t, steps in result.timesteps.groupby("t"):
        fig.add_scatter(x=steps["layer"], y=steps["firing_rate"], mode="lines+markers", name=f"t = {t}",
                        line_color=PALETTE[int(t) % len(PALETTE)], row=1, col=1)
    fig.add_bar(x=layers["layer"], y=100 * layers["silent_fraction"], name="silent", marker_color="#bdbdbd",
                showlegend=False, row=1, col=2)
    fig.update_yaxes(title_text="spikes / (T x samples x neurons)", row=1, col=1)
    fig.update_layout(height=420, barmode="overlay", margin=dict(t=60, b=40))
    return fig


def channel_rates(result: AnalysisResult) -> go.Figure:
    """Distribution of the per-channel firing rates of every layer (box plots with every channel as a point)."""
    fig = go.Figure()
    for index, (layer, rows) in enumerate(result.channels.groupby("layer", sort=False)):
        fig.add_box(y=rows["firing_rate"], name=layer, boxpoints="all", jitter=0.4, pointpos=0, marker_size=3,
                    line_color=PALETTE[index % len(PALETTE)], customdata=rows["channel"],
                    hovertemplate="channel %{customdata}: %{y:.4f}<extra></extra>", showlegend=False)
    fig.update_yaxes(title_text="firing rate per channel")
    fig.update_layout(height=380, margin=dict(t=30, b=40))
    return fig


def _row_spacing(rows: int, row_px: int, gap_px: int) -> tuple[float, int]:
    """`(vertical_spacing, plot area in px)` for `rows` rows `row_px` tall with `gap_px` between them; plotly
    counts the spacing as a fraction of the area between the top and bottom margins."""
    area = rows * row_px + (rows - 1) * gap_px
    return (gap_px / area if rows > 1 else 0.0), area


def spectra(result: AnalysisResult, columns: int = 4, row_px: int = 240, gap_px: int = 90) -> go.Figure:
    """Per-layer DCT power (summed over time), as log10 of its share of the layer's power, on normalised axes."""
    names = list(result.spectra)
    rows, columns = grid_shape(len(names), columns)
    spacing, area = _row_spacing(rows, row_px, gap_px)
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=names, horizontal_spacing=0.06,
                        vertical_spacing=spacing)
    for index, name in enumerate(names):
        power = result.spectra[name].sum(axis=0)
        share = power / power.sum() if power.sum() > 0 else power
        height, width = share.shape
        fig.add_heatmap(z=np.log10(np.maximum(share, 1e-8)), x=np.arange(width) / width, y=np.arange(height) / height,
                        coloraxis="coloraxis", row=index // columns + 1, col=index % columns + 1,
                        hovertemplate="v/W %{x:.2f}<br>u/H %{y:.2f}<br>log10 share %{z:.2f}<extra></extra>")
    fig.update_xaxes(title_text="horizontal frequency v/W")
    fig.update_yaxes(title_text="vertical frequency u/H", autorange="reversed")
    fig.update_layout(height=area + 100, coloraxis=dict(colorscale="Viridis", colorbar_title="log10 share"),
                      margin=dict(t=50, b=50))
    return fig


def orientation_by_depth(result: AnalysisResult) -> go.Figure:
    """Orientation index of each conv layer against depth, axis and wedge splits, all timesteps and per timestep."""
    rows = result.layers[result.layers["height"].notna()]
    fig = go.Figure()
    for split, dash in (("axis", "solid"), ("wedge", "dash")):
        fig.add_scatter(x=rows["layer"], y=rows[f"{split}_OI"], mode="lines+markers", name=f"{split} split",
                        line=dict(width=3, dash=dash, color="#333333"))
        for t, steps in result.timesteps.dropna(subset=[f"{split}_OI"]).groupby("t"):
            fig.add_scatter(x=steps["layer"], y=steps[f"{split}_OI"], mode="lines", name=f"{split}, t = {t}",
                            line=dict(dash=dash, color=PALETTE[int(t) % len(PALETTE)], width=1), visible="legendonly")
    fig.add_hline(y=0, line_color="#999999")
    fig.update_yaxes(title_text="OI: + vertical variation, - horizontal", range=[-1, 1])
    fig.update_layout(height=380, margin=dict(t=30, b=40))
    return fig


SIMILARITY_PANELS = (("spike_cosine", "spike cosine"), ("spectral_cosine", "spectral cosine"),
                     ("spectral_cosine_ac", "spectral cosine, no DC"), ("cka", "linear CKA"))


def similarity(result: AnalysisResult, columns: int = 6, row_px: int = 230, gap_px: int = 110) -> go.Figure:
    """Per-layer T x T matrices: spike cosine, spectral cosine, spectral cosine without DC, and linear CKA
    (rows).

    Rows are `row_px` tall with `gap_px` between them, room for an axis title and the next row's
    two-line panel titles.
    """
    names = list(result.similarity)
    columns = max(1, min(columns, len(names)))
    groups = math.ceil(len(names) / columns)
    panels = len(SIMILARITY_PANELS)
    titles = []
    for group in range(groups):
        chunk = names[group * columns:(group + 1) * columns]
        for key, label in SIMILARITY_PANELS:
            titles += [f"{n}<br>{label}" if key in result.similarity[n] else "" for n in chunk]
            titles += [""] * (columns - len(chunk))
    rows = panels * groups
    spacing, area = _row_spacing(rows, row_px, gap_px)
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=titles, vertical_spacing=spacing,
                        horizontal_spacing=0.04)
    for index, name in enumerate(names):
        row, col = panels * (index // columns) + 1, index % columns + 1
        for offset, (key, _) in enumerate(SIMILARITY_PANELS):
            matrix = result.similarity[name].get(key)
            if matrix is None:
                continue
            steps = np.arange(matrix.shape[0])
            fig.add_heatmap(z=matrix, x=steps, y=steps, coloraxis="coloraxis", row=row + offset, col=col,
                            text=np.round(matrix, 3), texttemplate="%{text}",
                            hovertemplate="t %{y} vs t' %{x}: %{z:.4f}<extra></extra>")
    fig.update_xaxes(title_text="t'", title_standoff=2, dtick=1)
    fig.update_yaxes(title_text="t", title_standoff=2, dtick=1, autorange="reversed")
    fig.update_layout(height=area + 100, margin=dict(t=70, b=30),
                      coloraxis=dict(colorscale="Blues", cmin=0, cmax=1, colorbar_title="cosine<br>or CKA"))
    return fig


ENERGY_READINGS = {"energy_pj_per_image": "spike sums as events (spikescope)",
                   "energy_pj_approx_per_image": "paper-style fr x FLOPs",
                   "energy_pj_dense_reading_per_image": "spike sums as dense MACs"}


def energy(result: AnalysisResult) -> go.Figure:
    """Energy per image and part of the network in pJ (the unit of the table) under each reading: spikescope's
    events, the paper-style fr x FLOPs, and spike sums read as dense MACs."""
    return _energy_bars(result.energy_by_part(), "part")


def energy_operations(result: AnalysisResult) -> go.Figure:
    """Energy per image of every costed operation, in the order the network runs them, under each reading."""
    return _energy_bars(result.energy, "layer")


def _energy_bars(table: pd.DataFrame, by: str) -> go.Figure:
    fig = go.Figure()
    for index, (column, name) in enumerate(ENERGY_READINGS.items()):
        fig.add_bar(x=table[by], y=table[column], name=name, marker_color=PALETTE[index])
    fig.update_yaxes(title_text="pJ per image")
    fig.update_layout(barmode="group", height=380, margin=dict(t=30, b=40), legend=dict(orientation="h", y=1.1))
    return fig


TERM_NAMES = {"ops": "operations", "addressing": "addressing", "inout": "in/out memory",
              "params": "parameter memory", "potentials": "potential memory"}  # the energy models' `TERMS`
TERM_COLOURS = {"ops": "#1f77b4", "addressing": "#9467bd", "inout": "#2ca02c", "params": "#ff7f0e",
                "potentials": "#d62728"}
SIDES = {"SNN": "energy_{term}pj_per_image", "ANN": "ann_energy_{term}pj_per_image"}  # column of each side


def term_column(side: str, term: str | None = None) -> str:
    """The column (of `result.energy`, or key of `energy_totals()`) of `side`'s energy of `term` (None: total)."""
    return SIDES[side].format(term=f"{term}_" if term else "")


def priced_terms(totals: dict[str, float]) -> list[str]:
    """The terms the energy model prices on this network (non-zero on the SNN or its twin): compute-only models
    have operations alone."""
    return [term for term in TERMS if term == "ops" or any(totals.get(term_column(side, term)) for side in SIDES)]


def beside_total(terms: list[str]) -> list[str]:
    """The terms a table or a figure of changes lists beside the total: none where the total has one term (a
    compute-only model's operations), which would only repeat it."""
    return terms if len(terms) > 1 else []


def energy_terms(result: AnalysisResult) -> go.Figure:
    """Energy per image in pJ of every costed row (spiking layers' own updates included) and in total, split into
    the model's terms: per row two stacked bars, the SNN's and its ANN twin's (a spiking layer's twin, an
    activation function, costs nothing)."""
    rows, totals = result.energy, result.energy_totals()
    terms = priced_terms(totals)
    fig = make_subplots(rows=1, cols=2, column_widths=[0.86, 0.14], horizontal_spacing=0.06,
                        subplot_titles=("per layer", "total"))
    x = [[layer for layer in rows["layer"] for _ in SIDES], [side for _ in rows["layer"] for side in SIDES]]
    total_x = [["total"] * len(SIDES), list(SIDES)]
    patterns = ["", "/"] * len(rows)
    for term in terms:
        style = dict(name=TERM_NAMES[term], legendgroup=term, marker_color=TERM_COLOURS[term],
                     hovertemplate=f"%{{x}}: %{{y:,.0f}} pJ<extra>{TERM_NAMES[term]}</extra>")
        values = [row[term_column(side, term)] for _, row in rows.iterrows() for side in SIDES]
        fig.add_bar(x=x, y=values, marker_pattern_shape=patterns, row=1, col=1, **style)
        fig.add_bar(x=total_x, y=[totals[term_column(side, term)] for side in SIDES],
                    marker_pattern_shape=patterns[:len(SIDES)], showlegend=False, row=1, col=2, **style)
    fig.update_yaxes(title_text="pJ per image", row=1, col=1)
    fig.update_layout(barmode="stack", height=460, margin=dict(t=60, b=40), legend=dict(orientation="h", y=1.14))
    return fig


def spike_maps(result: AnalysisResult, samples: int = 3) -> go.Figure:
    """For the first samples: the fraction of a layer's channels firing at each position, per timestep."""
    names = [n for n, s in result.captured.items() if s.ndim == 5]
    T = result.info["T"]
    samples = min([samples] + [result.captured[n].shape[1] for n in names])
    columns = samples * T
    titles = [f"{name}<br>sample {k}, t = {t}" for name in names for k in range(samples) for t in range(T)]
    fig = make_subplots(rows=len(names), cols=columns, subplot_titles=titles, horizontal_spacing=0.02,
                        vertical_spacing=0.3 / max(1, len(names)))
    for row, name in enumerate(names, start=1):
        maps = (result.captured[name] > 0).mean(axis=2)  # [T, K, H, W]: share of channels firing
        for k in range(samples):
            for t in range(T):
                fig.add_heatmap(z=maps[t, k], coloraxis="coloraxis", row=row, col=k * T + t + 1,
                                hovertemplate="h %{y}, w %{x}: %{z:.2f}<extra></extra>")
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False, autorange="reversed", scaleanchor=None)
    fig.update_layout(height=170 * len(names) + 110, coloraxis=dict(colorscale="Greys", cmin=0, cmax=1,
                                                                   colorbar_title="share of<br>channels"),
                      margin=dict(t=90, b=20))
    return fig


def membrane_histograms(histograms: dict[str, dict[str, np.ndarray]], columns: int = 3, row_px: int = 230,
                        gap_px: int = 90) -> go.Figure:
    """Per layer: the distribution of u / threshold of the neurons that did not fire, as a share of all neurons,
    one line per entry of `histograms[label][layer]` (`[T, bins]` counts; per timestep, or per model). The
    catch-all bin below the first edge is a marker apart from the line, left of it; the threshold is labelled."""
    layers = list(dict.fromkeys(layer for per_layer in histograms.values() for layer in per_layer))
    rows, columns = grid_shape(len(layers), columns)
    spacing, area = _row_spacing(rows, row_px, gap_px)
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=layers, horizontal_spacing=0.06,
                        vertical_spacing=spacing)
    centres = (EDGES[:-1] + EDGES[1:]) / 2
    below = EDGES[0] - 1.0  # where the catch-all bin is drawn, a gap away from the first bin
    for index, layer in enumerate(layers):
        for line, (label, per_layer) in enumerate(histograms.items()):
            if layer not in per_layer:
                continue
            counts = per_layer[layer].sum(axis=0) if per_layer[layer].ndim == 2 else per_layer[layer]
            share = 100 * counts / counts.sum()
            fired = f"fired: {share[-1]:.1f} %"
            colour, cell = PALETTE[line % len(PALETTE)], dict(row=index // columns + 1, col=index % columns + 1)
            fig.add_scatter(x=centres, y=share[1:-1], mode="lines", name=label, legendgroup=label,
                            line_color=colour, showlegend=index == 0, **cell,
                            hovertemplate=f"u/threshold %{{x:.3f}}: %{{y:.2f}} %<br>{fired}<extra>{label}</extra>")
            fig.add_scatter(x=[below], y=[share[0]], mode="markers", name=label, legendgroup=label,
                            marker=dict(color=colour, symbol="triangle-left", size=9), showlegend=False, **cell,
                            hovertemplate=f"u/threshold below {EDGES[0]:g}: %{{y:.2f}} %<br>{fired}"
                                          f"<extra>{label}</extra>")
    fig.add_vline(x=1.0, line_dash="dot", line_color="#888", annotation_text="threshold",
                  annotation_position="top left", annotation_font=dict(size=11, color="#666"))
    fig.update_xaxes(title_text="u / threshold (did not fire)", tickvals=[below, -6, -4, -2, 0, 1],
                     ticktext=[f"< {EDGES[0]:g}", "-6", "-4", "-2", "0", "1"])
    fig.update_yaxes(title_text="% of neurons")
    fig.update_layout(height=area + 120, margin=dict(t=50, b=50))
    return fig
