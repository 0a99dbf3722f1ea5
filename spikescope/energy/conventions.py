"""What one operator call costs under spikescope's convention (docs/metrics.md, "Operators and conventions").

An operand is *spikes* (every value 0 or 1), *spike sums* (non-negative whole numbers made by adding
spikes: a residual `x + f(x)` of spikes, a column sum, a multi-spike neuron's counts), *weights* (the
model's parameters and buffers) or *dense* (anything else). The event operand decides the cost:
- two event operands: one accumulate per coincidence (a count of k meeting a count of j: k x j);
- one event operand: each event meets its fan-out (the elements of the other operand it is combined
  with), one accumulate each; a spike sum of k is k events;
- no event operand: weighted products cost dense MACs; elementwise operations on dense values are
  not operations on spikes and are not costed.
Each rule returns an `Operation` with `dense`, what the operation costs run densely (FLOPs), and its cost
under the dense reading of spike sums (`dense_reading`), so every reading comes from the same record.
"""
from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..metrics.base import spike_counts, zero_one
from . import DENSE, EVENTS, MODEL_ROW, SPIKES, SUMS, WEIGHTS, row_module
from .geometry import ConvSpec, conv_geometry

__all__ = ["DENSE", "EVENTS", "MODEL_ROW", "SPIKES", "SUMS", "WEIGHTS", "Operands", "Operation", "row_module"]
PRODUCTS = ("conv", "linear", "transposed conv", "matmul", "attention")  # kinds that multiply two operands
SAMPLE = 4096  # values read first to tell a dense tensor from spikes without a pass over all of it


@dataclass
class Operation:
    """The cost of one operator call: `label` names it within its module (`matmul`, `attention q·kᵀ`, ...).
    `dr_acs` and `dr_macs` are its cost when spike sums are read as dense values (spikes stay events)."""

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
    mixed: bool = False  # two event operands, one spikes and one spike sums
    dr_acs: float = 0.0
    dr_macs: float = 0.0
    # what the memory-aware models read (`energy.models.Site`): events read, elements of the activation operand, the
    # output and the second operand, outputs given a bias and the bias's elements, a convolution's addressed taps,
    # and the paper's fan-outs of the events (every kernel tap; ceil(k/s)^2 additions)
    reads: float = 0.0
    inputs: float = 0.0
    outputs: float = 0.0
    other: float = 0.0
    bias: float = 0.0
    bias_elements: float = 0.0
    weight_elements: float = 0.0  # a product's operand that is a model parameter (a layer scale): held once
    taps: float = 0.0
    paper_fanout: float = 0.0
    paper_synops: float = 0.0
    leading: tuple[int, ...] = ()  # the output's first two axes (`metrics.energy.steps_in` reads the time in them)

    def sized(self, reads: float, inputs: float, outputs: float, other: float = 0.0, paper_fanout: float | None = None,
              paper_synops: float | None = None, taps: float = 0.0, leading: tuple[int, ...] = ()
              ) -> "Operation":
        """Fill in the sizes the memory-aware models read (the paper's fan-outs default to the exact ones)."""
        self.reads, self.inputs, self.outputs, self.other, self.taps = reads, inputs, outputs, other, taps
        self.leading = leading
        self.paper_fanout = self.acs if paper_fanout is None else paper_fanout
        self.paper_synops = self.paper_fanout if paper_synops is None else paper_synops
        return self


