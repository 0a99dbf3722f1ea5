"""How a module's tensors map onto spikescope's canonical time-first layout `[T, B, ...]`.

Frameworks differ: multi-step neurons return `[T, B, ...]` (spikescope, SpikingJelly) or
`[B, T, ...]` (sinabs); convolutions inside them see time folded into the batch, time-major
`[T*B, ...]` (`x.flatten(0, 1)` of `[T, B, ...]`) or batch-major `[B*T, ...]` (sinabs' squeeze
layers); single-step neurons are called once per timestep, either T times within one forward pass
of the model or once per forward pass with the loop outside the model. A layout is decided once
per module, from its first forward pass, and never guessed: when the shapes allow more than one
reading, `infer_layout` says so.
"""
from __future__ import annotations

from enum import Enum
from typing import Sequence

import torch

from .errors import SpikescopeError


class Layout(str, Enum):
    TIME_FIRST = "time-first [T, B, ...]"
    BATCH_FIRST = "batch-first [B, T, ...]"
    FOLDED = "folded time-major [T*B, ...]"
    FOLDED_BATCH_MAJOR = "folded batch-major [B*T, ...]"
    PER_CALL = "single-step, T calls per forward"
    PER_FORWARD = "single-step, one call per forward"


FOLD_ORDERS = {"time-major": Layout.FOLDED, "batch-major": Layout.FOLDED_BATCH_MAJOR}
WHOLE_SEQUENCE = (Layout.TIME_FIRST, Layout.BATCH_FIRST, Layout.FOLDED, Layout.FOLDED_BATCH_MAJOR)


def batch_size_of(model_input: torch.Tensor, T: int) -> int:
    """The batch size of a model input: `[T, B, C, H, W]` and `[T, B, N]` are time-first, anything else batch-first."""
    time_first = model_input.dim() == 5 or (model_input.dim() == 3 and model_input.shape[0] == T)
    return int(model_input.shape[1] if time_first else model_input.shape[0])


def candidate_layouts(shape: Sequence[int], calls: int, T: int, batch: int, rank: int | None = None,
                      batch_first: bool = False) -> list[Layout]:
    """Every layout consistent with one module's first forward pass (`calls` calls, first tensor `shape`).

    `rank`, when known (convolutions), is the number of dimensions of one sample: a `[T, B, ...]` or
    `[B, T, ...]` tensor then has `rank + 2` dimensions and every other layout `rank + 1`. `[B, T, ...]`
    is considered only with `batch_first` (a framework that uses it is in the model).
    """
    stepped_rank_ok = rank is None or len(shape) == rank + 1
    if calls == T and T > 1:
        return [Layout.PER_CALL] if shape[0] == batch and stepped_rank_ok else []
    if calls != 1:
        return []
    found = []
    whole_rank_ok = len(shape) >= 2 and (rank is None or len(shape) == rank + 2)
    if whole_rank_ok and shape[0] == T and shape[1] == batch:
        found.append(Layout.TIME_FIRST)
    if whole_rank_ok and batch_first and shape[0] == batch and shape[1] == T and T != batch:
        found.append(Layout.BATCH_FIRST)
    if shape[0] == T * batch and stepped_rank_ok:
        found += [Layout.FOLDED, Layout.FOLDED_BATCH_MAJOR]
    if shape[0] == batch and T > 1 and stepped_rank_ok:
        found.append(Layout.PER_FORWARD)
    return found


def _same_values(chosen: list[Layout], T: int, batch: int) -> Layout | None:
    """The reading to use when every candidate reads the same values in the same order, else None."""
    if T == 1 or batch == 1:  # one timestep, or one sample: the fold order and [T, 1] vs [T*1] do not matter
        for layout in (Layout.TIME_FIRST, Layout.FOLDED):
            if layout in chosen and set(chosen) <= {Layout.TIME_FIRST, Layout.FOLDED, Layout.FOLDED_BATCH_MAJOR}:
                return layout
    return None


def infer_layout(name: str, shape: Sequence[int], calls: int, T: int, batch: int,
                 preferred: Sequence[Layout] = (), rank: int | None = None, batch_first: bool = False) -> Layout:
    """The one layout that fits, preferring `preferred` (what the module's framework declares, the fold order
    the user gave, or what the rest of the model resolved to); a clear error when none or several fit."""
    found = candidate_layouts(shape, calls, T, batch, rank, batch_first)
    if not found:
        raise SpikescopeError(
            f"cannot map layer {name} onto [T, B, ...]: it ran {calls} time(s) in one forward pass with shape "
            f"{tuple(shape)}, which fits neither T={T} nor the batch size {batch} read from the model input "
            "(time-first if 5-D, else batch-first); pass the right T or a time-first input")
    chosen = [layout for layout in found if layout in preferred] or found
    if len(chosen) == 1:
        return chosen[0]
    same = _same_values(chosen, T, batch)
    if same is not None:
        return same
    if set(chosen) == {Layout.FOLDED, Layout.FOLDED_BATCH_MAJOR}:
        raise SpikescopeError(
            f"layer {name} has time folded into the batch (shape {tuple(shape)} = [T*B, ...] with T={T}, batch "
            f"size {batch}) and spikescope cannot know the fold order: pass fold='time-major' (--fold time-major) "
            "if the model folds [T, B, ...] with x.flatten(0, 1), or fold='batch-major' if it folds [B, T, ...]")
    raise SpikescopeError(
        f"cannot tell the time layout of layer {name} (output shape {tuple(shape)} fits "
        f"{' and '.join(c.value for c in chosen)} with T={T}, batch size {batch}); "
        "use a batch size different from T")


def to_time_first(tensors: Sequence[torch.Tensor], layout: Layout, T: int) -> torch.Tensor:
    """One sequence's tensors (one for the whole-sequence layouts, T for the single-step ones) as `[T, B, ...]`."""
    if layout is Layout.TIME_FIRST:
        return tensors[0]
    if layout is Layout.BATCH_FIRST:
        return tensors[0].transpose(0, 1)
    if layout is Layout.FOLDED:  # time-major folding, as `x.flatten(0, 1)` of a [T, B, ...] tensor gives
        x = tensors[0]
        return x.unflatten(0, (T, x.shape[0] // T))
    if layout is Layout.FOLDED_BATCH_MAJOR:  # batch-major folding, as `x.flatten(0, 1)` of [B, T, ...] gives
        x = tensors[0]
        return x.unflatten(0, (x.shape[0] // T, T)).transpose(0, 1)
    return torch.stack(list(tensors))
