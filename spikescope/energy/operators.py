"""Every operator a forward pass runs, costed and attributed to the innermost module that ran it.

`OperatorCounter` is a `TorchDispatchMode` the recorder switches on for each forward pass of its model.
Composite operators (`linear`, `matmul`, `einsum`, `conv2d`, ...) are decomposed, so whatever the grad or
inference mode, the counter sees the same primitives: `mm`, `addmm`, `bmm`, `baddbmm`, `mv`, `dot`,
`convolution`, elementwise products and sums, reductions and average pooling, each costed by
`conventions`. Scaled-dot-product attention is costed whole, as the call the model makes (masks and causal
attention included), by `attention.AttentionTap` beside it, whatever kernel then runs it. Movement (views,
copies, pads, max pooling, concatenation, selection) costs nothing; anything else that touches spikes or
spike sums, or combines a weight matrix with activations, is named as uncosted. Operations inside neurons
(their dynamics) and normalisation layers (folded into the weights at inference) are not synaptic
operations and are skipped; FSTA is costed whole by its own count.

Rows are named after the module: its own name for a convolution or linear layer's own product, else
`"<module>: <label> <n>"`, the n-th call of that kind of operation in one call of that module (costed or not,
so names do not move with the data).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn
from torch.utils._python_dispatch import (TorchDispatchMode, _disable_current_modes, _get_current_dispatch_mode,
                                         _get_current_dispatch_mode_stack)

from . import conventions as c
from .attention import AttentionTap, masked_attention, visible
from .geometry import ConvSpec
from .models import leaks

PRODUCTS = {"mm": "matmul", "addmm": "matmul", "bmm": "matmul", "baddbmm": "matmul", "mv": "matmul",
            "dot": "matmul", "convolution": "conv", "_convolution": "conv"}
ELEMENTWISE = {"mul": "product", "div": "product", "add": "add", "sub": "add", "rsub": "add"}
REDUCTIONS = {"sum", "mean"}
POOLING = {"avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
           "adaptive_avg_pool3d", "_adaptive_avg_pool2d", "_adaptive_avg_pool3d"}
LABELS = {**PRODUCTS, **ELEMENTWISE, **{name: name for name in REDUCTIONS}, **{name: "pooling" for name in POOLING}}
# Operators that move, select or create values without combining them: free. Those that keep every value as it
# was (`PRESERVING`) pass an input's mark on: a max pooling of spikes is spikes, a copy of spike sums spike sums.
MOVEMENT = {
    "view", "_unsafe_view", "reshape", "_reshape_alias", "t", "transpose", "permute", "expand", "unsqueeze", "squeeze",
    "select", "slice", "as_strided", "alias", "detach", "clone", "contiguous", "_to_copy", "to", "copy", "cat", "stack",
    "split", "split_with_sizes", "chunk", "unbind", "narrow", "flatten", "unflatten", "constant_pad_nd", "pad",
    "reflection_pad1d", "reflection_pad2d", "reflection_pad3d", "replication_pad1d", "replication_pad2d",
    "replication_pad3d", "max_pool1d", "max_pool2d", "max_pool3d", "max_pool2d_with_indices",
    "max_pool3d_with_indices", "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d", "index_select",
    "gather", "index", "index_put", "flip", "roll", "repeat", "repeat_interleave", "upsample_nearest1d",
    "upsample_nearest2d", "upsample_nearest3d", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "lift_fresh",
    "lift_fresh_copy", "unfold", "im2col", "tril", "triu", "new_empty", "new_zeros", "new_ones", "new_full",
    "empty_like", "zeros_like", "ones_like", "fill", "zero", "masked_fill", "where",
}
FREE = {  # logic, comparisons, sign flips and whole-tensor queries: no accumulate happens
    "eq", "ne", "gt", "ge", "lt", "le", "logical_and", "logical_or", "logical_not", "logical_xor", "bitwise_and",
    "bitwise_or", "bitwise_not", "bitwise_xor", "abs", "sign", "neg", "relu", "clamp", "clamp_min", "clamp_max",
    "pow", "heaviside", "_local_scalar_dense", "item", "equal", "is_nonzero", "any", "all", "max", "min", "amax",
    "amin", "aminmax", "argmax", "argmin", "floor", "ceil", "round", "trunc", "sort", "topk", "count_nonzero",
    "nonzero", "isnan", "isinf", "isfinite", "native_dropout", "dropout", "bernoulli", "rand", "rand_like", "randn",
    "randn_like", "empty", "zeros", "ones", "full", "full_like", "arange", "scalar_tensor",
    "_has_compatible_shallow_copy_type",
}
PRESERVING = MOVEMENT - {"new_empty", "new_zeros", "new_ones", "new_full", "empty_like", "zeros_like", "ones_like",
                         "fill", "zero", "masked_fill", "where", "index_put", "constant_pad_nd", "pad"}


@dataclass
class _Frame:
    """One running call of a module: its name and how many of each kind of operation it has run so far."""

    name: str
    weighted: bool  # a convolution or linear layer: its first product is the module's own row
    labels: dict[str, int] = field(default_factory=dict)
    quiet: bool = False  # counting was switched off for this call (a neuron or normalisation without weights)


_COMPOSITE: dict = {}


def _composite(func) -> bool:
    """Whether `func` is decomposed before it runs (cached: asked for every operator)."""
    known = _COMPOSITE.get(func)
    if known is None:
        known = _COMPOSITE[func] = torch._C._dispatch_has_kernel_for_dispatch_key(
            func.name(), "CompositeImplicitAutograd")
    return known


def _base_name(func) -> str:
    name = func.overloadpacket.__name__
    return name[:-1] if name.endswith("_") and not name.endswith("__") else name


def _scalar_like(x) -> bool:
    return not isinstance(x, torch.Tensor) or x.numel() == 1


def _tensors(args) -> list[torch.Tensor]:
    found = [a for a in args if isinstance(a, torch.Tensor)]
    return found + [t for a in args if isinstance(a, (list, tuple)) for t in a if isinstance(t, torch.Tensor)]


Sink = Callable[[dict[str, list[c.Operation]], float, dict[str, tuple[float, float, bool]]], None]


class OperatorCounter(TorchDispatchMode):
    """Counts the operations of `model`'s forward passes: `begin()` / `end(samples)` around each pass, rows handed
    to `sink(rows, samples, neurons)` (the energy metrics), with every neuron's outputs and output events. Until
    `settle()` is called, passes are held back, because the recorder learns only after the first pass which modules
    are neurons (whose operations are not costed, and whose updates memory-aware models price)."""

    def __init__(self, model: nn.Module, sink: Sink,
                 skipped: set[str], whole: dict[str, nn.Module] | None = None,
                 counts_everywhere: bool = False) -> None:
        """`skipped`: modules whose operations are not synaptic (neurons, normalisation); a convolution or linear
        layer inside a neuron (a recurrent synapse) is still costed. `whole`: modules costed as one dense operation by
        their own count, `macs(sample_shape)` (FSTA, fed `[T, B, ...]`), nothing inside them separately."""
        super().__init__()
        self.model = model
        self.sink = sink
        self.skipped = set(skipped)
        self.whole = dict(whole or {})
        self.uncosted: dict[tuple[str, str], None] = {}  # (module, operator), in order of appearance
        self.operands = c.Operands({c.storage(t) for t in [*model.parameters(), *model.buffers()]},
                                   counts_everywhere)
        self._matrix_weights = {c.storage(t) for t in [*model.parameters(), *model.buffers()] if t.dim() >= 2}
        modules = dict(model.named_modules())
        self._names = {id(m): n for n, m in modules.items()}
        self._weighted = {n for n, m in modules.items() if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))}
        self._kinds = {n: ("linear" if isinstance(m, nn.Linear) else "transposed conv"
                           if isinstance(m, nn.modules.conv._ConvTransposeNd) else "conv") for n, m in modules.items()
                       if n in self._weighted}
        self._stack: list[_Frame] = []
        self._rows: dict[str, list[c.Operation]] = {}
        self._uncosted_pass: dict[tuple[str, str], None] = {}
        self._outputs: dict[str, list[float]] = {}  # per module of this pass: outputs, output events
        self._neurons: set[str] | None = None  # the neurons, once settled (until then, every module is counted)
        self._held: list[tuple[dict[str, list[c.Operation]], dict[tuple[str, str], None],
                               dict[str, list[float]]]] = []
        self._settled = False
        self._skip_cache: dict[str, bool] = {}
        self._paused = 0
        self._counting = False
        self._in_dispatch = self._in_tap = False  # which of the two modes this counter has entered
        self._modules = modules
        self._quiet = self._without_weights(self.skipped)
        self._attention = AttentionTap(self)
        self._handles = [h for n, m in modules.items() if n for h in (
            m.register_forward_pre_hook(self._enter_module),
            m.register_forward_hook(self._leave_module, always_call=True))]  # a module that raised is left too

    # --- passes ---------------------------------------------------------------------------------
    def begin(self) -> None:
        """Start counting a forward pass."""
        self._stop()  # a pass cut short by an error leaves nothing behind
        self._stack = [_Frame("", False)]  # the model's own forward
        self._rows, self._uncosted_pass, self._outputs = {}, {}, {}
        self.operands.clear()
        if self not in _get_current_dispatch_mode_stack():  # never twice, even if another mode kept it from leaving
            self.__enter__()
            self._in_dispatch = True
        self._attention.__enter__()
        self._in_tap = self._counting = True

    def end(self, samples: float) -> None:
        """Stop counting and hand the pass's rows over as `samples` images' worth (held back until `settle`)."""
        if not self._counting:
            return
        self._stop()
        if self._settled:
            self._deliver(self._rows, self._uncosted_pass, self._outputs, samples)
        else:
            self._held.append((self._rows, self._uncosted_pass, self._outputs))
        self._rows, self._uncosted_pass, self._outputs = {}, {}, {}

    def _stop(self) -> None:
        """Leave both modes if this counter entered them and is still the innermost (never pop another's)."""
        if self._in_dispatch and _get_current_dispatch_mode() is self:
            self.__exit__(None, None, None)
            self._in_dispatch = False
        if self._in_tap:
            self._attention.__exit__(None, None, None)
            self._in_tap = False
        self._counting = False
        self.operands.clear()

    def _without_weights(self, names: set[str]) -> set[str]:
        """Of the modules `names`, those with no weight matrix inside: nothing synaptic can run in them, so counting
        is switched off while they run (a neuron's dynamics cost no dispatch)."""
        return {n for n in names if n in self._modules and n not in self._weighted
                and not any(t.dim() >= 2 for t in (*self._modules[n].parameters(), *self._modules[n].buffers()))}

    def settle(self, neurons: set[str], samples: float, updating: set[str] | None = None) -> None:
        """The recorder has decided which modules are `neurons`: drop their operations from the held passes and
        deliver them, each as `samples` images' worth (a T-th of the batch when one pass is one timestep).
        `updating`: the neurons with updates of their own (default: all; not a dropout named as a spiking layer)."""
        self.skipped |= neurons
        self._neurons = set(neurons if updating is None else updating)
        self._quiet = self._without_weights(self.skipped)
        self._skip_cache.clear()
        self._settled = True
        for rows, uncosted, outputs in self._held:
            self._deliver(rows, uncosted, outputs, samples)
        self._held.clear()

    def drop_held(self) -> None:
        """Forget the passes held back for `settle` (their sequence started over)."""
        self._held.clear()

    def close(self) -> None:
        """Remove the module hooks and leave the modes if a pass was cut short."""
        self._stop()
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def paused(self) -> "_Paused":
        """A context in which nothing is counted and no dispatch mode runs (the recorder's own work in hooks)."""
        return _Paused(self)

    def _deliver(self, rows: dict[str, list[c.Operation]], uncosted: dict[tuple[str, str], None],
                 outputs: dict[str, list[float]], samples: float) -> None:
        """Hand a pass over, without what ran inside modules found to be neurons since it was counted."""
        self.uncosted.update({k: None for k in uncosted if not self._skips(k[0])})
        neurons = {name: (updates, events, leaks(self._modules[name])) for name, (updates, events) in outputs.items()
                   if name in self._neurons}
        self.sink({row: calls for row, calls in rows.items() if row in self.whole or not self._skips(c.row_module(row))
                   or (calls[0].weighted and not self._inside_whole(c.row_module(row)))}, samples, neurons)

    # --- modules --------------------------------------------------------------------------------
    def _enter_module(self, module: nn.Module, args) -> None:
        if self._counting and not self._paused:
            name = self._names.get(id(module), "")
            frame = _Frame(name, name in self._weighted)
            self._stack.append(frame)
            if name in self._quiet and self._in_dispatch and _get_current_dispatch_mode() is self:
                self.__exit__(None, None, None)
                self._in_dispatch, frame.quiet = False, True
            if name in self.whole and args and isinstance(args[0], torch.Tensor) and args[0].dim() >= 3:
                x = args[0]
                self._rows.setdefault(name, []).append(whole_operation(name, self.whole[name], x))

    def _leave_module(self, module: nn.Module, args, output) -> None:
        if self._counting and not self._paused and len(self._stack) > 1 and (
                self._stack[-1].name == self._names.get(id(module))):
            frame = self._stack.pop()
            if self._neurons is None or frame.name in self._neurons:
                with self.paused():
                    self._count_outputs(frame.name, output)
            if frame.quiet:
                self.__enter__()
                self._in_dispatch = True

    def _count_outputs(self, name: str, output) -> None:
        """A neuron's outputs and output events (a count of k is k events) in this call."""
        tensors = _tensors(output if isinstance(output, (tuple, list)) else (output,))
        out = tensors[0] if tensors else None
        if out is None or not (out.is_floating_point() or out.dtype == torch.bool):
            return
        counts = self._outputs.setdefault(name, [0.0, 0.0])
        counts[0] += out.numel()
        counts[1] += float(out.detach().double().abs().sum())

    def _skips(self, module: str) -> bool:
        """Inside a neuron, a normalisation layer or a module costed whole (a convolution or linear layer is never
        skipped, unless inside a module costed whole)."""
        skip = self._skip_cache.get(module)
        if skip is None:
            skip = self._inside_whole(module) or (_inside(module, self.skipped) and module not in self._weighted)
            self._skip_cache[module] = skip
        return skip

    def _inside_whole(self, module: str) -> bool:
        return _inside(module, set(self.whole))

    # --- operators ------------------------------------------------------------------------------
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self._paused:
            return func(*args, **kwargs)
        if _composite(func):
            with self:
                decomposed = func.decompose(*args, **kwargs)
            if decomposed is not NotImplemented:
                return decomposed
        name = _base_name(func)
        frame = self._stack[-1]
        if name in MOVEMENT or name in FREE or (self._skips(frame.name) and not (
                name in PRODUCTS and not self._inside_whole(frame.name))):  # a neuron's own weights are synapses
            out = func(*args, **kwargs)
            if self.operands._marks and (name in PRESERVING or (name == "constant_pad_nd" and (
                    len(args) < 3 or args[2] == 0))):  # zero padding keeps spikes and sums
                self._carry_marks(args, out)
            return out
        label = LABELS.get(name)
        if label is None:
            out = func(*args, **kwargs)
            with _disable_current_modes():
                self._name_uncosted(name, args, frame)
            return out
        n = frame.labels[label] = frame.labels.get(label, 0) + 1
        if name in ELEMENTWISE:  # costed from its operands, before an in-place call changes them
            with _disable_current_modes():
                operations = self._elementwise(name, args, kwargs)
            out = func(*args, **kwargs)
            if operations and operations[0].both and name == "add" and kwargs.get("alpha", 1) == 1:
                self.operands.tag(out)  # a sum of spikes (or of spike sums) is a spike sum
        else:
            out = func(*args, **kwargs)
            with _disable_current_modes():
                operations = self._cost(name, args, out)
        for operation in operations:
            self._add(frame, operation, n, weighted=name in PRODUCTS and any(
                c.storage(a) in self.operands.weights for a in _tensors(args[:3])))
        return out

    def _carry_marks(self, args, out) -> None:
        """Copies, zero pads, max pools and concatenations of spike sums are spike sums, of spikes alone spikes."""
        marks = {self.operands.marked(t) for t in _tensors(args) if t.is_floating_point()}
        kind = c.SUMS if c.SUMS in marks else c.SPIKES if marks == {c.SPIKES} else None
        for result in (out if isinstance(out, (list, tuple)) else [out]) if kind else ():
            if isinstance(result, torch.Tensor) and result.is_floating_point():
                self.operands.mark(result, kind)

    def _elementwise(self, name: str, args, kwargs) -> list[c.Operation]:
        if len(args) < 2 or _scalar_like(args[0]) or _scalar_like(args[1]):
            return []  # rescaling or shifting by a constant: folded into thresholds and weights
        a, b = args[0], args[1]
        kind = self.operands.kind
        operation = c.elementwise(ELEMENTWISE[name], name, ELEMENTWISE[name], a, b, kind(a), kind(b))
        return [operation] if operation else []

    def _cost(self, name: str, args, out) -> list[c.Operation]:
        """The operations one call of a costed operator performs ([] when none is an operation on spikes)."""
        kind = self.operands.kind
        if PRODUCTS.get(name) == "matmul":
            a, b = (args[1], args[2]) if name in ("addmm", "baddbmm") else (args[0], args[1])
            ka, kb = kind(a), kind(b)
            if name == "mv":
                b = b.unsqueeze(-1)
            elif name == "dot":
                a, b = a.unsqueeze(0), b.unsqueeze(-1)
            product = out if name in ("mm", "bmm") else None  # the others add a bias or are vectors
            operation = c.matrix_product("matmul", name, "matmul", a, b, ka, kb, c.batches(a), product)
            return [self._biased(operation, args[0] if name in ("addmm", "baddbmm") else None)]
        if PRODUCTS.get(name) == "conv":
            x, w = args[0], args[1]
            operation = c.convolution("conv", "conv", x, w, kind(x), kind(w), ConvSpec.of_operator(w, *args[3:9]), out)
            return [self._biased(operation, args[2] if len(args) > 2 else None)]
        x = args[0]
        if name in REDUCTIONS:
            operation = c.reduction(name, name, x, kind(x), out)
            if operation and name == "sum":
                self.operands.tag(out)
            return [operation] if operation else []
        operator = "avg_pool" if name.startswith("avg") else "adaptive_avg_pool"
        operation = c.pooling("pooling", operator, x, kind(x), _windows(name, args, x, out), out)
        return [operation] if operation else []

    def _biased(self, operation: c.Operation, bias) -> c.Operation:
        """A product whose outputs get one of the model's biases added (`addmm`, a convolution's bias)."""
        if isinstance(bias, torch.Tensor) and c.storage(bias) in self.operands.weights:
            operation.bias, operation.bias_elements = operation.outputs, float(bias.numel())
        return operation

    def attention(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                  attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> None:
        """Cost one scaled-dot-product attention call as written: Q·Kᵀ, then the probabilities (dense) times V,
        only where the mask lets a query see a key; grouped key/value heads are shared by their query heads."""
        frame = self._stack[-1]
        if self._skips(frame.name):
            return
        n = frame.labels["attention"] = frame.labels.get("attention", 0) + 1
        with _disable_current_modes():
            kind = self.operands.kind
            kq, kk, kv = kind(query), kind(key), kind(value)
            if key.dim() >= 3 and query.dim() >= 3 and key.shape[-3] != query.shape[-3]:
                share = query.shape[-3] // key.shape[-3]
                key, value = key.repeat_interleave(share, -3), value.repeat_interleave(share, -3)
            seen = visible(query.shape[-2], key.shape[-2], attn_mask, is_causal, query.device)
            for operation in masked_attention(query, key, value, kq, kk, kv, seen):
                self._add(frame, operation, n)

    def _name_uncosted(self, name: str, args, frame: _Frame) -> None:
        """An operator no rule covers: named if it touches spikes or spike sums, or combines a weight matrix with
        activations (work on weights alone, such as weight standardisation, is no synaptic operation); boolean
        masks are not spikes here."""
        tensors = [t for t in _tensors(args) if t.dtype != torch.bool]
        kinds = [self.operands.kind(t) for t in tensors]
        matrices = [c.storage(t) in self._matrix_weights for t in tensors]
        if any(k in c.EVENTS for k in kinds) or (any(matrices) and any(k not in (None, c.WEIGHTS) for k in kinds)):
            self._uncosted_pass[(frame.name, name)] = None

    def _add(self, frame: _Frame, operation: c.Operation, n: int, weighted: bool = False) -> None:
        operation.weighted = weighted
        if frame.weighted and operation.kind in ("matmul", "conv") and "own" not in frame.labels:
            frame.labels["own"] = 1
            row, operation.kind = frame.name, self._kinds[frame.name]
        else:
            row = f"{frame.name or c.MODEL_ROW}: {operation.label} {n}"
        self._rows.setdefault(row, []).append(operation)


def whole_operation(name: str, module: nn.Module, x: torch.Tensor) -> c.Operation:
    """A module costed whole by its own `macs(sample_shape)` (FSTA) fed `x: [T, B, ...]`: dense MACs whose weights
    are its parameters, reading and writing a tensor of `x`'s size. Fed a whole sequence, it holds every timestep
    (it has no `leading` axes to read one from)."""
    dense = float(module.macs(tuple(x.shape[2:])) * x.shape[1])
    operation = c.Operation(name, "fsta", "fsta", c.DENSE, False, 0.0, dense, dr_macs=dense, weighted=True)
    return operation.sized(0.0, x.numel(), x.numel(), float(sum(p.numel() for p in module.parameters())))


def _inside(module: str, roots: set[str]) -> bool:
    return any(module == root or module.startswith(root + ".") for root in roots if root)


def _windows(name: str, args, x: torch.Tensor, out: torch.Tensor) -> list[list[tuple[int, int]]]:
    """The `[start, end)` windows along each pooled axis of an average pooling call (padding in negative starts)."""
    if name.startswith("avg"):
        kernel = list(args[1])
        axes = len(kernel)
        stride = list(args[2]) if len(args) > 2 and len(args[2]) else kernel
        padding = list(args[3]) if len(args) > 3 else [0] * axes
        stride, padding = [stride[i if len(stride) > 1 else 0] for i in range(axes)], [
            padding[i if len(padding) > 1 else 0] for i in range(axes)]
        sizes = out.shape[-axes:]
        return [[(j * stride[i] - padding[i], j * stride[i] - padding[i] + kernel[i]) for j in range(sizes[i])]
                for i in range(axes)]
    axes = len(args[1])
    return [[(math.floor(j * size / count), math.ceil((j + 1) * size / count)) for j in range(count)]
            for size, count in zip(x.shape[-axes:], out.shape[-axes:])]


class _Paused:
    """Runs the recorder's own work with no dispatch mode (this counter's or another's); the attention tap stays (it
    only passes calls through meanwhile: leaving it could pop another function mode)."""

    def __init__(self, counter: OperatorCounter) -> None:
        self.counter = counter
        self._modes = _disable_current_modes()

    def __enter__(self) -> None:
        self.counter._paused += 1
        self._modes.__enter__()

    def __exit__(self, *exc) -> None:
        self._modes.__exit__(*exc)
        self.counter._paused -= 1