class Operands:
    """Classifies operands. Weights are known by their storage; spike sums by where they came from (`tag`): an
    add or a sum of event operands makes one, and copies, pads, pools and concatenations keep it. Every spike
    sum is checked to hold whole numbers before it counts as one. With `counts_everywhere` (multi-spike
    neurons in the model) any non-negative whole-number operand counts as spike sums. Marks are weak
    references checked against the tensor's version, so nothing is kept alive and a tensor changed in place or
    a new one at a freed address never matches."""

    def __init__(self, weights: set[int], counts_everywhere: bool = False) -> None:
        self.weights = weights
        self.counts_everywhere = counts_everywhere
        self._marks: dict[int, tuple[weakref.ref, int, str]] = {}  # data_ptr -> (tensor, version, SPIKES | SUMS)

    def kind(self, x) -> str | None:
        """SPIKES, SUMS, WEIGHTS or DENSE; None for what is not a real-valued tensor."""
        if not isinstance(x, torch.Tensor) or not (x.is_floating_point() or x.dtype == torch.bool):
            return None
        if storage(x) in self.weights:
            return WEIGHTS
        marked = self._marked(x)
        if marked == SPIKES:
            return SPIKES
        if marked == SUMS and spike_counts(x):  # a sum of spikes stays one where it happens to be 0/1
            return SUMS
        if x.numel() > SAMPLE and not _may_be_events(x.reshape(-1)[:SAMPLE], self.counts_everywhere):
            return DENSE
        if zero_one(x):
            return SPIKES
        if self.counts_everywhere and spike_counts(x):
            return SUMS
        return DENSE

    def marked(self, x: torch.Tensor) -> str | None:
        """SPIKES or SUMS if `x` (or the tensor it views) was marked so and the mark holds, else None."""
        return self._marked(x) if self._marks else None

    def tag(self, x) -> None:
        """`x` holds spike sums (a view of a tensor marks that tensor, which its other views then share)."""
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            self._mark(x if x._base is None else x._base, SUMS)

    def mark_spikes(self, x: torch.Tensor) -> None:
        """`x` is a spiking layer's output of 0s and 1s: while it (or a view of it) is unchanged, it needs no check."""
        self.mark(x, SPIKES)

    def mark(self, x: torch.Tensor, kind: str) -> None:
        """Mark `x` as SPIKES or SUMS (spikes only outside inference mode, where changes in place can be seen)."""
        if kind == SUMS:
            self.tag(x)
        elif not torch.is_inference(x):
            self._mark(x, SPIKES)

    def _mark(self, x: torch.Tensor, kind: str) -> None:
        held = self._marks.get(x.data_ptr())
        if held is not None and held[2] == kind and self._valid(held):
            return  # still marked through the tensor it views (a view made below autograd knows no base)
        self._marks[x.data_ptr()] = (weakref.ref(x), _version(x), kind)

    def _marked(self, x: torch.Tensor) -> str | None:
        for candidate in (x, x._base):
            entry = self._marks.get(candidate.data_ptr()) if candidate is not None else None
            if entry is not None and entry[0]() is candidate and self._valid(entry):
                return entry[2]
        return None

    @staticmethod
    def _valid(entry: tuple[weakref.ref, int, str]) -> bool:
        """A mark holds while its tensor lives and, for spikes (never checked again), is unchanged in place; spike
        sums are checked for whole numbers when read (an in-place add that makes them is seen before it counts)."""
        referent = entry[0]()
        return referent is not None and (entry[2] == SUMS or _version(referent) == entry[1])

    def clear(self) -> None:
        self._marks.clear()


def _version(x: torch.Tensor) -> int:
    return -1 if torch.is_inference(x) else x._version  # inference tensors keep no version (sums are re-checked)


def _may_be_events(sample: torch.Tensor, counts: bool) -> bool:
    return zero_one(sample) or (counts and spike_counts(sample))


def storage(x: torch.Tensor) -> int:
    """Where `x`'s values live (shared by its views): how weights are told from activations."""
    try:
        return x.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):  # tensors without storage (sparse, functional wrappers)
        return -id(x)


def batches(x: torch.Tensor) -> int:
    """Independent matrix products in a batched operand `[.., m, k]`."""
    return math.prod(x.shape[:-2]) if x.dim() > 2 else 1


def worst(*kinds: str) -> str:
    order = (SPIKES, SUMS, DENSE)
    return max((k if k in order else DENSE for k in kinds), key=order.index)


def _events(x: torch.Tensor) -> float:
    return float(x.sum(dtype=torch.float64))


def _read(op: Operation, spike_part: float = 0.0) -> Operation:
    """Fill in the dense reading: spikes stay events; a product fed spike sums costs its dense MACs, unless its
    other operand is spikes (`spike_part`: those spikes' accumulates); sums and reductions of spike sums are dense
    elementwise work, not costed."""
    if op.input == SPIKES:
        op.dr_acs = op.acs
    elif op.mixed:
        op.dr_acs = spike_part
    elif op.kind in PRODUCTS:
        op.dr_macs = op.dense
    return op


