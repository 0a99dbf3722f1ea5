"""The attribution section of a report: per example image, the input, the attribution per timestep and the spike
activation map (SAM) of every layer; the figures, the table and the text that say what was computed."""
from __future__ import annotations

import html

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
CELL_PX = 110  # side of one map in the figures, at most
PAGE_PX = 1100  # figures fit a page of this width
MOST_COLUMNS = 16  # of maps per row: more timesteps or layers are thinned to evenly spaced ones


def _evenly(count: int, most: int) -> list[int]:
    """At most `most` evenly spaced indices of `range(count)`, first and last included."""
    return sorted({round(i) for i in np.linspace(0, count - 1, min(count, most))}) if count else []


def _square_grid(fig: go.Figure, rows: int, columns: int) -> None:
    """Every map square (one pixel per pixel), at most `CELL_PX` wide and all of them within `PAGE_PX`, without
    tick labels."""
    fig.update_xaxes(showticklabels=False, constrain="domain")
    fig.update_yaxes(showticklabels=False, autorange="reversed", constrain="domain")
    for index in range(1, rows * columns + 1):
        suffix = "" if index == 1 else str(index)
        fig.layout[f"yaxis{suffix}"].scaleanchor = f"x{suffix}"
    cell = min(CELL_PX, (PAGE_PX - 220) / (1.15 * columns))
    fig.update_layout(width=int(cell * columns * 1.15) + 220, height=int(cell * rows * 1.35) + 120,
                      margin=dict(t=70, b=20, l=20, r=20))


def _grid(rows: int, columns: int, titles: list[str]) -> go.Figure:
    spacing = min(0.03, 1 / (columns - 1)) if columns > 1 else 0.0
    return make_subplots(rows=rows, cols=columns, subplot_titles=titles, horizontal_spacing=spacing,
                         vertical_spacing=min(0.25 / rows, 1 / (rows - 1)) if rows > 1 else 0.0)


def _display(attribution: Attribution) -> np.ndarray:
    """`[K, T, h, w]` maps to draw: channels summed, each image scaled by its largest magnitude over time."""
    maps = attribution.maps
    if maps.ndim == 5:  # [K, T, C, h, w]
        maps = maps.sum(axis=2)
    if maps.ndim != 4:
        return np.zeros((len(maps), 0, 0, 0))
    scale = np.abs(maps).reshape(len(maps), -1).max(axis=1)
    return maps / np.where(scale > 0, scale, 1.0)[:, None, None, None]


def _image(images: np.ndarray, k: int) -> np.ndarray:
    """The k-th input as a 2D picture (channels averaged); empty for inputs without two spatial axes."""
    image = images[k]
    return image.mean(axis=0) if image.ndim == 3 else (image if image.ndim == 2 else np.zeros((0, 0)))


def _class_name(attribution: Attribution, k: int) -> str:
    """The attributed class of image k, by name where the dataset names its classes."""
    target, names = int(attribution.targets[k]), attribution.info.get("classes") or []
    return names[target] if target < len(names) else f"class {target}"


def attribution_figure(attribution: Attribution) -> go.Figure:
    """Rows: example images. Columns: the input, then the attribution at every timestep (one column when the
    model repeats its input inside and input attributions cover all timesteps together; at most
    `MOST_COLUMNS` evenly spaced timesteps)."""
    maps = _display(attribution)
    K = len(maps)
    steps = _evenly(maps.shape[1], MOST_COLUMNS)
    labels = ["all timesteps"] if not attribution.per_timestep else [f"t = {t}" for t in steps]
    titles = [title for k in range(K) for title in [f"image {k}: {_class_name(attribution, k)}", *labels]]
    fig = _grid(K, 1 + len(steps), titles)
    signed = attribution.method in SIGNED_METHODS
    for k in range(K):
        fig.add_heatmap(z=_image(attribution.images, k).astype(np.float32), coloraxis="coloraxis2", row=k + 1, col=1,
                        hovertemplate="h %{y}, w %{x}: %{z:.2f}<extra></extra>")
        for column, t in enumerate(steps, start=2):
            fig.add_heatmap(z=maps[k, t].astype(np.float32), coloraxis="coloraxis", row=k + 1, col=column,
                            hovertemplate="h %{y}, w %{x}: %{z:.3f}<extra></extra>")
    _square_grid(fig, K, 1 + len(steps))
    fig.update_layout(
        coloraxis=dict(colorscale="RdBu_r" if signed else "Hot_r", cmin=-1 if signed else 0, cmax=1,
                       colorbar=dict(title="attribution<br>(per image,<br>max = 1)", x=1.02)),
        coloraxis2=dict(colorscale="Greys_r", showscale=False))
    return fig


