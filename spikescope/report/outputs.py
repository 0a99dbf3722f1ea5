"""Write an analysis to a folder: report.html (+ plotly.min.js), CSV tables, NPZ arrays, summary.json, PNGs.

Every file is written atomically, so an interrupted run leaves each file either complete or absent.
"""
from __future__ import annotations

import io
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


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def write_outputs(result: AnalysisResult, meta: dict[str, Any], out: str | Path, png: bool = False) -> dict[str, Path]:
    """Write every output file of an analysis into `out`; returns them by name.

    Everything is rendered in memory first, so a failure leaves the folder as it was; each file
    is then replaced atomically.
    """
    out = Path(out)
    contents: dict[str, bytes] = {
        "layers.csv": result.layers.to_csv(index=False).encode(),
        "timesteps.csv": result.timesteps.to_csv(index=False).encode(),
        "energy.csv": result.energy.to_csv(index=False).encode(),
        "spectra.npz": _npz_bytes(result.spectra),
        "similarity.npz": _npz_bytes({f"{layer}:{key}": matrix for layer, matrices in result.similarity.items()
                                      for key, matrix in matrices.items()}),
        "summary.json": json.dumps(summary(result, meta), indent=1, allow_nan=False).encode(),
        "report.html": render(result, meta).encode(),
    }
    bundle = plotly_js().encode()
    if not (out / PLOTLY_JS).exists() or (out / PLOTLY_JS).stat().st_size != len(bundle):
        contents[PLOTLY_JS] = bundle
    paths = {}
    for name, data in contents.items():
        with atomic_path(out / name) as tmp:
            tmp.write_bytes(data)
        paths[name] = out / name
    paths.setdefault(PLOTLY_JS, out / PLOTLY_JS)
    if png:
        from .static import write_png_figures

        for figure in write_png_figures(result, out / "figures"):
            paths[figure.name] = figure
    return paths