def matrix_product(label: str, operator: str, kind: str, a: torch.Tensor, b: torch.Tensor, ka: str, kb: str,
                   batch: int, out: torch.Tensor | None = None) -> Operation:
    """`a [.., m, k] @ b [.., k, n]` over `batch` independent products (mm, bmm, linear, attention)."""
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    dense, outputs = float(batch * m * k * n), float(batch * m * n)
    whole = a._base if a._base is not None and a._base.numel() == a.numel() else a  # `a` before it was flattened
    leading = tuple(whole.shape[:2]) if whole.dim() > 2 else (m,)
    if ka in EVENTS and kb in EVENTS:
        # sum of all outputs = sum over k of (column sum of a) x (row sum of b), per product
        acs = float((a.double().sum(-2) * b.double().sum(-1)).sum())
        product = out if out is not None else a.double() @ b.double()
        mixed = ka != kb
        spike_part = (_events(a) * n if ka == SPIKES else _events(b) * m) if mixed else 0.0
        return _read(Operation(label, operator, kind, worst(ka, kb), True, acs, dense, _events(a), a.numel(),
                               float(product.count_nonzero()), product.numel(), mixed=mixed), spike_part
                     ).sized(_events(a), a.numel(), outputs, b.numel(), leading=leading)
    if ka in EVENTS:
        return _read(Operation(label, operator, kind, ka, False, _events(a) * n, dense, _events(a), a.numel())
                     ).sized(_events(a), a.numel(), outputs, b.numel(), leading=leading)
    if kb in EVENTS:
        return _read(Operation(label, operator, kind, kb, False, _events(b) * m, dense, _events(b), b.numel())
                     ).sized(_events(b), b.numel(), outputs, a.numel(), leading=leading)
    return _read(Operation(label, operator, kind, DENSE, False, 0.0, dense)).sized(0.0, a.numel(), outputs, b.numel(),
                                                                                     leading=leading)


def convolution(label: str, kind: str, x: torch.Tensor, weight: torch.Tensor, kx: str, kw: str, spec: ConvSpec,
                out: torch.Tensor) -> Operation:
    """`aten.convolution`: events of the input meet their exact fan-out (`conv_geometry`)."""
    fan_out, per_sample = conv_geometry(spec, x.shape[1:], x.device)
    dense = float(per_sample * x.shape[0])
    sizes = {"inputs": x.numel(), "outputs": out.numel(), "other": weight.numel(),
             "taps": weight.numel() * spec.groups / x.shape[1] * x.shape[0],  # C_out x k^2 per sample
             "leading": tuple(out.shape[:1])}  # [N, C, ...]: time is folded into N, if anywhere
    if kx in EVENTS and kw in EVENTS:
        coincidences = torch.ops.aten.convolution.default(
            x.double(), weight.double(), None, spec.stride, spec.padding, spec.dilation, spec.transposed,
            list(spec.output_padding) or [0] * len(spec.stride), spec.groups)
        return _read(Operation(label, "convolution", kind, worst(kx, kw), True, float(coincidences.sum()), dense,
                               _events(x), x.numel(), float(coincidences.count_nonzero()), coincidences.numel(),
                               mixed=kx != kw)).sized(_events(x), **sizes)
    if kx in EVENTS:
        counts = x.sum(0).double()  # events per input position over the batch: whole numbers, exact below 2**24
        acs, events = float((counts * fan_out).sum()), float(counts.sum())
        taps = math.prod(weight.shape[2:])
        if spec.transposed:  # an input event reaches C_out/groups x k^2 outputs
            paper_fanout = paper_synops = events * weight.shape[1] * taps
        else:  # the paper: C_out/groups x k^2 targets, C_out/groups x ceil(k/s)^2 additions
            paper_fanout = events * weight.shape[0] / spec.groups * taps
            paper_synops = events * weight.shape[0] / spec.groups * math.prod(
                math.ceil(k / s) for k, s in zip(weight.shape[2:], spec.stride))
        return _read(Operation(label, "convolution", kind, kx, False, acs, dense, events, x.numel())
                     ).sized(events, **sizes, paper_fanout=paper_fanout, paper_synops=paper_synops)
    if kw in EVENTS:  # a spike kernel over a dense input: every kernel event meets every output position
        positions = out.shape[0] * math.prod(out.shape[2:]) if not spec.transposed else (
            x.shape[0] * math.prod(x.shape[2:]))
        return _read(Operation(label, "convolution", kind, kw, False, _events(weight) * positions, dense,
                               _events(weight), weight.numel())).sized(_events(weight), **sizes)
    return _read(Operation(label, "convolution", kind, DENSE, False, 0.0, dense)).sized(0.0, **sizes)


