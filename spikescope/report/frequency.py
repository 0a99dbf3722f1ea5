"""What `spikescope frequency` writes: report.html (+ plotly.min.js), effects.csv, controls.csv, frequency.json and
ablation.npz, whole or not at all (see `folder.report_folder`)."""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..frequency.intercept import THRESHOLD
from ..frequency.result import FrequencyAblation
from .attribution import CAVEAT_STYLE
from .fsta_frequencies import fsta_section, reading
from .html import _key_values, _warnings
from .outputs import _report_folder, npz_bytes, plain
from .page import PLOTLY_JS, figure_block, page, plotly_js
from .tables import model_name, table

DEFINITIONS = {
    "condition": "a gain g[u, v] in [0, 1] on every 2D-DCT coefficient of each channel map of one layer's output "
                 "(u: vertical frequency, variation along the height; v: horizontal, along the width); the map "
                 "passed on is S - D_H^T((1 - g) * (D_H S D_W^T)) D_W. identity: g = 1 (exactly the unablated "
                 "output); all: g = 0 (the layer's output zeroed)",
    "bands": "the spectrum's masks (docs/metrics.md, 2D-DCT spectrum). axis_vertical: u > 0, v = 0, variation along "
             "the height (horizontal stripes and edges); axis_horizontal: u = 0, v > 0, variation along the width "
             "(vertical stripes and edges); wedge_vertical / wedge_horizontal: u/H > v/W / v/W > u/H; band_low / "
             "band_mid / band_high: radius sqrt((u/H)^2 + (v/W)^2) below 1/3, below 2/3, above, DC excluded; dc: "
             "(0, 0); coef_u_v: one coefficient",
    "control": "an energy-matched control of a band removes random coefficients off DC (outside the band unless the "
               "band holds more power than the rest), the last one only partly, so that the removed share of the "
               "layer's power equals the band's exactly; the power is the layer's own spectrum over the evaluated "
               "images, summed over timesteps",
    "removed_power_share": "sum((1 - g^2) * P) / sum(P), P the layer's DCT power",
    "accuracy_change": "per image, (ablated prediction is the target) - (unablated prediction is the target)",
    "logit_change": "per image, the target's logit ablated minus unablated",
    "kl": "per image, KL(unablated || ablated) of the class probabilities, in nats",
    "target": "the label where the data has labels, else the unablated prediction",
    "intervals": "95 % t intervals over images",
    "specific": "the band's effect minus the mean of its controls' effects, image by image (the band's effect beyond "
                "removing that much power)",
    "binary": "the ablated maps are not binary (real values, possibly negative) unless --binarize, which "
              f"re-thresholds them at {THRESHOLD} so the next layer sees spikes",
}
FILES = {"report.html": "the interactive report (needs plotly.min.js beside it)",
         "effects.csv": "one row per layer and condition (identity, all, bands, coefficients, controls)",
         "controls.csv": "one row per layer and band: the band against the mean of its energy-matched controls",
         "frequency.json": "settings, model, definitions and both tables",
         "ablation.npz": "per layer: 'layer:conditions' (names), 'layer:correct', 'layer:logit_change', 'layer:kl' "
                         "[conditions, images], 'layer:gain:condition' [H, W], 'layer:power' [H, W]; "
                         "'base_correct' [images]"}
MEASURE_NAMES = {"accuracy_change": "accuracy change", "logit_change": "target-logit change", "kl": "KL"}


def ablation_arrays(result: FrequencyAblation) -> dict[str, np.ndarray]:
    """Every per-image array and every gain, by `layer:...` key (see `FILES`)."""
    arrays: dict[str, np.ndarray] = {"base_correct": result.base_correct}
    for layer in result.layers:
        arrays[f"{layer}:conditions"] = np.array(result.conditions[layer])
        arrays[f"{layer}:correct"] = result.correct[layer]
        arrays[f"{layer}:logit_change"] = result.logit_change[layer]
        arrays[f"{layer}:kl"] = result.kl[layer]
        arrays[f"{layer}:power"] = result.power[layer]
        arrays.update({f"{layer}:gain:{name}": gain for name, gain in result.gains[layer].items()})
    return arrays


FSTA_FILE = {"fsta.csv": "one row per FSTA position and component (DCT basis u, v; temporal descriptor; whole "
                         "gates; identity): accuracy, target-logit, KL and gain change with 95 % t intervals"}


def frequency_summary(result: FrequencyAblation, meta: dict[str, Any]) -> dict[str, Any]:
    """frequency.json: the settings, the model and data, the definitions and both tables (and FSTA's frequencies:
    its settings and, per position, the bases it draws on most)."""
    summary = {"spikescope_version": meta.get("version"), "command": meta.get("command"), "model": meta,
               "info": result.info, "layers": result.layers, "definitions": DEFINITIONS,
               "files": {**FILES, **(FSTA_FILE if result.fsta is not None else {})},
               "effects": result.effects().to_dict(orient="records"),
               "controls": result.against_controls().to_dict(orient="records")}
    if result.fsta is not None:
        summary["fsta"] = {"info": result.fsta.info, "readings": {p: reading(result.fsta, p)
                                                                  for p in result.fsta.positions}}
    return plain(summary)