def sam_figure(sam: dict[str, np.ndarray], rows: list[str]) -> go.Figure:
    """SAM `[R, T, h, w]` per layer. Rows: `rows` (example images, or their mean). Columns: layers with 2D maps,
    each at its timesteps (at most `MOST_COLUMNS` maps: evenly spaced layers and timesteps); each row's SAM is
    scaled by its largest value in that layer."""
    names = list(sam)
    shown = [names[i] for i in _evenly(len(names), MOST_COLUMNS)]
    T = next(iter(sam.values())).shape[1] if sam else 0
    steps = _evenly(T, max(1, MOST_COLUMNS // max(1, len(shown))))
    R = len(rows)
    titles = [f"{layer}<br>t = {t}" if r == 0 else "" for r in range(R) for layer in shown for t in steps]
    fig = _grid(R, len(shown) * len(steps), titles)
    for column, layer in enumerate(shown):
        maps = sam[layer]
        scale = maps.reshape(R, -1).max(axis=1)
        maps = maps / np.where(scale > 0, scale, 1.0)[:, None, None, None]
        for r, row in enumerate(rows):
            for index, t in enumerate(steps):
                fig.add_heatmap(z=maps[r, t].astype(np.float32), coloraxis="coloraxis", row=r + 1,
                                col=column * len(steps) + index + 1,
                                hovertemplate=f"{row}, {layer}, t = {t}<br>h %{{y}}, w %{{x}}: %{{z:.2f}}"
                                              "<extra></extra>")
    _square_grid(fig, R, len(shown) * len(steps))
    fig.update_layout(coloraxis=dict(colorscale="Hot_r", cmin=0, cmax=1,
                                     colorbar=dict(title="SAM<br>(per row<br>and layer,<br>max = 1)")))
    return fig


def _thinned(sam: dict[str, np.ndarray]) -> str:
    """What `sam_figure` leaves out, in words ("" when it shows everything)."""
    layers, T = len(sam), next(iter(sam.values())).shape[1]
    shown_layers = len(_evenly(layers, MOST_COLUMNS))
    shown_steps = len(_evenly(T, max(1, MOST_COLUMNS // max(1, shown_layers))))
    if shown_layers == layers and shown_steps == T:
        return ""
    return (f" Shown: {shown_layers} of {layers} layers and {shown_steps} of {T} timesteps, evenly spaced; "
            "attributions.npz holds them all.")


def _per_image(attribution: Attribution) -> pd.DataFrame:
    """One row per image: the class attributed, predicted and labelled (as text: a table row of numbers would
    turn them into floats), and the infidelity."""
    rows = {"image": [str(k) for k in range(len(attribution.targets))],
            "target": [str(c) for c in attribution.targets], "prediction": [str(c) for c in attribution.predictions]}
    if attribution.labels is not None:
        rows["label"] = [str(c) for c in attribution.labels]
    if attribution.infidelity is not None:
        rows["infidelity"] = attribution.infidelity
    return pd.DataFrame(rows)


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
    text = (f"<p>{html.escape(METHOD_NAMES[a.method])}{where}, {timing}; {K} images, T = {a.T}, "
            f"{a.seconds:.1f} s"
            + (f" (Captum {html.escape(a.info['captum'])}: {html.escape(settings)})" if settings else "")
            + f". The attributed class is {html.escape(a.info.get('target', 'the prediction'))}.</p>")
    if a.infidelity is not None:
        text += (f"<p>Infidelity: median {np.median(a.infidelity):.3g}, mean {np.mean(a.infidelity):.3g} over the "
                 f"{K} images ({html.escape(a.info.get('infidelity', ''))}).</p>")
    else:
        text += "<p>Infidelity is defined for attributions to the input; this method attributes to spikes.</p>"
    blocks = [text]
    if _display(a).shape[1]:
        blocks.append(figure_block("attribution", attribution_figure(a),
                                   "Left: the input as the model sees it. Then the attribution "
                                   + ("per timestep" if a.per_timestep else "") + ", channels summed, each image "
                                   "scaled so its largest magnitude is 1"
                                   + (" (red: raises the target logit, blue: lowers it)." if a.method in SIGNED_METHODS
                                      else ".")))
    sam_caption = (f"Spike activation maps (gradient-free, decay gamma = {a.info.get('gamma')}) of every layer with "
                   "2D spike maps, per timestep: where neurons fire, weighted by how recently they fired before.")
    if a.sam:
        blocks.append(figure_block("sam", sam_figure(a.sam, [f"image {k}" for k in range(K)]),
                                   sam_caption + _thinned(a.sam)))
    if mean_sam:
        mean = {layer: maps[None] for layer, maps in mean_sam.items()}
        blocks.append(figure_block("sam-mean", sam_figure(mean, ["mean"]),
                                   f"The mean spike activation map over all {samples or 'the'} analysed images "
                                   "(sam.npz)." + _thinned(mean)))
    per_image = _per_image(a)
    blocks.append(table(per_image, {c: c for c in per_image.columns}))
    return "".join(blocks)
