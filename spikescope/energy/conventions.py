"""What one operator call costs under spikescope's convention (docs/metrics.md, "Operators and conventions").

An operand is *spikes* (every value 0 or 1), *spike sums* (non-negative whole numbers made by adding
spikes: a residual `x + f(x)` of spikes, a column sum, a multi-spike neuron's counts), *weights* (the
model's parameters and buffers) or *dense* (anything else). The event operand decides the cost:
- two event operands: one accumulate per coincidence (a count of k meeting a count of j: k x j);
- one event operand: each event meets its fan-out (the elements of the other operand it is combined
  with), one accumulate each; a spike sum of k is k events;
- no event operand: weighted products cost dense MACs; elementwise operations on dense values are
  not operations on spikes and are not costed.
Each rule returns `Operation`s; `dense` is always what the operation costs run densely (FLOPs), so the
paper-style `fr x FLOPs` and the dense reading of spike sums come from the same record.
"""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import torch

from ..metrics.base import spike_counts, zero_one
from .geometry import ConvSpec, conv_geometry

SPIKES, SUMS, DENSE, WEIGHTS = "spikes", "spike sums", "analog", "weights"
EVENTS = (SPIKES, SUMS)
MODEL_ROW = "(model)"  # the module name of operations the model's own forward runs


def row_module(row: str) -> str:
    """The module an energy row belongs to: `"blocks.0.attn: matmul 1"` -> `"blocks.0.attn"`, `"(model): add 1"`
    -> `""`, a module's own row -> its name."""
    module = row.split(": ", 1)[0]
    return "" if module == MODEL_ROW else module


@dataclass
class Operation:
    """The cost of one operator call: `label` names it within its module (`matmul`, `attention q·kᵀ`, ...)."""

    label: str
    operator: str
    kind: str
    input: str  # SPIKES, SUMS or DENSE: the event operand (the worse of two)
    both: bool  # two event operands (coincidences)
    acs: float  # accumulates under the convention (0 when dense)
    dense: float  # MACs of the operation run densely
    events: float = 0.0  # sum of the (first) event operand's values: its firing rate's numerator
    elements: float = 0.0  # its elements
    out_nonzero: float = 0.0  # two event operands: non-zero outputs (coincidence sparsity)
    out_elements: float = 0.0
    weighted: bool = False  # a product with a weight matrix: a synapse even inside a neuron (recurrent weights)


class Operands:
    """Classifies operands. Weights are known by their storage; spike sums by where they came from (`tag`): an
    add or a sum of event operands makes one, and copies, pads, pools and concatenations keep it. Every spike
    sum is checked to hold whole numbers before it counts as one. With `counts_everywhere` (multi-spike
    neurons in the model) any non-negative whole-number operand counts as spike sums."""

    def __init__(self, weights: set[int], counts_everywhere: bool = False) -> None:
        self.weights = weights
        self.counts_everywhere = counts_everywhere
        self._sums: dict[int, torch.Tensor] = {}  # storage -> a tensor holding it alive until `clear`
        self._spikes: dict[int, tuple[weakref.ref, int]] = {}  # a spiking layer's outputs, unchanged since

    def kind(self, x) -> str | None:
        """SPIKES, SUMS, WEIGHTS or DENSE; None for what is not a real-valued tensor."""
        if not isinstance(x, torch.Tensor) or not (x.is_floating_point() or x.dtype == torch.bool):
            return None
        if _storage(x) in self.weights:
            return WEIGHTS
        if self._spikes and self._known_spikes(x):
            return SPIKES
        if _storage(x) in self._sums and spike_counts(x):  # a sum of spikes stays one where it happens to be 0/1
            return SUMS
        if zero_one(x):
            return SPIKES
        if self.counts_everywhere and spike_counts(x):
            return SUMS
        return DENSE

    def tagged(self, x) -> bool:
        return isinstance(x, torch.Tensor) and bool(self._sums) and _storage(x) in self._sums

    def tag(self, x) -> None:
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            self._sums[_storage(x)] = x

    def mark_spikes(self, x: torch.Tensor) -> None:
        """`x` is a spiking layer's output of 0s and 1s: while it (or a view of it) is unchanged, it needs no check.
        Held by a weak reference, so nothing is kept alive and a new tensor at the same address never matches."""
        if not torch.is_inference(x):
            self._spikes[x.data_ptr()] = (weakref.ref(x), x._version)

    def _known_spikes(self, x: torch.Tensor) -> bool:
        for candidate in (x, x._base):
            entry = self._spikes.get(candidate.data_ptr()) if candidate is not None else None
            if entry is not None and entry[0]() is candidate and not torch.is_inference(x) and (
                    candidate._version == entry[1]):
                return True
        return False

    def clear(self) -> None:
        self._sums.clear()
        self._spikes.clear()


def _storage(x: torch.Tensor) -> int:
    try:
        return x.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):  # tensors without storage (sparse, functional wrappers)
        return -id(x)