def _leading(shape: Sequence[int]) -> tuple[int, ...]:
    """The axes of a shape that may hold time and batch: the first two of a tensor with features besides them."""
    return tuple(shape[:2]) if len(shape) > 2 else tuple(shape[:1])


def elementwise(label: str, operator: str, kind: str, a: torch.Tensor, b: torch.Tensor, ka: str, kb: str
                ) -> Operation | None:
    """A product (`kind` "product") or sum ("add") of two tensors, costed from its operands (so an in-place call
    can be costed before it runs): None when no operand is an event (dense elementwise work is not costed)."""
    events = [(x, k) for x, k in ((a, ka), (b, kb)) if k in EVENTS]
    if not events:
        return None
    size = math.prod(torch.broadcast_shapes(a.shape, b.shape))
    reach = {id(x): size / max(x.numel(), 1) for x, _ in events}  # outputs each element reaches (broadcast)
    source, first = worst(*(k for _, k in events)), events[0][0]
    spikes = sum(_events(x) * reach[id(x)] for x, k in events if k == SPIKES)
    reads, second = sum(_events(x) for x, _ in events), b if first is a else a
    shape = torch.broadcast_shapes(a.shape, b.shape)
    sizes = {"inputs": a.numel() + b.numel(), "outputs": float(size), "other": second.numel(),
             "leading": _leading(shape)}
    parameter = kind == "product" and (kb if second is b else ka) == WEIGHTS
    if parameter:  # read from the parameter memory, which holds it once (not per image)
        sizes["inputs"], sizes["other"] = float(first.numel()), 0.0
    if kind == "product" and len(events) == 2:
        product = a.double() * b.double()
        return _read(Operation(label, operator, kind, source, True, _events(product), float(size), _events(first),
                               first.numel(), float(product.count_nonzero()), float(size), mixed=ka != kb),
                     spike_part=spikes if ka != kb else 0.0).sized(_events(first), **sizes)
    acs = sum(_events(x) * reach[id(x)] for x, _ in events)
    operation = _read(Operation(label, operator, kind, source, len(events) == 2, acs, float(size), _events(first),
                                first.numel(), mixed=len(events) == 2 and ka != kb), spike_part=spikes
                      ).sized(reads if kind == "add" else _events(first), **sizes)
    operation.weight_elements = float(second.numel()) if parameter else 0.0
    return operation


def reduction(label: str, operator: str, x: torch.Tensor, kx: str, out: torch.Tensor) -> Operation | None:
    """A sum or mean of an event tensor into `out`: each event is accumulated once."""
    if kx not in EVENTS:
        return None
    return _read(Operation(label, operator, "reduction", kx, False, _events(x), float(x.numel()), _events(x),
                           x.numel())).sized(_events(x), x.numel(), out.numel(),
                                             leading=_leading(out.shape))


def window_reach(size: int, windows: list[tuple[int, int]]) -> torch.Tensor:
    """How many of `windows` (half-open `[start, end)` ranges along one axis) cover each of `size` positions."""
    reach = torch.zeros(size + 1, dtype=torch.float64)
    for start, end in windows:
        reach[max(start, 0)] += 1
        reach[min(end, size)] -= 1
    return reach.cumsum(0)[:size]


def pooling(label: str, operator: str, x: torch.Tensor, kx: str, windows: list[list[tuple[int, int]]],
            out: torch.Tensor) -> Operation | None:
    """Average pooling of events: each event is accumulated once per window it falls in (`windows`: the windows
    along each pooled axis, the last axes of `x`); exact for overlapping, padded and uneven windows."""
    if kx not in EVENTS:
        return None
    axes = len(windows)
    reach = math.prod(torch.meshgrid(*[window_reach(x.shape[x.dim() - axes + i], w) for i, w in enumerate(windows)],
                                     indexing="ij")) if axes > 1 else window_reach(x.shape[-1], windows[0])
    counts = x.reshape(-1, *x.shape[x.dim() - axes:]).sum(0).double()
    leading = x.numel() // max(counts.numel(), 1)
    return _read(Operation(label, operator, "pooling", kx, False, float((counts * reach).sum()),
                           float(reach.sum()) * leading, float(counts.sum()), x.numel())
                 ).sized(float(counts.sum()), x.numel(), out.numel(), leading=tuple(out.shape[:1]))