def write_frequency_outputs(result: FrequencyAblation, meta: dict[str, Any], out: str | Path) -> dict[str, Path]:
    """Write the report folder `out` whole or not at all; returns its files by name."""
    out = Path(out)
    contents = {
        "report.html": render_frequency(result, meta).encode(),
        "effects.csv": result.effects().to_csv(index=False).encode(),
        "controls.csv": result.against_controls().to_csv(index=False).encode(),
        "frequency.json": json.dumps(frequency_summary(result, meta), indent=1, allow_nan=False).encode(),
        "ablation.npz": npz_bytes(ablation_arrays(result)),
        PLOTLY_JS: plotly_js().encode(),
    }
    if result.fsta is not None:
        contents["fsta.csv"] = result.fsta.effects().to_csv(index=False).encode()
    with _report_folder(out, "frequency", "", meta, contents):
        pass
    return {name: out / name for name in contents}


MEASURE_SCALES = {"accuracy_change": (100, " pp", "+.1f"), "logit_change": (1, "", "+.3g"), "kl": (1, " nats", "+.3g")}
DAMAGE_RED = {"accuracy_change": "RdBu", "logit_change": "RdBu", "kl": "RdBu_r"}  # a loss is red on every heatmap


def _number(measure: str, value: float) -> str:
    """A value of `measure` in its unit (accuracy in percentage points)."""
    scale, unit, spec = MEASURE_SCALES[measure]
    return f"{scale * value:{spec}}{unit}"


def _interval(measure: str, value: float, low: float, high: float) -> str:
    """`+1.2 [-0.3, +2.7] pp`: a mean of `measure` and its interval."""
    scale, unit, spec = MEASURE_SCALES[measure]
    return f"{scale * value:{spec}} [{scale * low:{spec}}, {scale * high:{spec}}]{unit}"


def _pair_heatmaps(controls: pd.DataFrame, measure: str) -> go.Figure:
    """Layer x band: left the band's effect on `measure`, right its specific effect (band minus its controls); the
    hover of both gives the band, the controls and the specific effect with its interval."""
    layers, bands = list(dict.fromkeys(controls["layer"])), list(dict.fromkeys(controls["band"]))
    grid = controls.set_index(["layer", "band"])
    scale, unit, _ = MEASURE_SCALES[measure]
    shape = (len(layers), len(bands))
    own, specific, hover = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, "", dtype=object)
    for (i, layer), (j, band) in ((a, b) for a in enumerate(layers) for b in enumerate(bands)):
        if (layer, band) not in grid.index:
            continue
        row = grid.loc[(layer, band)]
        own[i, j], specific[i, j] = scale * row[measure], scale * row[f"{measure}_specific"]
        hover[i, j] = (f"{html.escape(layer)}, {html.escape(band)}<br>removed power {100 * row.removed_power_share:.1f}"
                       f" %<br>band: {_number(measure, row[measure])}<br>controls: "
                       f"{_number(measure, row[f'{measure}_control'])}<br>specific: "
                       + _interval(measure, row[f"{measure}_specific"], row[f"{measure}_specific_ci_low"],
                                   row[f"{measure}_specific_ci_high"]))
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.2,
                        subplot_titles=(f"{MEASURE_NAMES[measure]}: band removed",
                                        "specific: band minus its controls"))
    for col, z in ((1, own), (2, specific)):
        reach = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
        fig.add_heatmap(z=z, x=bands, y=layers, text=hover, hoverinfo="text", colorscale=DAMAGE_RED[measure], zmid=0,
                        zmin=-reach, zmax=reach, row=1, col=col,
                        colorbar=dict(x=0.4 if col == 1 else 1.0, len=0.9, title=unit.strip() or None))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(tickangle=-40)
    fig.update_layout(height=230 + 36 * len(layers), width=1100, margin=dict(t=50, b=120, l=110, r=40))
    return fig


def _spread(measure: str, mean: float, sd: float) -> str:
    """A controls' mean effect and, with two draws or more, the SD of the draws' effects (no unit repeated)."""
    scale, _, form = MEASURE_SCALES[measure]
    return _number(measure, mean) + ("" if np.isnan(sd) else f" ± {format(scale * sd, form.lstrip('+'))}")


