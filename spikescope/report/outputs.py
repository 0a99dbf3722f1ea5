"""Write an analysis to a folder: report.html (+ plotly.min.js), CSV tables, NPZ arrays, summary.json, PNGs; and
an attribution (`spikescope attribute`) to its own folder.

Folders are written whole or not at all, so an interrupted run leaves no half-written report.
"""
from __future__ import annotations

import io
import json
import math
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .. import distributed
from ..analyze import AnalysisResult
from ..attribution import Attribution
from ..claims import read_claims
from ..metrics.membrane import COLUMNS
from .folder import report_folder, report_marker
from .attribution import completeness_summary
from .html import render, render_attribution
from .page import PLOTLY_JS, plotly_js

UNITS = {
    "firing_rate": "spikes per neuron per timestep (0..1; mean count for multi-spike neurons)",
    "silent_fraction": "fraction of neurons (0..1)", "dc_fraction": "fraction of the power (0..1)",
    "power": "squared spike values (Parseval: equals the spike count)", "axis_OI": "dimensionless, -1..1",
    "wedge_OI": "dimensionless, -1..1", "band_low": "share of non-DC power", "sops_per_image": "operations",
    "sops_approx_per_image": "operations", "macs_per_image": "operations", "dense_ops_per_image": "operations",
    "energy_pj_per_image": "picojoules",
    "runtime_s": "seconds",
}


