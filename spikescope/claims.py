"""Reading measured results against the FSTA paper's claims, with the evidence and the rule applied.

Each check states the rule it uses, so a reader can disagree with the threshold rather than
with a hidden judgement. Checks never overstate: one model, one dataset, one seed is what the
evidence says it is.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

SIMILAR = 0.9  # a cosine at or above this counts as "barely differs"


def orientation_claim(layers: pd.DataFrame) -> dict[str, str]:
    """Claim 1: shallow layers learn vertical variations, deeper layers horizontal ones."""
    conv = layers.dropna(subset=["axis_OI"])
    claim = "shallow layers learn vertical variations, deeper layers horizontal ones"
    if len(conv) < 2:
        return {"claim": claim, "verdict": "not testable", "evidence": "fewer than two layers with 2D spike maps"}
    readings = []
    for split in ("axis", "wedge"):
        oi = conv[f"{split}_OI"].to_numpy()
        trend = np.corrcoef(np.arange(len(oi)), oi)[0, 1] if np.ptp(oi) > 0 else 0.0
        shallow, deep = oi[0], oi[-1]
        along_height = shallow > 0 > deep  # "vertical variation" = change along the height
        vertical_stripes = shallow < 0 < deep  # "vertical variation" = vertical stripes (change along the width)
        readings.append((split, shallow, deep, trend, along_height, vertical_stripes))
    evidence = "; ".join(f"{s} split: OI {sh:+.3f} ({conv['layer'].iloc[0]}) to {dp:+.3f} ({conv['layer'].iloc[-1]}), "
                         f"depth correlation {tr:+.2f}" for s, sh, dp, tr, _, _ in readings)
    if all(r[4] for r in readings):
        verdict = "consistent (reading 'vertical' as variation along the height)"
    elif all(r[5] for r in readings):
        verdict = "consistent only when 'vertical' means vertical stripes (variation along the width)"
    else:
        verdict = "not supported: the sign of the orientation index does not flip from shallow to deep as claimed"
    return {"claim": claim, "verdict": verdict,
            "evidence": evidence + ". OI > 0: variation along the height dominates.",
            "rule": "consistent if the shallowest layer's OI and the deepest layer's OI have opposite signs in the "
                    "claimed direction, for both splits"}


def temporal_claim(layers: pd.DataFrame, similarity: dict[str, dict[str, np.ndarray]]) -> dict[str, str]:
    """Claim 2: feature learning barely differs across timesteps."""
    claim = "feature learning barely differs across timesteps"
    spectral, spike = [], []
    for name, matrices in similarity.items():
        T = matrices["spike_cosine"].shape[0]
        if T < 2:
            continue
        off = ~np.eye(T, dtype=bool)
        spike.append((name, float(np.nanmin(matrices["spike_cosine"][off]))))
        if "spectral_cosine_ac" in matrices:
            spectral.append((name, float(np.nanmin(matrices["spectral_cosine_ac"][off]))))
    if not spike:
        return {"claim": claim, "verdict": "not testable", "evidence": "T < 2"}
    low_spectral = [n for n, v in spectral if v < SIMILAR]
    low_spike = [n for n, v in spike if v < SIMILAR]
    spectral_text = ", ".join(f"{n} {v:.3f}" for n, v in spectral) or "none"
    spike_text = ", ".join(f"{n} {v:.3f}" for n, v in spike)
    if not low_spectral and not low_spike:
        verdict = "consistent: spike patterns and their frequency content are alike at every timestep"
    elif not low_spectral:
        verdict = ("partly: the frequency content is alike across timesteps, but the spike patterns themselves "
                   f"differ (spike cosine below {SIMILAR} in {', '.join(low_spike)})")
    else:
        verdict = f"not supported: frequency content differs across timesteps in {', '.join(low_spectral)}"
    return {"claim": claim, "verdict": verdict,
            "evidence": f"lowest spectral cosine (DC excluded) between timesteps: {spectral_text}; lowest spike "
                        f"cosine: {spike_text}",
            "rule": f"a cosine of at least {SIMILAR} between every pair of timesteps counts as 'barely differs'"}


def read_claims(layers: pd.DataFrame, similarity: dict[str, dict[str, np.ndarray]]) -> list[dict[str, str]]:
    """The paper's claims 1 and 2 checked on one analysed model (claim 3 needs a with/without-FSTA pair)."""
    return [orientation_claim(layers), temporal_claim(layers, similarity)]