def _controls_table(controls: pd.DataFrame) -> str:
    """The bands against their controls, each measure as `mean [interval]`."""
    shown = pd.DataFrame({"layer": controls["layer"], "band": controls["band"],
                          "removed": controls["removed_power_share"].map(lambda v: f"{100 * v:.1f} %")})
    for measure in MEASURE_NAMES:
        shown[f"{measure}_band"] = controls[measure].map(lambda v, m=measure: _number(m, v))
        shown[f"{measure}_control"] = [_spread(measure, r[f"{measure}_control"], r[f"{measure}_control_sd"])
                                       for _, r in controls.iterrows()]
        shown[f"{measure}_specific"] = [
            _interval(measure, r[f"{measure}_specific"], r[f"{measure}_specific_ci_low"],
                      r[f"{measure}_specific_ci_high"]) for _, r in controls.iterrows()]
    headers = {"layer": "layer", "band": "band", "removed": "power removed"}
    for measure, name in MEASURE_NAMES.items():
        headers.update({f"{measure}_band": f"{name}: band", f"{measure}_control": "controls ± SD of draws",
                        f"{measure}_specific": "specific [95 % CI]"})
    return table(shown, headers, numbers=False)


def _effects_table(effects: pd.DataFrame) -> str:
    """Identity, all and every band (controls are in effects.csv), each measure as `mean [interval]`."""
    rows = effects[effects["kind"] != "control"]
    shown = pd.DataFrame({"layer": rows["layer"], "condition": rows["condition"],
                          "removed": rows["removed_power_share"].map(lambda v: f"{100 * v:.1f} %")})
    for measure in MEASURE_NAMES:
        shown[measure] = [_interval(measure, r[f"{measure}_mean"], r[f"{measure}_ci_low"], r[f"{measure}_ci_high"])
                          for _, r in rows.iterrows()]
    return table(shown, {"layer": "layer", "condition": "condition", "removed": "power removed",
                         **{m: f"{n} [95 % CI]" for m, n in MEASURE_NAMES.items()}}, numbers=False)


def _notes(result: FrequencyAblation) -> str:
    """Controls that could not be matched, bands whose controls overlap the band, and the run's warnings."""
    info = result.info
    items = [f"No energy-matched control (the rest of the spectrum holds less power than the band): "
             f"{', '.join(info['unmatched_controls'])}." if info.get("unmatched_controls") else
             "Every control matched its band's removed power."]
    overlapping = info.get("controls_overlapping_band") or {}
    items.append("Controls that also drew from the band's own coefficients (the band holds more power than the "
                 "rest): " + "; ".join(f"{layer}: {', '.join(bands)}" for layer, bands in overlapping.items()) + "."
                 if overlapping else "Every control drew from outside its band.")
    items.extend(info.get("warnings") or [])
    return _warnings(items)


def render_frequency(result: FrequencyAblation, meta: dict[str, Any], plotly_src: str = PLOTLY_JS) -> str:
    """The page `spikescope frequency` writes."""
    info = result.info
    accuracy = info.get("accuracy")
    rows = {"model": model_name(meta), "checkpoint": meta.get("checkpoint", "–"),
            "dataset": meta.get("dataset", "?"), "images": f"{info['images']:,}", "timesteps T": info["T"],
            "unablated accuracy": f"{accuracy:.2%}" if accuracy is not None else "– (no labels)",
            "layers": ", ".join(result.layers), "band sets": ", ".join(info["band_sets"]),
            "single coefficients": f"{info['coefficients']} x {info['coefficients']} block" if info["coefficients"]
            else "none", "controls per band": info["draws"], "seed": info["seed"],
            "binarize": f"yes (threshold {THRESHOLD})" if info["binarize"] else "no: ablated maps are real-valued",
            "target": info["target"], "runtime": f"{info['seconds']:.1f} s", "command": meta.get("command", "–"),
            "spikescope": meta.get("version", "?")}
    caveat = (f'<p style="{CAVEAT_STYLE}">{html.escape(DEFINITIONS["binary"][0].upper() + DEFINITIONS["binary"][1:])}'
              f'. {"This run re-binarised them." if info["binarize"] else "This run passed them on as they are."}</p>')
    controls = result.against_controls()
    figures = "<p>No band has a matched control.</p>"
    if len(controls):
        figures = (figure_block("accuracy", _pair_heatmaps(controls, "accuracy_change"),
                                "Accuracy change (percentage points) when each band is removed from each layer's "
                                "output (left) and its specific effect, the band minus the mean of its energy-matched "
                                "controls image by image (right). Hover: the controls' value and the 95 % t interval.")
                   + figure_block("kl", _pair_heatmaps(controls, "kl"),
                                  "KL(unablated || ablated) in nats, band removed (left) and band minus its controls "
                                  "(right).") + _controls_table(controls))
    sections = [("Model and data", _key_values(rows) + caveat),
                ("Effect of each band against its controls", figures),
                ("Every condition", "<p>The identity passes the layer's output unchanged, all zeroes it. The "
                                    "controls' own rows are in effects.csv.</p>" + _effects_table(result.effects())),
                ("Controls", _notes(result)),
                *([("FSTA's frequencies", fsta_section(result.fsta))] if result.fsta is not None else []),
                ("Definitions", _key_values(DEFINITIONS))]
    title = f"{meta.get('model', 'model')}: frequency ablation on {info['images']:,} images"
    return page("spikescope frequency ablation", title, sections, plotly_src)
