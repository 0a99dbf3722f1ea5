"""The frequency report's section on FSTA's frequencies (`fsta_section`): per FSTA position, which DCT bases of its
spatial branch the decision and the attention draw on, and what its temporal descriptors weigh."""
from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..frequency.fsta_frequencies import SPATIAL, FstaFrequencies
from .page import figure_block
from .tables import table

PANELS = {"accuracy_change": ("accuracy drop (pp)", -100.0, "Reds"), "gain_change": ("gain change (%)", 100.0, "Blues")}
COLUMNS = {"accuracy_change": (100, " pp", "+.1f"), "logit_change": (1, "", "+.3g"), "kl": (1, " nats", ".3g"),
           "gain_change": (100, " %", ".2f")}
HEADERS = {"accuracy_change": "accuracy change", "logit_change": "target-logit change", "kl": "KL (nats)",
           "gain_change": "gain change"}


def fsta_section(result: FstaFrequencies) -> str:
    """HTML: how the components are ablated, then per position a k x k heatmap of the accuracy drop and of the gain
    change per DCT basis, a one-line reading, and the temporal descriptors and references as a table."""
    intro = ("<p>Each DCT basis (u, v) of an FSTA module's spatial branch is ablated alone by setting its frequency "
             "map to zero before the fusion convolution; each temporal descriptor by zeroing its coefficient (alpha "
             "for the mean, beta for the max); spatial_gate and temporal_gate ablate a whole gate (its sigmoid then "
             "reads 0.5), identity nothing. Rows u: vertical frequency (variation along the height); columns v: "
             "horizontal frequency (along the width); (0, 0) is the local mean. Accuracy drop in percentage points; "
             "gain change: mean |change of FSTA's gain| / mean gain at that position, on the same current. "
             f"{result.info['images']:,} images, {result.info['seconds']:.0f} s; 95 % t intervals over images.</p>")
    effects = result.effects()
    blocks = [_position(result, effects, index, position) for index, position in enumerate(result.positions)]
    return intro + "".join(blocks)


def _position(result: FstaFrequencies, effects: pd.DataFrame, index: int, position: str) -> str:
    """One position's heatmaps, reading and table."""
    rows = effects[(effects["position"] == position) & (effects["kind"] != SPATIAL)]
    figure = ""
    if any(c.kind == SPATIAL for c in result.components[position]):
        figure = figure_block(f"fsta-frequencies-{index}", _heatmaps(result, position),
                              f"{html.escape(position)}: accuracy drop (left) and gain change (right) when each DCT "
                              "basis of the spatial branch is ablated; u down (vertical frequency), v across "
                              "(horizontal frequency).")
    return (f"<h3>{html.escape(position)}</h3>{figure}<p>{html.escape(reading(result, position))}</p>"
            + _table(rows))


def _heatmaps(result: FstaFrequencies, position: str) -> go.Figure:
    """Two k x k heatmaps: the accuracy drop and the gain change per basis, u rows (vertical), v columns."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.18, subplot_titles=[p[0] for p in PANELS.values()])
    for col, (measure, (title, scale, colours)) in enumerate(PANELS.items(), start=1):
        z = scale * result.grid(position, measure)
        k = z.shape[0]
        fig.add_heatmap(z=z, x=list(range(k)), y=list(range(k)), colorscale=colours, row=1, col=col,
                        colorbar=dict(x=0.42 if col == 1 else 1.0, len=0.9),
                        hovertemplate=f"u %{{y}}, v %{{x}}<br>{title}: %{{z:.3g}}<extra></extra>")
    fig.update_xaxes(title_text="v: horizontal frequency", dtick=1)
    fig.update_yaxes(title_text="u: vertical frequency", autorange="reversed", dtick=1)
    fig.update_layout(height=380, width=820, margin=dict(t=50, b=50, l=60, r=40))
    return fig


def reading(result: FstaFrequencies, position: str, count: int = 3) -> str:
    """One line: the bases with the largest gain change and the largest accuracy drop at `position`."""
    if not any(c.kind == SPATIAL for c in result.components[position]):
        return f"{position} has no spatial branch."
    by_gain = ", ".join(f"({u}, {v}) {100 * value:.2f} %" for u, v, value in result.top(position, "gain_change",
                                                                                         count))
    drops = [(u, v, value) for u, v, value in result.top(position, "accuracy_change", count, largest=False)
             if value < 0]
    decision = (", ".join(f"({u}, {v}) {-100 * value:.1f} pp" for u, v, value in drops) if drops
                else "no single basis lowers the accuracy")
    return f"{position} draws most on (u, v) = {by_gain} of its gain; accuracy drop: {decision}."


def _table(rows: pd.DataFrame) -> str:
    """The non-basis components, each measure as `mean [interval]`."""
    shown = pd.DataFrame({"component": rows["component"], "kind": rows["kind"]})
    for measure, (scale, unit, spec) in COLUMNS.items():
        shown[measure] = [f"{scale * r[f'{measure}_mean']:{spec}} [{scale * r[f'{measure}_ci_low']:{spec}}, "
                          f"{scale * r[f'{measure}_ci_high']:{spec}}]{unit}" if np.isfinite(r[f"{measure}_ci_low"])
                          else f"{scale * r[f'{measure}_mean']:{spec}}{unit}" for _, r in rows.iterrows()]
    return table(shown, {"component": "component", "kind": "kind",
                         **{m: f"{name} [95 % CI]" for m, name in HEADERS.items()}}, numbers=False)
