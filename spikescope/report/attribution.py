"""The attribution section of a report: per example image, the input, the attribution per timestep and the spike
activation map (SAM) of every layer; the figures, the table and the text that say what was computed."""
from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..attribution import INPUT_METHODS, Attribution
from .page import figure_block
from .tables import table

SIGNED_METHODS = ("ig", "occlusion", "layer-ig")  # attributions that can be negative
METHOD_NAMES = {"saliency": "saliency (absolute input gradient)", "ig": "integrated gradients",
                "occlusion": "occlusion", "gradcam": "Grad-CAM on a spiking layer",
                "layer-ig": "layer integrated gradients on a spiking layer", "sam": "spike activation map"}
CELL_PX = 200  # side of one map in the attribution figure, at most
SAM_CELL_PX = 130  # and in a SAM grid, whose rows are layers: five layers stay within a screen
PAGE_PX = 1100  # figures fill a page of this width
MAPS_PER_ROW = 6  # the attribution figure puts several images side by side until a row holds this many maps
MOST_COLUMNS = 16  # of maps per row: more timesteps are thinned to evenly spaced ones
MOST_LAYERS = 12  # rows of a SAM figure: more layers are thinned to evenly spaced ones
WRONG = "#c62828"  # the colour of a misclassification
CAVEAT_STYLE = "border-left: 4px solid #e6a100; background: #fff8e1; padding: 8px 12px"  # what must not be missed
OPAQUE = {"unsigned": "Hot_r", "signed": "RdBu_r"}
UNDERLAY = [[0.0, "rgb(30,30,30)"], [1.0, "rgb(170,170,170)"]]  # the input under a map: dimmed, so colours stand out
SEE_THROUGH = {  # the same colours, transparent where the attribution is small, to lay over the input
    "unsigned": [[0.0, "rgba(255,255,204,0)"], [0.25, "rgba(254,204,92,0.55)"], [0.5, "rgba(253,141,60,0.8)"],
                 [0.75, "rgba(227,26,28,0.9)"], [1.0, "rgba(128,0,38,1)"]],
    "signed": [[0.0, "rgba(5,48,97,1)"], [0.25, "rgba(67,147,195,0.8)"], [0.5, "rgba(247,247,247,0)"],
               [0.75, "rgba(214,96,77,0.8)"], [1.0, "rgba(103,0,31,1)"]],
}


def _evenly(count: int, most: int) -> list[int]:
    """At most `most` evenly spaced indices of `range(count)`, first and last included."""
    return sorted({round(i) for i in np.linspace(0, count - 1, min(count, most))}) if count else []


def class_name(attribution: Attribution, index: int) -> str:
    """A class by name where the dataset names its classes."""
    names = attribution.info.get("classes") or []
    return names[index] if 0 <= index < len(names) else f"class {index}"


def misclassified(attribution: Attribution) -> np.ndarray:
    """`[K]` bool: the prediction is not the label (all False without labels)."""
    if attribution.labels is None:
        return np.zeros(len(attribution.predictions), dtype=bool)
    return np.asarray(attribution.predictions) != np.asarray(attribution.labels)


def image_title(attribution: Attribution, k: int) -> str:
    """Image k's prediction and label by class name, a misclassification in red and marked ✗, and the attributed
    class where it is not the prediction (plotly's HTML subset)."""
    a = attribution
    predicted = int(a.predictions[k])
    lines = [f"image {k}: predicted {html.escape(class_name(a, predicted))}"]
    if a.labels is not None:
        label = f"label {html.escape(class_name(a, int(a.labels[k])))}"
        lines.append(f"<span style='color:{WRONG}'><b>✗ {label}</b></span>" if misclassified(a)[k] else
                     f"{label} ✓")
    if int(a.targets[k]) != predicted:
        lines.append(f"attributed: {html.escape(class_name(a, int(a.targets[k])))}")
    return "<br>".join(lines)


