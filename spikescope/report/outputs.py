"""Write an analysis to a folder: report.html (+ plotly.min.js), CSV tables, NPZ arrays, summary.json, PNGs.

Every file is written atomically, so an interrupted run leaves each file either complete or absent.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..analyze import AnalysisResult
from ..atomic import atomic_path
from ..claims import read_claims
from .html import PLOTLY_JS, plotly_js, render

UNITS = {
    "firing_rate": "spikes per neuron per timestep (0..1)", "silent_fraction": "fraction of neurons (0..1)",
    "power": "squared spike values (Parseval: equals the spike count)", "axis_OI": "dimensionless, -1..1",
    "wedge_OI": "dimensionless, -1..1", "band_low": "share of non-DC power", "sops_per_image": "operations",
    "sops_approx_per_image": "operations", "macs_per_image": "operations", "energy_pj_per_image": "picojoules",
    "runtime_s": "seconds",
}


def _plain(value: Any) -> Any:
    """JSON-safe copy: NaN and infinities become null, numpy values become Python values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def summary(result: AnalysisResult, meta: dict[str, Any]) -> dict[str, Any]:
    """Every number of the report, with definitions and units."""
    return _plain({
        "spikescope_version": meta.get("version"), "command": meta.get("command"), "model": meta,
        "T": result.info["T"], "samples": result.info["samples"], "accuracy": result.info.get("accuracy"),
        "runtime_s": result.info["runtime_s"], "definitions": result.definitions, "units": UNITS,
        "layers": result.layers.to_dict(orient="records"),
        "timesteps": result.timesteps.to_dict(orient="records"),
        "energy": {"preset": result.info.get("energy_preset"), "pj_per_operation": result.info.get("energy_pj"),
                   "layers": result.energy.to_dict(orient="records"), "total_per_image": result.energy_totals()},
        "similarity": result.similarity,
        "claims": read_claims(result.layers, result.similarity),
        "warnings": result.info.get("warnings", []),
    })


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


def write_outputs(result: AnalysisResult, meta: dict[str, Any], out: str | Path, png: bool = False) -> dict[str, Path]:
    """Write every output file of an analysis into `out`; returns them by name."""
    out = Path(out)
    paths = {name: out / name for name in ("report.html", PLOTLY_JS, "layers.csv", "timesteps.csv", "energy.csv",
                                           "spectra.npz", "similarity.npz", "summary.json")}
    for name in ("layers.csv", "timesteps.csv", "energy.csv"):
        frame = {"layers.csv": result.layers, "timesteps.csv": result.timesteps, "energy.csv": result.energy}[name]
        _write_text(paths[name], frame.to_csv(index=False))
    _write_npz(paths["spectra.npz"], result.spectra)
    _write_npz(paths["similarity.npz"], {f"{layer}:{key}": matrix for layer, matrices in result.similarity.items()
                                         for key, matrix in matrices.items()})
    _write_text(paths["summary.json"], json.dumps(summary(result, meta), indent=1, allow_nan=False))
    js = paths[PLOTLY_JS]
    bundle = plotly_js()
    if not js.exists() or js.stat().st_size != len(bundle.encode()):
        _write_text(js, bundle)
    _write_text(paths["report.html"], render(result, meta))
    if png:
        from .static import write_png_figures

        for figure in write_png_figures(result, out / "figures"):
            paths[figure.name] = figure
    return paths
