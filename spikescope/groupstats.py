"""Statistics over seeds: mean, spread and 95% confidence interval of a group, and paired differences.

A group is one arm trained with several seeds; two arms trained with the same seeds pair up seed by
seed. Every function says how many values stand behind its numbers (`n`), and gives NaN where `n`
is too small for the quantity (a spread needs two values).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def _clean(values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    return array[~np.isnan(array)]


def summarize(values: Sequence[float], bounds: tuple[float, float] | None = None) -> dict[str, float]:
    """`n`, `mean`, `std` (n - 1 in the denominator) and the 95% confidence interval of the mean (Student's t),
    over the values that are not NaN.

    `bounds` = (low, high) is the range the quantity cannot leave (accuracy in [0, 1], energy >= 0 as
    (0, inf)): the interval is clipped to it, so that a few seeds never give an accuracy above 100 % or a
    negative energy. The mean and the SD are never changed; a clipped interval is no longer symmetric.
    """
    array = _clean(values)
    n = len(array)
    mean = float(array.mean()) if n else math.nan
    std = float(array.std(ddof=1)) if n > 1 else math.nan
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * std / math.sqrt(n)) if n > 1 else math.nan
    low, high = mean - half, mean + half
    if bounds is not None and n > 1:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return {"n": n, "mean": mean, "std": std, "ci_low": low, "ci_high": high}


def paired_difference(values: Sequence[float], reference: Sequence[float]) -> dict[str, float]:
    """`values - reference`, paired position by position (seed by seed): the summary of the differences, the
    difference in percent of the reference mean, and the two-sided p-value of a paired t-test (scipy's
    `ttest_rel`). Pairs where either side is NaN are left out."""
    a, b = np.asarray(values, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same number on both sides, got {len(a)} and {len(b)}")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    summary = summarize(a - b)
    base = float(b.mean()) if len(b) else math.nan
    percent = 100 * summary["mean"] / abs(base) if base else math.nan
    differences = a - b
    varies = len(a) > 1 and np.ptp(differences) > 1e-12 * max(1.0, float(np.abs(differences).max()))
    p_value = float(stats.ttest_rel(a, b).pvalue) if varies else math.nan  # equal differences (to rounding): no test
    return {**summary, "percent": percent, "p_value": p_value}


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation of `y` with `x` (NaN pairs left out; NaN if fewer than 3 pairs remain)."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = ~(np.isnan(a) | np.isnan(b))
    if keep.sum() < 3 or np.ptp(b[keep]) == 0:
        return math.nan
    return float(stats.spearmanr(a[keep], b[keep]).statistic)