def _without_tags(title: str) -> str:
    """A plotly title as plain text (for dropdown labels)."""
    return title.replace("<br>", ", ").replace("<b>", "").replace("</b>", "").replace(
        f"<span style='color:{WRONG}'>", "").replace("</span>", "")


def _display(attribution: Attribution) -> np.ndarray:
    """`[K, T, h, w]` maps to draw: channels summed, each image scaled by its largest magnitude over time."""
    maps = attribution.maps
    if maps.ndim == 5:  # [K, T, C, h, w]
        maps = maps.sum(axis=2)
    if maps.ndim != 4:
        return np.zeros((len(maps), 0, 0, 0))
    scale = np.abs(maps).reshape(len(maps), -1).max(axis=1)
    return maps / np.where(scale > 0, scale, 1.0)[:, None, None, None]


def _grey(images: np.ndarray, k: int) -> np.ndarray:
    """The k-th input as a 2D picture, channels averaged, in 0..255 (uint8: a quarter of the bytes of float32);
    empty for inputs without two spatial axes."""
    image = images[k]
    image = image.mean(axis=0) if image.ndim == 3 else (image if image.ndim == 2 else np.zeros((0, 0)))
    if not image.size:
        return image.astype(np.uint8)
    low, high = float(image.min()), float(image.max())
    return np.round(255 * (image - low) / (high - low if high > low else 1.0)).astype(np.uint8)


class MapGrid:
    """A grid of square maps (one pixel per pixel, no tick labels) that fills `PAGE_PX`; a map can lie over the
    input in grey (shown through where a see-through colour scale is chosen) and an all-zero map says so."""

    def __init__(self, rows: int, columns: int, titles: list[str], cell: float, top: int = 70, left: int = 50,
                 titled_rows: bool = True):
        """`cell` px per map; `titled_rows`: every row has titles above its maps (room is left for them)."""
        spacing = min(0.04, 1 / (columns - 1)) if columns > 1 else 0.0
        gap, per_row = (0.3, 1.4) if titled_rows else (0.1, 1.15)
        self.fig = make_subplots(rows=rows, cols=columns, subplot_titles=titles, horizontal_spacing=spacing,
                                 vertical_spacing=min(gap / rows, 1 / (rows - 1)) if rows > 1 else 0.0)
        self.fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, constrain="domain")
        self.fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, autorange="reversed",
                              constrain="domain")
        for index in range(1, rows * columns + 1):
            suffix = "" if index == 1 else str(index)
            self.fig.layout[f"yaxis{suffix}"].scaleanchor = f"x{suffix}"
        self.fig.update_layout(width=int(cell * columns * 1.12) + left + 160,
                               height=int(cell * rows * per_row) + top + 30,
                               margin=dict(t=top, b=20, l=left, r=20), plot_bgcolor="white")
        self.titles = list(self.fig.layout.annotations)

    def add(self, z: np.ndarray, row: int, col: int, coloraxis: str, hover: str, under: np.ndarray | None = None,
            empty: str = "") -> None:
        """Map `z` `[h, w]` at (row, col), over the grey picture `under` when given, with `empty` (if any) written
        on it when it is zero everywhere."""
        if under is not None and under.size:
            height, width = z.shape
            dy, dx = height / under.shape[0], width / under.shape[1]
            self.fig.add_heatmap(z=under, x0=-0.5 + dx / 2, dx=dx, y0=-0.5 + dy / 2, dy=dy, colorscale=UNDERLAY,
                                 showscale=False, hoverinfo="skip", row=row, col=col)
        self.fig.add_heatmap(z=z if z.dtype == np.uint8 else z.astype(np.float32), coloraxis=coloraxis,
                             hovertemplate=hover, row=row, col=col)
        if empty and not np.any(z):
            self.fig.add_annotation(self.note(empty, row, col))

    def note(self, text: str, row: int, col: int) -> dict[str, Any]:
        """`text` in the middle of the map at (row, col), as a layout annotation."""
        subplot = self.fig.get_subplot(row, col)
        return dict(text=text, xref=f"{subplot.yaxis.anchor} domain", yref=f"{subplot.xaxis.anchor} domain",
                    x=0.5, y=0.5, showarrow=False, font=dict(size=13, color="#555"))

    def overlay_toggle(self, kind: str) -> None:
        """Buttons that draw the maps opaque or see-through over the input."""
        self.fig.update_layout(updatemenus=[dict(
            type="buttons", direction="right", x=0.0, xanchor="left", y=1.0, yanchor="bottom", pad=dict(b=42),
            buttons=[dict(label="maps", method="relayout", args=[{"coloraxis.colorscale": OPAQUE[kind]}]),
                     dict(label="maps over the input", method="relayout",
                          args=[{"coloraxis.colorscale": SEE_THROUGH[kind]}])])])

    def menu(self, choices: list[tuple[str, list[np.ndarray], list[dict[str, Any]]]]) -> None:
        """A dropdown that swaps what every trace shows: per choice its label, the z of every trace in order, and
        the notes on its all-zero maps. The figure's data hold the first choice only; a choice's z (to 2
        decimals) lives in its button, so the page grows with the choices, not with their square."""
        buttons = [dict(label=label, method="update", args=[{"z": [np.round(z.astype(np.float64), 2) for z in zs]},
                                                            {"annotations": self.titles + notes}])
                   for label, zs, notes in choices]
        self.fig.update_layout(updatemenus=[dict(buttons=buttons, x=0.0, xanchor="left", y=1.0, yanchor="bottom",
                                                 pad=dict(b=42))])


