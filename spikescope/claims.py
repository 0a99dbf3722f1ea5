"""Reading measured results against the FSTA paper's claims, with the evidence and the rule applied.

Each check states the rule it uses, so a reader can disagree with the threshold rather than
with a hidden judgement. Checks never overstate: one model, one dataset, one seed is what the
evidence says it is, and a layer that never fired is "no data", never evidence for a claim.
Layers the user named that do not spike (analog) are not spiking layers and are left out.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .tokens import spatial_label

SIMILAR = 0.9  # a cosine at or above this counts as "barely differs"
NO_DATA = "no data"


def orientation_claim(layers: pd.DataFrame) -> dict[str, str]:
    """Claim 1: shallow layers learn vertical variations, deeper layers horizontal ones."""
    claim = "shallow layers learn vertical variations, deeper layers horizontal ones"
    rule = ("consistent if the shallowest and the deepest measured layer's OI have opposite signs in the claimed "
            "direction, for both splits; only layers with 2D maps count (images, tokens on the patch grid: never "
            "head-split or other non-spatial layers); layers without spikes (no orientation energy) are left out")
    maps = spiking(layers)
    maps = maps[maps["height"].notna()] if "height" in maps else maps.iloc[0:0]
    if "geometry" in maps:
        maps = maps[maps["geometry"].map(spatial_label).astype(bool)]  # bool: an empty mask selects no columns
    measured = maps.dropna(subset=["axis_OI", "wedge_OI"])
    silent = [name for name in maps["layer"] if name not in set(measured["layer"])]
    left_out = f" Left out (no data: no spike or no orientation energy): {', '.join(silent)}." if silent else ""
    if len(maps) < 2:
        return {"claim": claim, "verdict": "not testable", "rule": rule,
                "evidence": f"{len(maps)} layer(s) with 2D spike maps; the claim needs at least two."}
    if len(measured) < 2:
        return {"claim": claim, "verdict": NO_DATA, "rule": rule,
                "evidence": f"{len(maps)} layers have 2D spike maps but only {len(measured)} carry orientation "
                            f"energy.{left_out}"}
    readings = []
    for split in ("axis", "wedge"):
        oi = measured[f"{split}_OI"].to_numpy()
        trend = np.corrcoef(np.arange(len(oi)), oi)[0, 1] if np.ptp(oi) > 0 else 0.0
        readings.append((split, oi[0], oi[-1], trend))
    first, last = measured["layer"].iloc[0], measured["layer"].iloc[-1]
    evidence = "; ".join(f"{split} split: OI {shallow:+.3f} ({first}) to {deep:+.3f} ({last}), depth correlation "
                         f"{trend:+.2f}" for split, shallow, deep, trend in readings)
    if all(shallow > 0 > deep for _, shallow, deep, _ in readings):
        verdict = "consistent (reading 'vertical' as variation along the height)"
    elif all(shallow < 0 < deep for _, shallow, deep, _ in readings):
        verdict = "consistent only when 'vertical' means vertical stripes (variation along the width)"
    else:
        verdict = "not supported: the sign of the orientation index does not flip from shallow to deep as claimed"
    return {"claim": claim, "verdict": verdict, "rule": rule,
            "evidence": f"{evidence}. OI > 0: variation along the height dominates.{left_out}"}


def spiking(layers: pd.DataFrame) -> pd.DataFrame:
    """The rows of layers that emit spikes (or spike counts), not analog values."""
    return layers[layers["output"] != "analog"] if "output" in layers else layers


def _lowest_off_diagonal(matrix: np.ndarray) -> float | None:
    """The smallest defined off-diagonal entry of a `T x T` matrix, or None if every one is NaN."""
    values = matrix[~np.eye(matrix.shape[0], dtype=bool)]
    values = values[~np.isnan(values)]
    return float(values.min()) if values.size else None


def temporal_claim(similarity: dict[str, dict[str, np.ndarray]]) -> dict[str, str]:
    """Claim 2: feature learning barely differs across timesteps (`similarity` of the spiking layers)."""
    claim = "feature learning barely differs across timesteps"
    rule = (f"a cosine of at least {SIMILAR} between every pair of timesteps counts as 'barely differs'; a layer "
            "that never fired at two timesteps is 'no data'")
    if not similarity:
        return {"claim": claim, "verdict": "not testable", "evidence": "no spiking layer was analysed", "rule": rule}
    if all(m["spike_cosine"].shape[0] < 2 for m in similarity.values()):
        return {"claim": claim, "verdict": "not testable", "evidence": "T < 2", "rule": rule}
    spike, spectral, empty = [], [], []
    for name, matrices in similarity.items():
        lowest = _lowest_off_diagonal(matrices["spike_cosine"])
        if lowest is None:
            empty.append(name)
            continue
        spike.append((name, lowest))
        ac = _lowest_off_diagonal(matrices["spectral_cosine_ac"]) if "spectral_cosine_ac" in matrices else None
        if ac is not None:
            spectral.append((name, ac))
    no_data = f" No data (no spikes at two timesteps): {', '.join(empty)}." if empty else ""
    if not spike:
        return {"claim": claim, "verdict": NO_DATA, "evidence": no_data.strip(), "rule": rule}
    low_spectral = [n for n, v in spectral if v < SIMILAR]
    low_spike = [n for n, v in spike if v < SIMILAR]
    spectral_text = ", ".join(f"{n} {v:.3f}" for n, v in spectral) or "none"
    spike_text = ", ".join(f"{n} {v:.3f}" for n, v in spike)
    if not spectral:
        verdict = ("spike patterns alike at every timestep" if not low_spike else
                   f"not supported by the spike patterns (spike cosine below {SIMILAR} in {', '.join(low_spike)})")
        verdict += "; frequency content not testable (no layer with 2D spike maps)"
    elif not low_spectral and not low_spike:
        verdict = "consistent: spike patterns and their frequency content are alike at every timestep"
    elif not low_spectral:
        verdict = ("partly: the frequency content is alike across timesteps, but the spike patterns themselves "
                   f"differ (spike cosine below {SIMILAR} in {', '.join(low_spike)})")
    else:
        verdict = f"not supported: frequency content differs across timesteps in {', '.join(low_spectral)}"
    return {"claim": claim, "verdict": verdict, "rule": rule,
            "evidence": f"lowest spectral cosine (DC excluded) between timesteps: {spectral_text}; lowest spike "
                        f"cosine: {spike_text}.{no_data}"}


def read_claims(layers: pd.DataFrame, similarity: dict[str, dict[str, np.ndarray]]) -> list[dict[str, str]]:
    """The paper's claims 1 and 2 checked on one analysed model (claim 3 needs a with/without-FSTA pair)."""
    names = set(spiking(layers)["layer"])
    return [orientation_claim(layers), temporal_claim({k: v for k, v in similarity.items() if k in names})]
