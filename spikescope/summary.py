"""The short plain-text summary `spikescope analyze` prints in the terminal."""
from __future__ import annotations

import math

from .analyze import AnalysisResult

OUTPUT_LABELS = {"spikes": "spikes", "spike counts": "counts", "analog": "analog"}


def _cell(value: float, format_spec: str = ".3f") -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, format_spec)


def _geometry(label: str) -> str:
    """The layers table's geometry, short: "tokens on 8 x 8 grid" is "tokens 8x8"."""
    return label.replace(" on ", " ").replace(" x ", "x").replace(" grid", "")


def summary_table(result: AnalysisResult) -> str:
    """One line per spiking layer (geometry, firing rate, silent share, orientation, similarity) plus totals."""
    header = (f"{'layer':<22}{'geometry':>12}{'output':>8}{'firing':>8}{'silent':>8}{'OI axis':>9}{'OI wedge':>9}"
              f"{'cos(t,t`)':>10}")
    lines = [header, "-" * len(header)]
    for _, row in result.layers.iterrows():
        lines.append(f"{row['layer']:<22}{_geometry(row.get('geometry', '')):>12}"
                     f"{OUTPUT_LABELS.get(row['output'], row['output']):>8}"
                     f"{_cell(row['firing_rate']):>8}{_cell(row['silent_fraction'], '.1%'):>8}"
                     f"{_cell(row.get('axis_OI'), '+.3f'):>9}{_cell(row.get('wedge_OI'), '+.3f'):>9}"
                     f"{_cell(row.get('spike_cosine_mean_off_diagonal')):>10}")
    totals = result.energy_totals()
    info = result.info
    accuracy = f"{info['accuracy']:.2%}" if info.get("accuracy") is not None else "n/a"
    lines.append("-" * len(header))
    shares = info.get("samples_per_process", [])
    processes = f" ({len(shares)} processes: {' + '.join(map(str, shares))})" if len(shares) > 1 else ""
    lines.append(f"{info['samples']} samples{processes}, T = {info['T']}, accuracy {accuracy}, "
                 f"{info['runtime_s']:.1f} s")
    lines.append(f"per image: {totals['sops_per_image']:.3e} SOPs, {totals['macs_per_image']:.3e} MACs, "
                 f"{totals['energy_pj_per_image'] / 1e6:.3f} uJ ({info.get('energy_model', 'fp32')}), "
                 f"{totals['snn_ann_ratio']:.3g}x its ANN twin")
    lines.append("firing rate = spikes / (T x samples x neurons); OI > 0: variation along the height dominates")
    return "\n".join(lines)
