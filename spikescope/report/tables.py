"""HTML tables with one number format per column, chosen by what the column measures."""
from __future__ import annotations

import html
import math
from typing import Any, Callable

import pandas as pd


def model_name(meta: dict[str, Any]) -> str:
    """The model as pages name it: its architecture, with the width it was built at where it has one
    (`resnet20, width 0.25`), so that two widths of one architecture never read alike."""
    width = meta.get("arch_kwargs", {}).get("width")
    name = meta.get("model", "?")
    return name if width is None else f"{name}, width {width}"


def _finite(format_value: Callable[[float], str]) -> Callable[[Any], str]:
    def cell(value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        return format_value(float(value))
    return cell


RATE = _finite(lambda v: f"{v:.4f}")  # firing rates: spikes per neuron per timestep
PERCENT = _finite(lambda v: f"{100 * v:.1f} %")  # shares, stored as fractions 0..1
SIGNED = _finite(lambda v: f"{v:+.3f}")  # orientation indices in [-1, 1]
COSINE = _finite(lambda v: f"{v:.3f}")
COUNT = _finite(lambda v: f"{v:,.0f}")  # operations, neurons, pixels, picojoules
SCIENTIFIC = _finite(lambda v: f"{v:.1e}")  # relative errors
SIGNIFICANT = _finite(lambda v: f"{v:.3g}")  # scores of no fixed scale

COLUMN_FORMATS: dict[str, Callable[[Any], str]] = {
    "firing_rate": RATE, "input_firing_rate": RATE,
    "silent_fraction": PERCENT, "dc_fraction": PERCENT, "band_low": PERCENT, "band_mid": PERCENT,
    "band_high": PERCENT,
    "axis_OI": SIGNED, "wedge_OI": SIGNED,
    "spike_cosine_mean_off_diagonal": COSINE,
    "neurons": COUNT, "height": COUNT, "width": COUNT, "similarity_left_out_max": COUNT,
    "sops_per_image": COUNT, "sops_approx_per_image": COUNT, "macs_per_image": COUNT, "energy_pj_per_image": COUNT,
    "sops_dense_reading_per_image": COUNT, "macs_dense_reading_per_image": COUNT, "dense_ops_per_image": COUNT,
    "energy_pj_dense_reading_per_image": COUNT, "energy_pj_approx_per_image": COUNT, "operations": COUNT,
    "energy_share": PERCENT, "energy_share_approx": PERCENT, "energy_share_dense_reading": PERCENT,
    "output_sparsity": PERCENT,
    "ann_energy_pj_per_image": COUNT, "snn_ann_ratio": SIGNIFICANT,
    "fsta_macs_per_image": COUNT, "energy_pj_per_image_without_fsta": COUNT, "accuracy": PERCENT,
    "spectral_cosine_ac_mean_off_diagonal": COSINE, "cka_mean_off_diagonal": COSINE,
    "parseval_error": SCIENTIFIC, "infidelity": SIGNIFICANT,
    "membrane_mean": SIGNED, "membrane_sd": COSINE, "near_threshold_share": PERCENT, "reset_share": PERCENT,
}


def _text(value: Any) -> str:
    return html.escape(str(value))


def table(frame: pd.DataFrame, columns: dict[str, str], numbers: bool = True) -> str:
    """An HTML table of `frame[columns]` (`columns` maps column names to headers); numbers are formatted by
    `COLUMN_FORMATS`, every other column (every column, without `numbers`) is left-aligned text."""
    formats = {c: COLUMN_FORMATS.get(c) if numbers else None for c in columns}
    head = "".join(f'<th class="{"" if formats[c] else "text"}">{html.escape(h)}</th>' for c, h in columns.items())
    rows = "".join("<tr>" + "".join(f'<td class="{"" if formats[c] else "text"}">{(formats[c] or _text)(row[c])}</td>'
                                    for c in columns) + "</tr>" for _, row in frame.iterrows())
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
