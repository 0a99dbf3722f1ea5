"""The folder of a frequency comparison (`spikescope frequency --group ...`): report.html (+ plotly.min.js),
statistics.csv, models.csv and comparison.json, written whole or not at all."""
from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .. import __version__
from ..compare import folder_variant
from ..frequency.comparison import FrequencyComparison
from .folder import report_folder, report_marker
from .outputs import plain
from .page import PLOTLY_JS, figure_block, page, plotly_js
from .tables import SIGNIFICANT, table

HEADLINE = "accuracy_change_specific"  # the band's accuracy change minus its energy-matched controls'
DEFINITIONS = {
    "accuracy_change_specific": "per model: the mean over images of (accuracy change when the band is removed minus "
                                "the mean accuracy change of its energy-matched random controls)",
    "kl_specific": "the same for KL(unablated || ablated) in nats",
    "change": "group minus reference group, paired seed by seed (95 % t interval over the pairs; paired t-test)",
    "n": "models (seeds) behind a group's mean",
}


def _grid(frame: pd.DataFrame, column: str) -> tuple[list[str], list[str], np.ndarray]:
    layers = list(dict.fromkeys(frame["layer"]))
    bands = list(dict.fromkeys(frame["band"]))
    values = frame.set_index(["layer", "band"])[column]
    grid = np.array([[values.get((layer, band), np.nan) for band in bands] for layer in layers], dtype=float)
    return layers, bands, grid


def _heatmap(frame: pd.DataFrame, column: str, title: str) -> go.Figure:
    """Layers (rows, shallow at the top) by bands, coloured by `column` on a scale centred at 0."""
    layers, bands, grid = _grid(frame, column)
    limit = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0
    text = [[SIGNIFICANT(v) for v in row] for row in grid]
    fig = go.Figure(go.Heatmap(z=grid, x=bands, y=layers, text=text, texttemplate="%{text}", zmid=0,
                               zmin=-limit, zmax=limit, colorscale="RdBu", colorbar={"title": "Δ"}))
    fig.update_layout(title=title, height=120 + 45 * len(layers), yaxis={"autorange": "reversed"},
                      margin={"l": 110, "r": 20, "t": 50, "b": 60})
    return fig


def _sections(comparison: FrequencyComparison, stats: pd.DataFrame) -> list[tuple[str, str]]:
    first = next(iter(comparison.results.values())).info
    models = "".join(f"<li>{html.escape(group)}: {len(members)} model{'s' * (len(members) > 1)} (seeds "
                     f"{', '.join(str(comparison.seeds.get(m)) for m in members)})</li>"
                     for group, members in comparison.groups.items())
    intro = (f"<p>Every model had the same bands removed from each spiking layer's maps on the same "
             f"{first['images']:,} images (T = {first['T']}, {first['draws']} energy-matched controls per band, "
             f"seed {first['seed']}; maps {'re-binarised at 0.5' if first['binarize'] else 'not binary after removal'}"
             f"). Reference: <b>{html.escape(comparison.reference)}</b>.</p><ul>{models}</ul>")
    notes = "".join(f"<li>{html.escape(w)}</li>" for w in comparison.warnings)
    sections = [("What was compared", intro + (f"<ul>{notes}</ul>" if notes else ""))]
    headline = stats[stats["measure"] == HEADLINE]
    for group in comparison.groups:
        rows = headline[headline["group"] == group]
        figures = figure_block(f"mean-{group}", _heatmap(rows, "mean", f"{group}: band minus controls, accuracy"),
                               f"Mean over {group}'s models of the accuracy change a band's removal causes beyond "
                               "its energy-matched controls (negative: the decision needs the band).")
        if group != comparison.reference:
            figures += figure_block(f"change-{group}", _heatmap(rows, "change_mean",
                                                                f"{group} minus {comparison.reference}"),
                                    f"Change of that specific effect, {group} minus {comparison.reference} "
                                    f"({rows['pairing'].iloc[0] if len(rows) else ''}); intervals and p-values in "
                                    "the table below.")
        columns = {"layer": "layer", "band": "band", "n": "n", "mean": "mean", "ci_low": "CI low", "ci_high": "CI high"}
        if group != comparison.reference:
            columns |= {"change_mean": "change", "change_ci_low": "change CI low", "change_ci_high": "change CI high",
                        "p_value": "p"}
        shown = rows[[c for c in columns if c in rows]].copy()
        formats = {c: shown[c].map(SIGNIFICANT) for c in shown.columns if c not in ("layer", "band", "n")}
        sections.append((group, figures + table(shown.assign(**formats), columns, numbers=False)))
    definitions = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in DEFINITIONS.items())
    sections.append(("Definitions", f"<ul>{definitions}</ul>"))
    return sections


def write_frequency_comparison(comparison: FrequencyComparison, out: str | Path, command: str) -> dict[str, Path]:
    """Write the comparison folder `out` whole or not at all; returns the files by name."""
    stats = comparison.statistics()
    summary = {"spikescope_version": __version__, "command": command, "reference": comparison.reference,
               "groups": comparison.groups, "seeds": comparison.seeds, "checkpoints": comparison.checkpoints,
               "warnings": comparison.warnings, "definitions": DEFINITIONS,
               "ablation": {label: result.info for label, result in comparison.results.items()},
               "statistics": stats.to_dict(orient="records")}
    contents = {
        "report.html": page("spikescope frequency comparison", f"Frequency dependence: {', '.join(comparison.groups)}",
                            _sections(comparison, stats)).encode(),
        "statistics.csv": stats.to_csv(index=False).encode(),
        "models.csv": comparison.models().to_csv(index=False).encode(),
        "comparison.json": json.dumps(plain(summary), indent=1, allow_nan=False).encode(),
        PLOTLY_JS: plotly_js().encode(),
    }
    marker = report_marker("frequency", list(comparison.checkpoints.values()),
                           "compare" + (f" {folder_variant(comparison.groups)}" if folder_variant(comparison.groups)
                                        else ""), spikescope_version=__version__)
    with report_folder(out, marker) as staging:
        for name, data in contents.items():
            (staging / name).write_bytes(data)
    return {name: Path(out) / name for name in contents}
