"""How a network's layers change over training: a few fixed test images analysed after every epoch.

Each epoch adds one row per spiking layer: firing rate, orientation indices (axis and wedge) and
the mean off-diagonal similarity across timesteps (spike cosine, spectral cosine without DC).
The same images every epoch, no randomness: a resumed run tracks exactly what an uninterrupted
one does.
"""
from __future__ import annotations

import warnings
from typing import Any, Iterable

from torch import nn

from .analyze import analyze
from .errors import SpikescopeWarning
from .metrics.firing import FiringRate
from .metrics.spectrum import Spectrum
from .metrics.temporal import TemporalSimilarity
from .modes import modes_kept

TRACKED = ("firing_rate", "axis_OI", "wedge_OI", "spike_cosine_mean_off_diagonal",
           "spectral_cosine_ac_mean_off_diagonal")


def track_layers(model: nn.Module, batches: Iterable, epoch: int, T: int | None = None) -> list[dict[str, Any]]:
    """One row per spiking layer of `model` on `batches`: the `TRACKED` columns, tagged with `epoch`.
    Every module's train/eval mode is restored."""
    with modes_kept(model), warnings.catch_warnings():  # an untrained network's silent layers are expected, not news
        warnings.simplefilter("ignore", SpikescopeWarning)
        result = analyze(model, batches, T=T, metrics=[FiringRate(), Spectrum(), TemporalSimilarity()])
    return [{"epoch": epoch, "layer": layer["layer"], "depth": int(layer["depth"]),
             **{column: float(layer.get(column, float("nan"))) for column in TRACKED}}
            for _, layer in result.layers.iterrows()]