def plain(value: Any) -> Any:
    """JSON-safe copy: NaN and infinities become null, numpy values become Python values."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


FILES = {
    "report.html": "the interactive report (needs plotly.min.js beside it)",
    "layers.csv": "one row per spiking layer", "timesteps.csv": "one row per layer and timestep",
    "channels.csv": "one row per layer and channel", "energy.csv": "one row per synaptic layer, per image",
    "spectra.npz": "DCT power [T, H, W] per layer", "similarity.npz": "T x T matrices, keys 'layer:matrix'",
    "spikes.npz": "raw spikes [T, K, ...] of the first K samples per layer (uint8)",
}
MEMBRANE_FILE = {"membrane.npz": "membrane-potential histogram counts [T, bins] per layer; 'columns' names the "
                                  "bins (u / threshold of neurons that did not fire, and fired)"}
ATTRIBUTION_FILE = {"attributions.npz": "images [K, ...], attributions [K, T, ...], targets, predictions, labels, "
                                        "infidelity [K], infidelity_reference [K] (an all-zero attribution's "
                                        "infidelity), for ig output_difference [K] (f(x) - f(baseline)), "
                                        "attribution_sum [K] and convergence_delta [K] (their difference), and "
                                        "sam:<layer> [K, T, h, w] per layer"}
SAM_FILE = {"sam.npz": "mean spike activation map [T, H, W] per layer over the analysed images"}
TOKEN_FILE = {"tokens.csv": "one row per token layer and token: firing rate, silent share, row and column on the "
                            "patch grid"}
HEAD_FILE = {"heads.csv": "one row per attention layer and head: firing rate"}


def summary(result: AnalysisResult, meta: dict[str, Any]) -> dict[str, Any]:
    """Every number of the report, with definitions and units (the example spike maps are in spikes.npz)."""
    return plain({
        "spikescope_version": meta.get("version"), "command": meta.get("command"), "model": meta,
        "T": result.info["T"], "samples": result.info["samples"], "accuracy": result.info.get("accuracy"),
        "runtime_s": result.info["runtime_s"], "processes": result.info.get("processes", 1),
        "samples_per_process": result.info.get("samples_per_process", [result.info["samples"]]),
        "definitions": result.definitions, "units": UNITS,
        "files": {**FILES, **(ATTRIBUTION_FILE if result.attribution is not None else {}),
                  **(SAM_FILE if result.sam else {}), **(TOKEN_FILE if len(result.tokens) else {}),
                  **(HEAD_FILE if len(result.heads) else {}),
                  **(MEMBRANE_FILE if result.membrane else {})},
        "layers": result.layers.to_dict(orient="records"),
        "timesteps": result.timesteps.to_dict(orient="records"),
        "channels": result.channels.to_dict(orient="records"),
        "heads": result.heads.to_dict(orient="records"),
        "energy": {"model": result.info.get("energy_model"),
                   "model_description": result.info.get("energy_model_description"),
                   "pj_per_operation": result.info.get("energy_pj"),
                   "layers": result.energy.to_dict(orient="records"), "total_per_image": result.energy_totals(),
                   "by_part": result.energy_by_part().to_dict(orient="records"),
                   "uncosted_modules": result.info.get("uncosted", [])},
        "spectra": result.spectra,
        "similarity": result.similarity,
        "claims": read_claims(result.layers, result.similarity),
        "warnings": result.info.get("warnings", []),
        "attribution": attribution_summary(result.attribution) if result.attribution is not None else None,
        "neurobench": result.neurobench or None,
    })


def attribution_summary(attribution: Attribution) -> dict[str, Any]:
    """What an attribution was and its per-image numbers (the maps themselves are in attributions.npz); for
    integrated gradients, "completeness": per image f(x) - f(baseline), the attributions' sum, Captum's convergence
    delta and the share of the difference covered (see `completeness_summary`)."""
    settings = {name: value for name, value in attribution.info.items() if name != "completeness"}
    completeness = attribution.info.get("completeness")
    return plain({"method": attribution.method, "layer": attribution.layer, "T": attribution.T,
                  "images": len(attribution.images), "per_timestep": attribution.per_timestep,
                  "seconds": attribution.seconds, "settings": settings, "targets": attribution.targets,
                  "predictions": attribution.predictions, "labels": attribution.labels,
                  "infidelity": attribution.infidelity, "infidelity_reference": attribution.infidelity_reference,
                  "completeness": completeness_summary(completeness) if completeness else None,
                  "sam_layers": list(attribution.sam), "definitions": attribution.definitions()})


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def render_outputs(result: AnalysisResult, meta: dict[str, Any]) -> dict[str, bytes]:
    """Every output file of an analysis, by name, rendered in memory."""
    return {
        "layers.csv": result.layers.to_csv(index=False).encode(),
        "timesteps.csv": result.timesteps.to_csv(index=False).encode(),
        "channels.csv": result.channels.to_csv(index=False).encode(),
        **({"tokens.csv": result.tokens.to_csv(index=False).encode()} if len(result.tokens) else {}),
        **({"heads.csv": result.heads.to_csv(index=False).encode()} if len(result.heads) else {}),
        "energy.csv": result.energy.to_csv(index=False).encode(),
        "spectra.npz": npz_bytes(result.spectra),
        "similarity.npz": npz_bytes({f"{layer}:{key}": matrix for layer, matrices in result.similarity.items()
                                      for key, matrix in matrices.items()}),
        "spikes.npz": npz_bytes(result.captured),
        **({"attributions.npz": npz_bytes(result.attribution.arrays())} if result.attribution is not None else {}),
        **({"sam.npz": npz_bytes(result.sam)} if result.sam else {}),
        **({"membrane.npz": npz_bytes({**result.membrane, "columns": np.array(COLUMNS)})} if result.membrane else {}),
        "summary.json": json.dumps(summary(result, meta), indent=1, allow_nan=False).encode(),
        "report.html": render(result, meta).encode(),
        PLOTLY_JS: plotly_js().encode(),
    }


def write_outputs(result: AnalysisResult, meta: dict[str, Any], out: str | Path, png: bool = False) -> dict[str, Path]:
    """Write every output file of an analysis into the folder `out`, whole or not at all; returns them by name.

    Everything is rendered in memory first and written into a staging folder that then replaces
    `out` (see `report_folder`): an interrupted run leaves `out` absent or as it was. In a process
    group only rank 0 writes; the other processes write nothing and return no files.
    """
    if not distributed.is_main():
        return {}
    out = Path(out)
    contents = render_outputs(result, meta)
    with _report_folder(out, "analyze", "", meta, contents) as staging:
        figures = []
        if png:
            from .static import write_png_figures  # matplotlib loads only when asked for

            figures = write_png_figures(result, staging / "figures")
    return {**{name: out / name for name in contents}, **{f.name: out / "figures" / f.name for f in figures}}


@contextmanager
def _report_folder(out: Path, kind: str, variant: str, meta: dict[str, Any],
                   contents: dict[str, bytes]) -> Iterator[Path]:
    """`report_folder` for a report of `kind` and `variant` made from the model file `meta` names, with
    `contents` written into its staging folder; the block may add more before the folder replaces `out`."""
    source = meta.get("checkpoint")
    marker = report_marker(kind, [source] if source else [], variant, spikescope_version=meta.get("version"))
    with report_folder(out, marker) as staging:
        for name, data in contents.items():
            (staging / name).write_bytes(data)
        yield staging


def write_attribution_outputs(attribution: Attribution, meta: dict[str, Any], out: str | Path) -> dict[str, Path]:
    """What `spikescope attribute` writes into `out`, whole or not at all: report.html (+ plotly.min.js),
    attributions.npz and attribution.json; returns the files by name."""
    out = Path(out)
    contents = {
        "report.html": render_attribution(attribution, meta).encode(),
        "attributions.npz": npz_bytes(attribution.arrays()),
        "attribution.json": json.dumps(plain({"spikescope_version": meta.get("version"), "command": meta.get("command"),
                                              "model": meta, **attribution_summary(attribution),
                                              "files": {"report.html": FILES["report.html"], **ATTRIBUTION_FILE}}),
                                       indent=1, allow_nan=False).encode(),
        PLOTLY_JS: plotly_js().encode(),
    }
    with _report_folder(out, "attribute", attribution.method, meta, contents):
        pass
    return {name: out / name for name in contents}