def attribution_figure(attribution: Attribution) -> go.Figure:
    """Example images side by side, as many as fill a row: the input, titled with its prediction and label, then
    the attribution at every timestep (one column when the model repeats its input inside and input attributions
    cover all timesteps together; at most `MOST_COLUMNS` evenly spaced timesteps). A toggle lays the maps over
    the input."""
    a = attribution
    maps = _display(a)
    K = len(maps)
    steps = _evenly(maps.shape[1], MOST_COLUMNS - 1)
    labels = ["all timesteps"] if not a.per_timestep else [f"t = {t}" for t in steps]
    per_image = 1 + len(steps)
    across = max(1, min(K, MAPS_PER_ROW // per_image))
    rows = -(-K // across)
    titles = [""] * (rows * across * per_image)
    for k in range(K):
        start = (k // across) * across * per_image + (k % across) * per_image
        titles[start:start + per_image] = [image_title(a, k), *labels]
    columns = across * per_image
    grid = MapGrid(rows, columns, titles, min(CELL_PX, (PAGE_PX - 180) / (1.12 * columns)), top=110)
    signed = a.method in SIGNED_METHODS
    for k in range(K):
        row, first = k // across + 1, (k % across) * per_image + 1
        under = _grey(a.images, k)
        grid.add(under, row, first, "coloraxis2", "h %{y}, w %{x}: %{z}<extra>input</extra>")
        for column, t in enumerate(steps, start=first + 1):
            grid.add(maps[k, t], row, column, "coloraxis", "h %{y}, w %{x}: %{z:.3f}<extra></extra>", under=under,
                     empty="all zero")
    grid.fig.update_layout(
        coloraxis=dict(colorscale=OPAQUE["signed" if signed else "unsigned"], cmin=-1 if signed else 0, cmax=1,
                       colorbar=dict(title=dict(text="attribution<br>(each image's<br>largest = 1)", side="top"),
                                     len=min(1.0, 500 / grid.fig.layout.height), y=1, yanchor="top")),
        coloraxis2=dict(colorscale="Greys_r", showscale=False))
    grid.overlay_toggle("signed" if signed else "unsigned")
    return grid.fig


def sam_figure(sam: dict[str, np.ndarray], rows: list[str]) -> go.Figure:
    """SAM `[R, T, h, w]` per layer, one of the R `rows` (example images, or their mean) at a time, chosen in a
    dropdown when R > 1. Rows: the layers with 2D maps (at most `MOST_LAYERS`, evenly spaced), labelled. Columns:
    the timesteps (at most `MOST_COLUMNS`). Each layer's SAM is scaled by its largest value for that row; a map
    without a spike says so."""
    names = list(sam)
    shown = [names[i] for i in _evenly(len(names), MOST_LAYERS)]
    T = next(iter(sam.values())).shape[1] if sam else 0
    steps = _evenly(T, MOST_COLUMNS)
    titles = [f"t = {t}" for t in steps] + [""] * (len(steps) * (len(shown) - 1))
    cell = min(SAM_CELL_PX, (PAGE_PX - 260) / (1.12 * len(steps)))
    grid = MapGrid(len(shown), len(steps), titles, cell, top=60 + 45 * (len(rows) > 1), left=110, titled_rows=False)

    def cells(r: int) -> list[tuple[int, int, str, int, np.ndarray]]:
        """(row, column, layer, t, map scaled to its layer's largest value) of every map of row r."""
        scaled = {layer: sam[layer][r] / (sam[layer][r].max() if sam[layer][r].max() > 0 else 1.0) for layer in shown}
        return [(row, column, layer, t, scaled[layer][t]) for row, layer in enumerate(shown, start=1)
                for column, t in enumerate(steps, start=1)]

    for row, column, layer, t, z in cells(0):
        grid.add(z, row, column, "coloraxis", f"{layer}, t = {t}<br>h %{{y}}, w %{{x}}: %{{z:.2f}}<extra></extra>",
                 empty="no spikes")
    for row, layer in enumerate(shown, start=1):
        grid.fig.update_yaxes(title=dict(text=layer, standoff=4, font=dict(size=13)), row=row, col=1)
    grid.fig.update_layout(coloraxis=dict(colorscale=OPAQUE["unsigned"], cmin=0, cmax=1, colorbar=dict(
        title=dict(text="SAM<br>(each layer's<br>largest = 1)", side="top"), len=1.0, y=1, yanchor="top",
        thickness=18)))
    if len(rows) > 1:
        grid.menu([(label, [z for *_, z in cells(r)],
                    [grid.note("no spikes", row, column) for row, column, *_, z in cells(r) if not np.any(z)])
                   for r, label in enumerate(rows)])
    else:
        grid.fig.update_layout(title=dict(text=rows[0], x=0.02, xanchor="left"))
    return grid.fig


def _thinned(sam: dict[str, np.ndarray]) -> str:
    """What `sam_figure` leaves out, in words ("" when it shows everything)."""
    layers, T = len(sam), next(iter(sam.values())).shape[1]
    shown_layers = len(_evenly(layers, MOST_LAYERS))
    shown_steps = len(_evenly(T, MOST_COLUMNS))
    if shown_layers == layers and shown_steps == T:
        return ""
    return (f" Shown: {shown_layers} of {layers} layers and {shown_steps} of {T} timesteps, evenly spaced; "
            "the .npz files hold them all.")


def _number(value: float) -> str:
    return f"{value:.3g}"


def _per_image(attribution: Attribution) -> pd.DataFrame:
    """One row per image: its classes by name (as text: a table row of numbers would turn them into floats),
    the infidelity against its reference, and for integrated gradients the completeness numbers."""
    a = attribution
    rows: dict[str, list[str]] = {
        "image": [str(k) for k in range(len(a.targets))],
        "prediction": [f"{c} {class_name(a, int(c))}" for c in a.predictions]}
    if a.labels is not None:
        rows["label"] = [f"{c} {class_name(a, int(c))}" for c in a.labels]
        rows["correct"] = ["✗ no" if wrong else "yes" for wrong in misclassified(a)]
    rows["attributed"] = [f"{c} {class_name(a, int(c))}" for c in a.targets]
    if a.infidelity is not None:
        rows["infidelity"] = [_number(v) for v in a.infidelity]
        if a.infidelity_reference is not None:
            rows["reference"] = [_number(v) for v in a.infidelity_reference]
            rows["unexplained"] = [f"{100 * v / r:.0f} %" if r > 0 else "–"
                                   for v, r in zip(a.infidelity, a.infidelity_reference)]
    completeness = a.info.get("completeness")
    if completeness:
        difference, total = np.asarray(completeness["output_difference"]), np.asarray(completeness["attribution_sum"])
        rows["difference"] = [_number(v) for v in difference]
        rows["sum"] = [_number(v) for v in total]
        rows["delta"] = [_number(v) for v in completeness["convergence_delta"]]
        rows["share"] = [f"{100 * s:.0f} %" if d != 0 else "–" for s, d in zip(covered_share(completeness), difference)]
    return pd.DataFrame(rows)


PER_IMAGE_HEADERS = {"image": "image", "prediction": "prediction", "label": "label", "correct": "correct",
                     "attributed": "attributed class", "infidelity": "infidelity",
                     "reference": "infidelity of a zero attribution", "unexplained": "infidelity / reference",
                     "difference": "f(x) − f(baseline)", "sum": "sum of attributions",
                     "delta": "convergence delta (sum − difference)", "share": "sum / difference"}


def covered_share(completeness: dict[str, Any]) -> np.ndarray:
    """Per image, the share of f(x) - f(baseline) that the IG attributions add up to (NaN where it is 0)."""
    difference = np.asarray(completeness["output_difference"], dtype=float)
    total = np.asarray(completeness["attribution_sum"], dtype=float)
    return np.divide(total, difference, out=np.full_like(total, np.nan), where=difference != 0)


def completeness_summary(completeness: dict[str, Any]) -> dict[str, Any]:
    """Integrated gradients' completeness for attribution.json and the terminal: per image f(x) - f(baseline), the
    attributions' sum, Captum's convergence delta and the covered share (sum / difference, NaN where the difference
    is 0), and the share's median and range over the images (NaN when no image has a share)."""
    share = covered_share(completeness)
    finite = share[np.isfinite(share)]
    spread = (np.median(finite), finite.min(), finite.max()) if finite.size else (np.nan,) * 3
    return {**{name: np.asarray(values) for name, values in completeness.items()}, "covered_share": share,
            **dict(zip(("covered_share_median", "covered_share_min", "covered_share_max"), map(float, spread)))}


def _completeness_text(completeness: dict[str, Any]) -> str:
    """How much of f(x) - f(baseline) the IG attributions account for (`completeness_summary`), and what follows
    for reading the maps; where the difference is 0 on every image, no share exists and the text says so."""
    summary = completeness_summary(completeness)
    median, low, high = (summary[f"covered_share_{key}"] for key in ("median", "min", "max"))
    if np.isfinite(median):
        share = (f"<b>Integrated gradients sum to {100 * median:.0f} % of f(x) − f(baseline)</b> (median over the "
                 f"images; from {100 * low:.0f} % to {100 * high:.0f} %; f the target logit). Exact gradients would "
                 "make the sum equal the difference (completeness); the surrogate gradients of spiking neurons cover "
                 "only that share, so")
    else:
        share = ("<b>f(x) − f(baseline) is 0 on every image</b> (f the target logit), so no share of it can be "
                 "given: the integrated gradients' sum has nothing to be compared with, and with surrogate gradients")
    return (f"<p style='{CAVEAT_STYLE}'>{share} <b>these maps are not a decomposition of the logit</b>: read them "
            "as where the surrogate gradient points, not as how much each pixel contributes. Captum's convergence "
            "delta (sum − difference) is in the table, in attributions.npz and in the json.</p>")


def _infidelity_text(attribution: Attribution) -> str:
    """The infidelity's median, on the scale of its reference, and what it means."""
    a = attribution
    text = f"<p>Infidelity: median {np.median(a.infidelity):.3g} logit² over the {len(a.infidelity)} images"
    if a.infidelity_reference is not None:
        share = np.median(a.infidelity / np.where(a.infidelity_reference > 0, a.infidelity_reference, np.nan))
        text += (f", against {np.median(a.infidelity_reference):.3g} for an all-zero attribution: the attribution "
                 f"leaves {100 * share:.0f} % of the squared logit change unexplained (median per image)")
    return text + f". {html.escape(a.info.get('infidelity', ''))}.</p>"


def attribution_section(attribution: Attribution, mean_sam: dict[str, np.ndarray] | None = None,
                        samples: int | None = None) -> str:
    """The section's HTML: what was computed on what, the figures and the per-image table; with `mean_sam`
    (`[T, H, W]` per layer, the mean over `samples` analysed images) also their mean spike activation maps."""
    a = attribution
    K = len(a.images)
    where = (f" on the spikes of layer <b>{html.escape(a.layer)}</b>" if a.layer and a.method not in INPUT_METHODS
             else "")
    timing = ("per timestep (the model takes [T, B, ...] input, so each timestep's copy of the image is attributed "
              "on its own)" if a.per_timestep and a.method in INPUT_METHODS else
              "per timestep (one run per timestep: that timestep's spikes attributed, the others left as they are)"
              if a.method in ("gradcam", "layer-ig") else "per timestep" if a.method == "sam" else
              "for all timesteps together (the model repeats its input inside)")
    settings = a.info.get("settings")
    wrong = int(misclassified(a).sum())
    text = (f"<p>{html.escape(METHOD_NAMES[a.method])}{where}, {timing}; {K} images"
            + (f" ({wrong} misclassified, marked ✗)" if a.labels is not None else "") + f", T = {a.T}, "
            f"{a.seconds:.1f} s"
            + (f" (Captum {html.escape(a.info['captum'])}: {html.escape(settings)})" if settings else "")
            + f". The attributed class is {html.escape(a.info.get('target', 'the prediction'))}.</p>")
    if a.info.get("completeness"):
        text += _completeness_text(a.info["completeness"])
    if a.infidelity is not None:
        text += _infidelity_text(a)
    else:
        text += "<p>Infidelity is defined for attributions to the input; this method attributes to spikes.</p>"
    blocks = [text]
    if _display(a).shape[1]:
        blocks.append(figure_block("attribution", attribution_figure(a),
                                   "Each image: the input as the model sees it, titled with the prediction and the "
                                   "label (✗ in red: misclassified), then the attribution "
                                   + ("per timestep" if a.per_timestep else "") + ", channels summed, each image "
                                   "scaled so its largest magnitude is 1"
                                   + (" (red: raises the target logit, blue: lowers it)" if a.method in SIGNED_METHODS
                                      else "") + ". The buttons lay the maps over the input (grey), small values "
                                   "see-through."))
    sam_caption = (f"Spike activation maps (gradient-free, decay gamma = {a.info.get('gamma')}) of every layer with "
                   "2D spike maps (rows), per timestep: where neurons fire, weighted by how recently they fired "
                   "before. Choose the image in the menu.")
    if a.sam:
        blocks.append(figure_block("sam", sam_figure(a.sam, [_without_tags(image_title(a, k)) for k in range(K)]),
                                   sam_caption + _thinned(a.sam)))
    if mean_sam:
        mean = {layer: maps[None] for layer, maps in mean_sam.items()}
        blocks.append(figure_block("sam-mean", sam_figure(mean, [f"mean over {samples or 'the'} analysed images"]),
                                   f"The mean spike activation map over all {samples or 'the'} analysed images "
                                   "(sam.npz), per layer (rows) and timestep." + _thinned(mean)))
    per_image = _per_image(a)
    blocks.append(table(per_image, {c: PER_IMAGE_HEADERS[c] for c in per_image.columns}, numbers=False))
    return "".join(blocks)
