"""How a module's tensors map onto spikescope's canonical time-first layout `[T, B, ...]`.

Frameworks differ: multi-step neurons return `[T, B, ...]` (spikescope, SpikingJelly) or
`[B, T, ...]` (sinabs); convolutions inside them see time folded into the batch, time-major
`[T*B, ...]` (`x.flatten(0, 1)` of `[T, B, ...]`) or batch-major `[B*T, ...]` (sinabs' squeeze
layers); single-step neurons are called once per timestep, either T times within one forward pass
of the model or once per forward pass with the loop outside the model. A layout is decided once
per module, from the model's first forward pass (`decide_layouts`), and never guessed: a layout a
framework declares is binding, and when the shapes allow more than one reading spikescope says so.
"""
from __future__ import annotations

from dataclasses import dataclass
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


@dataclass
class FirstPass:
    """What one watched module showed on the model's first forward pass: one tensor shape per call, the
    rank of one sample where known (convolutions), and the layouts its framework declares."""

    name: str
    shapes: list[tuple[int, ...]]
    rank: int | None = None
    declared: tuple[Layout, ...] = ()


def batch_size_of(model_input: torch.Tensor, T: int) -> int:
    """The batch size of a model input: `[T, B, C, H, W]` and `[T, B, N]` are time-first, anything else batch-first."""
    time_first = model_input.dim() == 5 or (model_input.dim() == 3 and model_input.shape[0] == T)
    return int(model_input.shape[1] if time_first else model_input.shape[0])


