"""Every operator a forward pass runs, costed and attributed to the innermost module that ran it.

`OperatorCounter` is a `TorchDispatchMode` the recorder switches on for each forward pass of its model.
Composite operators (`linear`, `matmul`, `einsum`, `conv2d`, ...) are decomposed, so whatever the grad or
inference mode, the counter sees the same primitives: `mm`, `addmm`, `bmm`, `baddbmm`, `convolution`,
fused scaled-dot-product attention, elementwise products and sums, reductions and average pooling, each
costed by `conventions`. Movement (views, copies, pads, max pooling, concatenation) costs nothing;
anything else that touches spikes, spike sums or weight matrices is named as uncosted. Operations inside
neurons (their dynamics), normalisation layers (folded into the weights at inference) and FSTA (costed as
a module) are not synaptic operations and are skipped.

Rows are named after the module: its own name for a convolution or linear layer's own product, else
`"<module>: <label> <n>"` (the n-th such operation in one call of that module).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from . import conventions as c
from .geometry import ConvSpec

if TYPE_CHECKING:
    from ..metrics.energy import SynapseCost

PRODUCTS = {"mm": "matmul", "addmm": "matmul", "bmm": "matmul", "baddbmm": "matmul", "convolution": "conv",
            "_convolution": "conv"}
ELEMENTWISE = {"mul": "product", "add": "add", "sub": "add"}
REDUCTIONS = {"sum", "mean"}
POOLING = {"avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
           "adaptive_avg_pool3d", "_adaptive_avg_pool2d", "_adaptive_avg_pool3d"}
# Operators that move, select, compare or rescale values without combining them: free, spike sums stay sums.
MOVEMENT = {
    "view", "_unsafe_view", "reshape", "_reshape_alias", "t", "transpose", "permute", "expand", "unsqueeze", "squeeze",
    "select", "slice", "as_strided", "alias", "detach", "clone", "contiguous", "_to_copy", "to", "copy", "cat", "stack",
    "split", "split_with_sizes", "chunk", "unbind", "narrow", "flatten", "unflatten", "constant_pad_nd", "pad",
    "reflection_pad1d", "reflection_pad2d", "reflection_pad3d", "replication_pad1d", "replication_pad2d",
    "replication_pad3d", "max_pool1d", "max_pool2d", "max_pool3d", "max_pool2d_with_indices",
    "max_pool3d_with_indices", "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d", "index_select",
    "gather", "index", "flip", "roll", "repeat", "repeat_interleave", "upsample_nearest1d", "upsample_nearest2d",
    "upsample_nearest3d", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "lift_fresh", "lift_fresh_copy",
    "unfold", "im2col", "new_empty", "empty_like", "zeros_like", "ones_like", "fill", "zero", "masked_fill", "where",
}
FREE = {  # logic, comparisons and whole-tensor queries: no accumulate happens
    "eq", "ne", "gt", "ge", "lt", "le", "logical_and", "logical_or", "logical_not", "logical_xor", "bitwise_and",
    "bitwise_or", "bitwise_not", "bitwise_xor", "abs", "sign", "relu", "clamp", "clamp_min", "clamp_max", "pow",
    "heaviside", "_local_scalar_dense", "item", "equal", "is_nonzero", "any", "all", "max", "min", "amax", "amin",
    "aminmax", "argmax", "argmin", "floor", "ceil", "round", "trunc", "sort", "topk", "count_nonzero", "nonzero",
    "isnan", "isinf", "isfinite", "native_dropout", "dropout", "bernoulli", "rand", "rand_like", "randn", "randn_like",
    "empty", "zeros", "ones", "full", "full_like", "arange", "scalar_tensor", "_has_compatible_shallow_copy_type",
    "div", "rsub", "neg",  # rescaling by a constant is folded into thresholds and weights
}


@dataclass
class _Frame:
    """One running call of a module: its name and how many of each operation it has run so far."""

    name: str
    weighted: bool  # a convolution or linear layer: its first product is the module's own row
    labels: dict[str, int] = field(default_factory=dict)


def _base_name(func) -> str:
    name = func.overloadpacket.__name__
    return name[:-1] if name.endswith("_") and not name.endswith("__") else name


def _composite(func) -> bool:
    return torch._C._dispatch_has_kernel_for_dispatch_key(func.name(), "CompositeImplicitAutograd")


def _scalar_like(x) -> bool:
    return not isinstance(x, torch.Tensor) or x.numel() == 1


class OperatorCounter(TorchDispatchMode):
    """Counts the operations of `model`'s forward passes: `begin()` / `end(samples)` around each pass, rows handed
    to `sink(rows, samples)` (the energy metrics). Until `settle()` is called, passes are held back, because the
    recorder learns only after the first pass which modules are neurons (whose operations are not costed)."""

    def __init__(self, model: nn.Module, sink: Callable[[dict[str, list[c.Operation]], float], None],
                 skipped: set[str], whole: dict[str, "SynapseCost"] | None = None,
                 counts_everywhere: bool = False) -> None:
        """`skipped`: modules whose operations are not synaptic (neurons, normalisation); a convolution or linear
        layer inside a neuron (a recurrent synapse) is still costed. `whole`: modules costed as one operation by
        their own count (FSTA, fed `[T, B, ...]`), nothing inside them separately."""
        super().__init__()
        self.model = model
        self.sink = sink
        self.skipped = set(skipped)
        self.whole = dict(whole or {})
        self.uncosted: dict[tuple[str, str], None] = {}  # (module, operator), in order of appearance
        weights = {c._storage(t) for t in [*model.parameters(), *model.buffers()]}
        self.operands = c.Operands(weights, counts_everywhere)
        self._matrix_weights = {c._storage(p) for p in model.parameters() if p.dim() >= 2}
        modules = dict(model.named_modules())
        self._names = {id(m): n for n, m in modules.items()}
        self._weighted = {n for n, m in modules.items() if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))}
        self._kinds = {n: ("linear" if isinstance(m, nn.Linear) else "transposed conv"
                           if isinstance(m, nn.modules.conv._ConvTransposeNd) else "conv") for n, m in modules.items()
                       if n in self._weighted}
        self._stack: list[_Frame] = []
        self._rows: dict[str, list[c.Operation]] = {}
        self._uncosted_pass: dict[tuple[str, str], None] = {}
        self._held: list[tuple[dict[str, list[c.Operation]], dict[tuple[str, str], None]]] = []
        self._settled = False
        self._skip_cache: dict[str, bool] = {}
        self._paused = 0
        self._depth = 0
        self._handles = [h for n, m in modules.items() if n for h in (
            m.register_forward_pre_hook(self._enter_module), m.register_forward_hook(self._leave_module))]

    # --- passes ---------------------------------------------------------------------------------
    def begin(self) -> None:
        """Start counting a forward pass (a pass that raised before its end is dropped)."""
        if self._counting():
            self.__exit__(None, None, None)
        self._stack = [_Frame("", False)]  # the model's own forward
        self._rows, self._uncosted_pass = {}, {}
        self.operands.clear()
        self.__enter__()

    def end(self, samples: float) -> None:
        """Stop counting and hand the pass's rows over as `samples` images' worth (held back, with the number
        `settle` gives, until then)."""
        if not self._counting():
            return
        self.__exit__(None, None, None)
        self.operands.clear()
        if self._settled:
            self._deliver(self._rows, self._uncosted_pass, samples)
        else:
            self._held.append((self._rows, self._uncosted_pass))
        self._rows, self._uncosted_pass = {}, {}

    def settle(self, skipped: set[str], samples: float) -> None:
        """The recorder has decided which modules are neurons: drop their operations from the held passes and
        deliver them, each as `samples` images' worth (a T-th of the batch when one pass is one timestep)."""
        self.skipped |= skipped
        self._skip_cache.clear()
        self._settled = True
        for rows, uncosted in self._held:
            self._deliver(rows, uncosted, samples)
        self._held.clear()

    def drop_held(self) -> None:
        """Forget the passes held back for `settle` (their sequence started over)."""
        self._held.clear()

    def close(self) -> None:
        """Remove the module hooks and leave the dispatch mode if a pass was cut short."""
        if self._counting():
            self.__exit__(None, None, None)
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def paused(self) -> "_Paused":
        """A context in which operations are not counted (the recorder's own work inside hooks)."""
        return _Paused(self)

    def _counting(self) -> bool:
        return self._depth > 0

    def __enter__(self):
        self._depth += 1  # also re-entered while a composite operator is decomposed
        return super().__enter__()

    def __exit__(self, *exc):
        self._depth -= 1
        return super().__exit__(*exc)

    def _deliver(self, rows: dict[str, list[c.Operation]], uncosted: dict[tuple[str, str], None],
                 samples: float) -> None:
        """Hand a pass over, without what ran inside modules found to be neurons since it was counted."""
        self.uncosted.update({k: None for k in uncosted if not self._skips(k[0])})
        kept = {row: calls for row, calls in rows.items() if row in self.whole or not self._skips(c.row_module(row))
                or (calls[0].weighted and not self._inside_whole(c.row_module(row)))}
        if kept:
            self.sink(kept, samples)

    # --- modules --------------------------------------------------------------------------------
    def _enter_module(self, module: nn.Module, args) -> None:
        if self._counting():
            name = self._names.get(id(module), "")
            self._stack.append(_Frame(name, name in self._weighted))
            if name in self.whole and args and isinstance(args[0], torch.Tensor) and args[0].dim() >= 3:
                x, cost = args[0], self.whole[name]
                dense = float(cost.dense_ops(x.shape[0], x.shape[2:]) * x.shape[1])
                self._rows.setdefault(name, []).append(
                    c.Operation(name, cost.operator, cost.kind, c.DENSE, False, 0.0, dense))

    def _leave_module(self, module: nn.Module, args, output) -> None:
        if self._counting() and self._stack and self._stack[-1].name == self._names.get(id(module)):
            self._stack.pop()

    def _skips(self, module: str) -> bool:
        """Inside a neuron, a normalisation layer or FSTA (a convolution or linear layer is never skipped, unless
        inside FSTA)."""
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
        out = func(*args, **kwargs)
        frame = self._stack[-1] if self._stack else _Frame("", False)
        name = _base_name(func)
        if not self._skips(frame.name) or (name in PRODUCTS and not self._inside_whole(frame.name)):
            self._count(name, args, kwargs, out, frame)  # a neuron's own products with weights are synapses
        return out

    def _count(self, name: str, args, kwargs, out, frame: _Frame) -> None:
        if name in MOVEMENT:
            if any(self.operands.tagged(a) for a in args if isinstance(a, torch.Tensor)) or (
                    args and isinstance(args[0], (list, tuple)) and any(self.operands.tagged(a) for a in args[0])):
                for result in (out if isinstance(out, (list, tuple)) else [out]):
                    self.operands.tag(result)
            return
        if name in FREE:
            return
        operations = self._cost(name, args, kwargs, out)
        if operations is None:
            self._name_uncosted(name, args, frame)
            return
        weighted = name in PRODUCTS and any(c._storage(a) in self.operands.weights for a in args[:3]
                                            if isinstance(a, torch.Tensor))
        for operation in operations:
            operation.weighted = weighted
            self._add(frame, operation)

    def _cost(self, name: str, args, kwargs, out) -> list[c.Operation] | None:
        """The operations one call performs ([] when none is an operation on spikes); None if no rule applies."""
        kind = self.operands.kind
        if name in ("mm", "bmm"):
            a, b = args[0], args[1]
            return [c.matrix_product(PRODUCTS[name], name, "matmul", a, b, kind(a), kind(b), _batches(a), out)]
        if name in ("addmm", "baddbmm"):
            a, b = args[1], args[2]
            return [c.matrix_product(PRODUCTS[name], name, "matmul", a, b, kind(a), kind(b), _batches(a))]
        if name in ("convolution", "_convolution"):
            x, w = args[0], args[1]
            spec = ConvSpec.of_operator(w, *args[3:9])
            return [c.convolution("conv", "conv", x, w, kind(x), kind(w), spec, out)]
        if name.startswith("_scaled_dot_product") and "backward" not in name:
            return self._attention(args, kwargs)
        if name in ELEMENTWISE:
            if len(args) < 2 or _scalar_like(args[0]) or _scalar_like(args[1]):
                return []  # rescaling or shifting by a constant: folded into thresholds and weights
            operands = [(x, kind(x)) for x in args[:2]]
            operation = c.elementwise(ELEMENTWISE[name], name, ELEMENTWISE[name], operands, out)
            if name == "add" and kwargs.get("alpha", 1) == 1 and all(k in c.EVENTS for _, k in operands):
                self.operands.tag(out)
            return [operation] if operation else []
        if name in REDUCTIONS:
            x = args[0]
            operation = c.reduction(name, name, x, kind(x), out)
            if operation and name == "sum":
                self.operands.tag(out)
            return [operation] if operation else []
        if name in POOLING:
            return self._pooling(name, args, out)
        return None

    def _attention(self, args, kwargs) -> list[c.Operation]:
        """Fused scaled-dot-product attention: Q·Kᵀ, then the softmax's probabilities (dense) times V."""
        q, k, v = args[:3]
        kind = self.operands.kind
        batch = _batches(q)
        scores = c.matrix_product("attention q·kᵀ", "sdpa", "attention", q, k.transpose(-2, -1), kind(q), kind(k),
                                  batch)
        probabilities = torch.empty(*q.shape[:-1], k.shape[-2], device="meta")
        values = c.matrix_product("attention p·v", "sdpa", "attention", probabilities, v, c.DENSE, kind(v), batch)
        return [scores, values]

    def _pooling(self, name: str, args, out) -> list[c.Operation]:
        x = args[0]
        if name.startswith("avg"):
            count_include_pad = args[5] if len(args) > 5 else True
            divisor = args[6] if len(args) > 6 else None
            window = math.prod(args[1]) if count_include_pad and divisor is None else None
        else:
            spatial_in, spatial_out = x.shape[-len(args[1]):], out.shape[-len(args[1]):]
            uniform = all(i % o == 0 for i, o in zip(spatial_in, spatial_out))
            window = math.prod(i // o for i, o in zip(spatial_in, spatial_out)) if uniform else None
        operator = "avg_pool" if name.startswith("avg") else "adaptive_avg_pool"
        operation = c.pooling("pooling", operator, x, self.operands.kind(x), out, window)
        return [operation] if operation else []

    def _name_uncosted(self, name: str, args, frame: _Frame) -> None:
        """An operator no rule covers: named if it touches spikes or spike sums, or combines a weight matrix with
        activations (work on weights alone, such as weight standardisation, is no synaptic operation)."""
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        tensors += [t for a in args if isinstance(a, (list, tuple)) for t in a if isinstance(t, torch.Tensor)]
        kinds = [self.operands.kind(t) for t in tensors]
        matrices = [c._storage(t) in self._matrix_weights for t in tensors]
        if any(k in c.EVENTS for k in kinds) or (any(matrices) and any(
                k not in (None, c.WEIGHTS) for k in kinds)):
            self._uncosted_pass[(frame.name, name)] = None

    def _add(self, frame: _Frame, operation: c.Operation) -> None:
        if frame.weighted and operation.kind in ("matmul", "conv") and "own" not in frame.labels:
            frame.labels["own"] = 1
            row, operation.kind = frame.name, self._kinds[frame.name]
        else:
            n = frame.labels[operation.label] = frame.labels.get(operation.label, 0) + 1
            row = f"{frame.name or c.MODEL_ROW}: {operation.label} {n}"
        self._rows.setdefault(row, []).append(operation)


def _inside(module: str, roots: set[str]) -> bool:
    return any(module == root or module.startswith(root + ".") for root in roots if root)


def _batches(x: torch.Tensor) -> int:
    return math.prod(x.shape[:-2]) if x.dim() > 2 else 1


class _Paused:
    """Leaves the dispatch mode for the recorder's own work inside hooks, so that it costs no dispatch overhead."""

    def __init__(self, counter: OperatorCounter) -> None:
        self.counter = counter
        self.depth = 0

    def __enter__(self) -> None:
        self.counter._paused += 1
        while self.counter._depth:
            self.counter.__exit__(None, None, None)
            self.depth += 1

    def __exit__(self, *exc) -> None:
        for _ in range(self.depth):
            self.counter.__enter__()
        self.counter._paused -= 1
