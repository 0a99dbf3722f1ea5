"""How a module's tensors map onto spikescope's canonical time-first layout `[T, B, ...]`.

Frameworks differ: multi-step neurons return `[T, B, ...]`; convolutions inside them see time
folded into the batch, `[T*B, ...]`; single-step neurons are called once per timestep, either T
times within one forward pass of the model or once per forward pass with the loop outside the
model. A layout is decided once per module, from its first forward pass, and never guessed:
when the shapes allow more than one reading, `infer_layout` says so.
"""
from __future__ import annotations

from enum import Enum
from typing import Sequence

import torch

from .errors import SpikescopeError


class Layout(str, Enum):
    TIME_FIRST = "time-first [T, B, ...]"
    FOLDED = "folded [T*B, ...]"
    PER_CALL = "single-step, T calls per forward"
    PER_FORWARD = "single-step, one call per forward"


def batch_size_of(model_input: torch.Tensor, T: int) -> int:
    """The batch size of a model input: `[T, B, C, H, W]` and `[T, B, N]` are time-first, anything else batch-first."""
    time_first = model_input.dim() == 5 or (model_input.dim() == 3 and model_input.shape[0] == T)
    return int(model_input.shape[1] if time_first else model_input.shape[0])


def candidate_layouts(shape: Sequence[int], calls: int, T: int, batch: int, rank: int | None = None) -> list[Layout]:
    """Every layout consistent with one module's first forward pass (`calls` calls, first tensor `shape`).

    `rank`, when known (convolutions), is the number of dimensions of one sample: a time-first
    tensor then has `rank + 2` dimensions and every other layout `rank + 1`.
    """
    stepped_rank_ok = rank is None or len(shape) == rank + 1
    if calls == T and T > 1:
        return [Layout.PER_CALL] if shape[0] == batch and stepped_rank_ok else []
    if calls != 1:
        return []
    found = []
    if len(shape) >= 2 and shape[0] == T and shape[1] == batch and (rank is None or len(shape) == rank + 2):
        found.append(Layout.TIME_FIRST)
    if shape[0] == T * batch and stepped_rank_ok:
        found.append(Layout.FOLDED)
    if shape[0] == batch and T > 1 and stepped_rank_ok:
        found.append(Layout.PER_FORWARD)
    return found


def infer_layout(name: str, shape: Sequence[int], calls: int, T: int, batch: int,
                 preferred: Sequence[Layout] = (), rank: int | None = None) -> Layout:
    """The one layout that fits, preferring `preferred` (what the module's framework declares, or what
    the rest of the model resolved to); a clear error when none or several fit."""
    found = candidate_layouts(shape, calls, T, batch, rank)
    if not found:
        raise SpikescopeError(
            f"cannot map layer {name} onto [T, B, ...]: it ran {calls} time(s) in one forward pass with shape "
            f"{tuple(shape)}, which fits neither T={T} nor the batch size {batch} read from the model input "
            "(time-first if 5-D, else batch-first); pass the right T or a time-first input")
    chosen = [layout for layout in found if layout in preferred] or found
    if len(chosen) > 1 and T == 1:
        return Layout.FOLDED  # with T = 1 every reading is the same tensor
    if set(chosen) == {Layout.TIME_FIRST, Layout.FOLDED} and batch == 1:
        return Layout.TIME_FIRST  # [T, 1, ...] read either way holds the same values in the same order
    if len(chosen) > 1:
        raise SpikescopeError(
            f"cannot tell the time layout of layer {name} (output shape {tuple(shape)} fits "
            f"{' and '.join(c.value for c in chosen)} with T={T}, batch size {batch}); "
            "use a batch size different from T")
    return chosen[0]


def to_time_first(tensors: Sequence[torch.Tensor], layout: Layout, T: int) -> torch.Tensor:
    """Bring one sequence's tensors (one for TIME_FIRST/FOLDED, T for the single-step layouts) to `[T, B, ...]`."""
    if layout is Layout.TIME_FIRST:
        return tensors[0]
    if layout is Layout.FOLDED:  # time-major folding, as `x.flatten(0, 1)` of a [T, B, ...] tensor gives
        x = tensors[0]
        return x.unflatten(0, (T, x.shape[0] // T))
    return torch.stack(list(tensors))