def candidate_layouts(shape: Sequence[int], calls: int, T: int, batch: int, rank: int | None = None,
                      batch_first: bool = False) -> list[Layout]:
    """Every layout consistent with one module's first forward pass (`calls` calls, first tensor `shape`).

    `rank`, when known (convolutions), is the number of dimensions of one sample: a `[T, B, ...]` or
    `[B, T, ...]` tensor then has `rank + 2` dimensions and every other layout `rank + 1`. `[B, T, ...]`
    is considered only with `batch_first` (the module or the model's framework uses it).
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
    if whole_rank_ok and batch_first and shape[0] == batch and shape[1] == T:
        found.append(Layout.BATCH_FIRST)
    if shape[0] == T * batch and stepped_rank_ok:
        found += [Layout.FOLDED, Layout.FOLDED_BATCH_MAJOR]
    if shape[0] == batch and T > 1 and stepped_rank_ok:
        found.append(Layout.PER_FORWARD)
    return found


def infer_layout(name: str, shape: Sequence[int], calls: int, T: int, batch: int,
                 preferred: Sequence[Layout] = (), rank: int | None = None, batch_first: bool = False,
                 binding: bool = False) -> Layout:
    """The one layout that fits, preferring `preferred` (the fold order the user gave, or what the rest of the
    model resolved to); with `binding`, `preferred` is what the module's framework declares and nothing else
    is accepted. A clear error when none or several fit."""
    found = candidate_layouts(shape, calls, T, batch, rank, batch_first)
    if not found:
        raise SpikescopeError(
            f"cannot map layer {name} onto [T, B, ...]: it ran {calls} time(s) in one forward pass with shape "
            f"{tuple(shape)}, which fits neither T={T} nor the batch size {batch} read from the model input "
            "(time-first if 5-D, else batch-first); pass the right T or a time-first input")
    chosen = [layout for layout in found if layout in preferred]
    if binding and not chosen:
        raise SpikescopeError(
            f"layer {name} returns {' or '.join(p.value for p in preferred)} by its framework, but it ran {calls} "
            f"time(s) with shape {tuple(shape)}, which does not fit T={T} and batch size {batch}: check T")
    if not binding and batch == 1 and Layout.TIME_FIRST in found and Layout.FOLDED in found:
        chosen = found  # [T, 1, ...]: a time-first batch of one, or a fold whose first sample axis has size 1
    chosen = chosen or found
    if len(chosen) == 1:
        return chosen[0]
    if set(chosen) == {Layout.FOLDED, Layout.FOLDED_BATCH_MAJOR}:
        if T == 1 or batch == 1:  # one timestep or one sample: both folds read the same values
            return Layout.FOLDED
        raise SpikescopeError(
            f"layer {name} has time folded into the batch (shape {tuple(shape)} = [T*B, ...] with T={T}, batch "
            f"size {batch}) and spikescope cannot know the fold order: pass fold='time-major' (--fold time-major) "
            "if the model folds [T, B, ...] with x.flatten(0, 1), or fold='batch-major' if it folds [B, T, ...]")
    if batch == 1:
        raise SpikescopeError(
            f"cannot tell the time layout of layer {name} from a first batch of one sample (output shape "
            f"{tuple(shape)} fits {' and '.join(c.value for c in chosen)}); start with a batch of more than one")
    raise SpikescopeError(
        f"cannot tell the time layout of layer {name} (output shape {tuple(shape)} fits "
        f"{' and '.join(c.value for c in chosen)} with T={T}, batch size {batch}); "
        "use a batch size different from T")


def _looks_batch_first(shape: Sequence[int], input_shape: Sequence[int], T: int) -> bool:
    """An output `[B, T, ...]` of a model fed `[B, T, ...]`: a batch-first sequence, or one step per forward?"""
    return T > 1 and len(shape) >= 3 and shape[1] == T and len(input_shape) >= 3 and input_shape[1] == T


def decide_layouts(passes: dict[str, FirstPass], T: int, batch: int, fold: Layout | None = None,
                   batch_first: bool = False, batch_first_said: bool = False,
                   input_shape: Sequence[int] = ()) -> dict[str, Layout]:
    """Every spiking layer's layout, decided together from the first forward pass.

    Neurons use what their framework declares, else the reading the rest of the model implies (`fold` for
    folded outputs, `batch_first` for `[B, T, ...]`).
    `batch_first_said` is False when nobody said whether undeclared neurons are batch-first: an output
    that could be `[B, T, ...]` or one step of a per-forward loop is then an error, not a guess.
    """
    readings = {k: candidate_layouts(p.shapes[0], len(p.shapes), T, batch, p.rank,
                                     batch_first or Layout.BATCH_FIRST in p.declared) for k, p in passes.items()}
    external = any(r == [Layout.PER_FORWARD] for r in readings.values())
    internal = any(r and Layout.PER_FORWARD not in r for r in readings.values())
    if external and internal:
        raise SpikescopeError("some layers step once per forward pass and others see the whole sequence; "
                              "spikescope cannot align them")
    model_wide = (Layout.PER_FORWARD,) if external else (
        Layout.BATCH_FIRST if batch_first else Layout.TIME_FIRST, Layout.PER_CALL)
    layouts: dict[str, Layout] = {}
    for key, first in passes.items():
        declared = tuple(layout for layout in first.declared if layout in model_wide) or first.declared
        preferred = declared or model_wide + ((fold,) if fold else ())
        layout = infer_layout(first.name, first.shapes[0], len(first.shapes), T, batch, preferred, first.rank,
                              batch_first or Layout.BATCH_FIRST in first.declared, binding=bool(declared))
        if (layout is Layout.PER_FORWARD and not first.declared and not batch_first_said
                and _looks_batch_first(first.shapes[0], input_shape, T)):
            raise SpikescopeError(
                f"layer {first.name} returns {tuple(first.shapes[0])} for a model fed {tuple(input_shape)}: a "
                f"batch-first sequence [B, T, ...] with T={T}, or one timestep per forward pass? pass "
                "batch_first=True (--batch-first) or batch_first=False (--no-batch-first)")
        layouts[key] = layout
    return layouts


def to_time_first(tensors: Sequence[torch.Tensor], layout: Layout, T: int) -> torch.Tensor:
    """One sequence's tensors (one for the whole-sequence layouts, one per call otherwise) as `[T, B, ...]`."""
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