def worst(*kinds: str) -> str:
    order = (SPIKES, SUMS, DENSE)
    return max((k if k in order else DENSE for k in kinds), key=order.index)


def _events(x: torch.Tensor) -> float:
    return float(x.sum(dtype=torch.float64))


def matrix_product(label: str, operator: str, kind: str, a: torch.Tensor, b: torch.Tensor, ka: str, kb: str,
                   batch: int, out: torch.Tensor | None = None) -> Operation:
    """`a [.., m, k] @ b [.., k, n]` over `batch` independent products (mm, bmm, linear, attention)."""
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    dense = float(batch * m * k * n)
    if ka in EVENTS and kb in EVENTS:
        # sum of all outputs = sum over k of (column sum of a) x (row sum of b), per product
        acs = float((a.double().sum(-2) * b.double().sum(-1)).sum())
        product = out if out is not None else a.double() @ b.double()
        return Operation(label, operator, kind, worst(ka, kb), True, acs, dense, _events(a), a.numel(),
                         float(product.count_nonzero()), product.numel())
    if ka in EVENTS:
        return Operation(label, operator, kind, ka, False, _events(a) * n, dense, _events(a),
                         a.numel())
    if kb in EVENTS:
        return Operation(label, operator, kind, kb, False, _events(b) * m, dense, _events(b),
                         b.numel())
    return Operation(label, operator, kind, DENSE, False, 0.0, dense)


def convolution(label: str, kind: str, x: torch.Tensor, weight: torch.Tensor, kx: str, kw: str, spec: ConvSpec,
                out: torch.Tensor) -> Operation:
    """`aten.convolution`: events of the input meet their exact fan-out (`conv_geometry`)."""
    fan_out, per_sample = conv_geometry(spec, x.shape[1:], x.device)
    dense = float(per_sample * x.shape[0])
    if kx in EVENTS and kw in EVENTS:
        coincidences = torch.ops.aten.convolution.default(
            x.double(), weight.double(), None, spec.stride, spec.padding, spec.dilation, spec.transposed,
            list(spec.output_padding) or [0] * len(spec.stride), spec.groups)
        return Operation(label, "convolution", kind, worst(kx, kw), True, float(coincidences.sum()), dense,
                         _events(x), x.numel(), float(coincidences.count_nonzero()), coincidences.numel())
    if kx in EVENTS:
        counts = x.sum(0).double()  # events per input position over the batch: whole numbers, exact below 2**24
        acs = float((counts * fan_out).sum())
        return Operation(label, "convolution", kind, kx, False, acs, dense, float(counts.sum()), x.numel())
    if kw in EVENTS:  # a spike kernel over a dense input: every kernel event meets every output position
        positions = out.shape[0] * math.prod(out.shape[2:]) if not spec.transposed else (
            x.shape[0] * math.prod(x.shape[2:]))
        return Operation(label, "convolution", kind, kw, False, _events(weight) * positions, dense,
                         _events(weight), weight.numel())
    return Operation(label, "convolution", kind, DENSE, False, 0.0, dense)


def elementwise(label: str, operator: str, kind: str, operands: list[tuple[torch.Tensor, str]],
                out: torch.Tensor) -> Operation | None:
    """A product or sum of tensors: None when no operand is an event (dense elementwise work is not costed)."""
    events = [(x, k) for x, k in operands if k in EVENTS]
    if not events:
        return None
    dense = float(out.numel())
    first = events[0][0]
    if kind == "product" and len(events) >= 2:
        return Operation(label, operator, kind, worst(*(k for _, k in events)), True, _events(out), dense,
                         _events(first), first.numel(), float(out.count_nonzero()), out.numel())
    acs = sum(_events(x) * (out.numel() / max(x.numel(), 1)) for x, _ in events)
    return Operation(label, operator, kind, worst(*(k for _, k in events)), len(events) >= 2, acs, dense,
                     _events(first), first.numel())


def reduction(label: str, operator: str, x: torch.Tensor, kx: str, out: torch.Tensor) -> Operation | None:
    """A sum or mean of an event tensor: each event is accumulated once."""
    if kx not in EVENTS:
        return None
    return Operation(label, operator, "reduction", kx, False, _events(x), float(x.numel()), _events(x), x.numel())


def pooling(label: str, operator: str, x: torch.Tensor, kx: str, out: torch.Tensor, window: int | None
            ) -> Operation | None:
    """Average pooling of events: every window sums its events (`window` elements, None when the windows
    differ in size: each event is then counted once)."""
    if kx not in EVENTS:
        return None
    acs = float(out.sum(dtype=torch.float64)) * window if window else _events(x)
    dense = float(out.numel() * (window or max(x.numel() // max(out.numel(), 1), 1)))
    return Operation(label, operator, "pooling", kx, False, acs, dense, _events(x), x.numel())
