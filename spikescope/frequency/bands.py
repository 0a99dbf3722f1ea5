"""The frequency bands a layer's spike maps can lose, and the energy-matched random controls (docs/metrics.md,
"Frequency ablation").

A condition is a gain `g[u, v]` in [0, 1] on each 2D-DCT coefficient of every channel map (same transform and
orientation as the spectra: `u` vertical frequency, variation along the height; `v` horizontal). Removing a band
sets `g = 0` on its coefficients; an energy-matched control removes the same share of the layer's spectral power
from coefficients drawn at random off DC (outside the band where the rest holds enough power), scaling the last one
drawn only partly so that the share matches exactly. The power a condition removes from a spectrum `P` is
`sum((1 - g**2) * P)`.
"""
from __future__ import annotations

import numpy as np

from ..errors import SpikescopeError
from ..metrics.spectrum import frequency_masks

BAND_SETS = {  # --bands names -> the bands they add, in report order
    "axis": ("axis_vertical", "axis_horizontal"),
    "wedge": ("wedge_vertical", "wedge_horizontal"),
    "radial": ("band_low", "band_mid", "band_high"),
    "dc": ("dc",),
}
DEFAULT_BAND_SETS = tuple(BAND_SETS)
IDENTITY, EVERYTHING = "identity", "all"
CONTROL_SEPARATOR = "~control"  # "axis_vertical~control3": the fourth energy-matched control of axis_vertical


def parse_band_sets(bands: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """`"axis,radial"` (or a sequence of names) as known band-set names, in the order given; a one-line error for
    an unknown or repeated one."""
    names = [name.strip() for name in (bands.split(",") if isinstance(bands, str) else bands) if name.strip()]
    unknown = [name for name in names if name not in BAND_SETS]
    if unknown or not names:
        raise SpikescopeError(f"unknown band set {unknown[0]!r}: choose from {', '.join(BAND_SETS)}" if unknown
                              else f"no band set given: choose from {', '.join(BAND_SETS)}")
    if len(set(names)) != len(names):
        raise SpikescopeError(f"band set named twice in {','.join(names)}")
    return tuple(names)


def coefficient_name(u: int, v: int) -> str:
    """The condition that removes the single coefficient `(u, v)` (u vertical, v horizontal frequency)."""
    return f"coef_{u}_{v}"


def band_masks(height: int, width: int, band_sets: tuple[str, ...] = DEFAULT_BAND_SETS,
               coefficients: int = 0) -> dict[str, np.ndarray]:
    """Boolean `[H, W]` masks of the coefficients each band removes, in report order: the bands of `band_sets`,
    then (with `coefficients=K`) every single coefficient of the `K x K` low-frequency block that fits the map."""
    masks = frequency_masks(height, width)
    chosen = {band: masks[band] for name in band_sets for band in BAND_SETS[name]}
    for u in range(min(coefficients, height)):
        for v in range(min(coefficients, width)):
            single = np.zeros((height, width), dtype=bool)
            single[u, v] = True
            chosen[coefficient_name(u, v)] = single
    return chosen


def removed_power(gain: np.ndarray, power: np.ndarray) -> float:
    """The power a condition with gain `g` removes from a spectrum `P`: `sum((1 - g**2) * P)`."""
    return float(((1 - gain.astype(np.float64) ** 2) * power).sum())


def matched_control(power: np.ndarray, band: np.ndarray, pool: np.ndarray,
                    generator: np.random.Generator) -> np.ndarray | None:
    """The gain of one energy-matched control of `band` on a layer with spectrum `power` (`[H, W]`): the coefficients
    of `pool`, in random order, are removed until their power equals the band's; the last one is only scaled down,
    by the gain that removes exactly the rest. None when the pool holds less power than the band."""
    target = float(power[band].sum())
    order = generator.permutation(np.flatnonzero(pool.ravel()))
    flat_power = power.ravel().astype(np.float64)
    gain = np.ones(band.size)
    if target <= 0:
        return gain.reshape(band.shape)
    if flat_power[order].sum() < target:
        return None
    cumulative = np.cumsum(flat_power[order])
    last = min(int(np.searchsorted(cumulative, target)), len(order) - 1)  # the first one that reaches the target
    gain[order[:last]] = 0.0
    rest = target - (cumulative[last - 1] if last else 0.0)
    gain[order[last]] = np.sqrt(max(0.0, 1.0 - rest / flat_power[order[last]]))
    return gain.reshape(band.shape)


def control_pool(power: np.ndarray, band: np.ndarray) -> tuple[np.ndarray, bool]:
    """Where a band's controls draw from: the coefficients outside the band and off DC (DC carries the firing rate,
    a different intervention), or, when those hold less power than the band, every coefficient off DC, the band's
    own included (second value True; False for DC itself, which no pool off DC can include)."""
    off_dc = np.ones_like(band)
    off_dc[0, 0] = False
    outside = off_dc & ~band
    if float(power[outside].sum()) >= float(power[band].sum()) or not (off_dc & band).any():
        return outside, False
    return off_dc, True


def conditions(power: np.ndarray, band_sets: tuple[str, ...] = DEFAULT_BAND_SETS, coefficients: int = 0,
               draws: int = 3, seed: int = 0, layer: str = "") -> tuple[dict[str, np.ndarray | None], list[str]]:
    """Every condition of one layer with spectrum `power` (`[H, W]`), as gains: the identity, everything removed,
    each band (see `band_masks`) and its `draws` energy-matched controls (`<band>~control<i>`, None where no control
    can match the band); and the bands whose controls had to draw from the band's own coefficients too
    (`control_pool`). The controls' random order comes from `seed`, the `layer`'s name and the band's name: the same
    spectrum gives the same controls in every process and run, and models of one architecture draw their controls in
    the same order layer by layer (a controlled comparison; pass each model its own `seed` to vary them)."""
    height, width = power.shape
    chosen: dict[str, np.ndarray | None] = {IDENTITY: np.ones((height, width)), EVERYTHING: np.zeros((height, width))}
    masks = band_masks(height, width, band_sets, coefficients)
    for band, mask in masks.items():
        chosen[band] = (~mask).astype(np.float64)
    overlapping = []
    for band, mask in masks.items():
        pool, overlaps = control_pool(power, mask)
        if overlaps and draws:
            overlapping.append(band)
        generator = np.random.default_rng([seed, *layer.encode(), 0, *band.encode()])
        for draw in range(draws):
            chosen[f"{band}{CONTROL_SEPARATOR}{draw}"] = matched_control(power, mask, pool, generator)
    return chosen, overlapping


def control_of(condition: str) -> str | None:
    """The band a control condition matches (None for any other condition)."""
    band, separator, _ = condition.partition(CONTROL_SEPARATOR)
    return band if separator else None
