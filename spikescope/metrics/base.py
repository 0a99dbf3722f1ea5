"""The shape every spikescope metric has: per-layer state tensors that merge by sum or max.

A metric declares its states once (`reductions`), `update()` only adds into them, and
`compute()` derives every reported number from them. Because states are sums, counts and
maxima (never means), results from different batches, processes or machines merge exactly
by adding, and memory does not grow with the dataset.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
import torch

from ..distributed import all_reduce_states
from ..errors import SpikescopeError

Reduction = Literal["sum", "max"]


def zero_one(x: torch.Tensor) -> bool:
    """True if every value of `x` is 0 or 1 (any real or integer dtype, or bool): spikes, not graded values.

    Two fast reductions instead of elementwise comparisons: the range must be [0, 1], and within it
    `x - x*x` is zero exactly at 0 and 1 (anywhere else `x*x` rounds to a smaller number than `x`, so the
    difference is at least the dtype's smallest positive value).
    """
    if x.dtype == torch.bool or x.numel() == 0:
        return True
    if x.is_complex():
        return False
    low, high = torch.aminmax(x)
    if not (bool(low >= 0) and bool(high <= 1)):  # NaN fails both
        return False
    return not x.is_floating_point() or not bool(torch.addcmul(x, x, x, value=-1).amax() > 0)


def spike_counts(x: torch.Tensor) -> bool:
    """True if every value of `x` is a non-negative whole number (what multi-spike neurons emit)."""
    if x.dtype == torch.bool or x.numel() == 0:
        return True
    if x.is_complex() or not bool(x.amin() >= 0):  # NaN fails
        return False
    return not x.is_floating_point() or torch.equal(x, x.trunc())


def mean_off_diagonal(matrix: np.ndarray) -> float:
    """The mean of the defined (not NaN) entries of a `T x T` matrix off its diagonal; NaN if there is none."""
    values = matrix[~np.eye(len(matrix), dtype=bool)]
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


@dataclass
class MetricResult:
    """What a metric's `compute()` returns: per-layer and per-layer-per-timestep tables plus arrays."""

    layers: pd.DataFrame
    timesteps: pd.DataFrame | None = None
    arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    definitions: dict[str, str] = field(default_factory=dict)


class Metric:
    """Base class: `update(layer, x)`, `compute()`, `merge(other)`, `all_reduce()`, `state_dict()` /
    `load_state_dict()`.

    Subclasses set `reductions` (state name -> "sum" | "max") and `inputs`: "spikes" for
    metrics fed the output of spiking layers, "synapses" for metrics fed the costed
    operations of each forward pass (`Energy.add`), "membrane" for metrics fed neurons' potentials with their spikes.
    States live in `self.states[layer][name]`, in insertion (depth) order. Counts are whole
    numbers held exactly, so they merge bit for bit; `float_sums` names the states (sums of
    real values) whose merge can differ from a single pass in the last bits.
    """

    reductions: ClassVar[dict[str, Reduction]] = {}
    inputs: ClassVar[Literal["spikes", "synapses", "membrane"]] = "spikes"
    float_sums: ClassVar[tuple[str, ...]] = ()  # states that merge exactly only up to float64 rounding

    def __init__(self) -> None:
        self.states: dict[str, dict[str, torch.Tensor]] = {}

    def update(self, layer: str, x: torch.Tensor) -> None:
        raise NotImplementedError

    def compute(self) -> MetricResult:
        raise NotImplementedError

    def _accumulate(self, layer: str, values: dict[str, torch.Tensor]) -> None:
        """Add (or max) `values` into the layer's states, creating them on first use."""
        current = self.states.get(layer)
        if current is None:
            self.states[layer] = {name: value.detach().clone() for name, value in values.items()}
            return
        for name, value in values.items():
            _reduce_into(current, name, value, self.reductions[name], layer)

    def merge(self, other: "Metric") -> "Metric":
        """Fold `other`'s states into this metric (same class); returns `self`."""
        if type(other) is not type(self):
            raise TypeError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
        for layer, states in other.states.items():
            self._accumulate(layer, {name: value.to(_device_of(self.states.get(layer), value))
                                     for name, value in states.items()})
        return self

    def all_reduce(self) -> "Metric":
        """Reduce the states over the processes of the torch.distributed group, each by its declared reduction, so
        that every process holds what one process would have measured on all their data (see
        `distributed.all_reduce_states`); returns `self`. Nothing changes in a single process."""
        self.states = all_reduce_states(self.states, self.reductions)
        return self

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        return {layer: {name: value.cpu().clone() for name, value in states.items()}
                for layer, states in self.states.items()}

    def load_state_dict(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        self.states = {layer: {name: value.clone() for name, value in states.items()}
                       for layer, states in state.items()}

    def nbytes(self) -> int:
        """Bytes held by the states (constant once every layer has been seen)."""
        return sum(v.numel() * v.element_size() for states in self.states.values() for v in states.values())


def _reduce_into(states: dict[str, torch.Tensor], name: str, value: torch.Tensor, how: Reduction, layer: str) -> None:
    target = states[name]
    if target.shape != value.shape:
        raise SpikescopeError(f"layer {layer}: state {name} has shape {tuple(target.shape)}, this batch gives "
                              f"{tuple(value.shape)}; T and the input size must stay the same for a whole run")
    if how == "sum":
        target.add_(value)
    else:
        torch.maximum(target, value, out=target)


def _device_of(states: dict[str, torch.Tensor] | None, fallback: torch.Tensor) -> torch.device:
    return next(iter(states.values())).device if states else fallback.device
