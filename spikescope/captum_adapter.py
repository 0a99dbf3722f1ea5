"""Captum's view of a spiking network: a batch-first function with fresh neuron state on every call.

Captum assumes batch-first models without state; spiking networks run time-first and keep neuron
state between calls. `SpikingFunction` shows Captum a spiking model as a batch-first function with
fresh neuron state on every call, `surrogate_gradients` keeps surrogate gradients flowing in `eval()`,
and `TimestepRouter` shows Captum's layer methods one timestep of a spiking layer as a batch-first
tensor, whatever the layer's time layout.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
from torch import nn

from .analyze import batch_logits, default_run
from .detect import first_tensor, neuron_framework, reset_neuron_states
from .errors import SpikescopeError
from .modes import modes_kept
from .timelayout import Layout
from .tokens import Geometry, as_features, from_features


@contextmanager
def surrogate_gradients(model: nn.Module) -> Iterator[None]:
    """Gradients through a model in evaluation mode: its BatchNorm and dropout behave as in `eval()`, its neurons
    run in training mode (some neuron classes take a gradient-free shortcut in `eval()`; spikescope's LIF,
    SpikingJelly's LIFNode and snnTorch's neurons compute the same spikes either way). Every module's mode is
    restored afterwards, also when the block raises."""
    with modes_kept(model):
        model.eval()
        for module in model.modules():
            if neuron_framework(module) is not None:
                module.train()
        with torch.enable_grad():
            yield


def repeat_over_time(images: torch.Tensor, T: int) -> torch.Tensor:
    """`[B, ...]` images as `[B, T, ...]`: the batch-first form of a direct-encoded input, one copy per timestep."""
    return images.unsqueeze(1).expand(images.shape[0], T, *images.shape[1:]).contiguous()


class SpikingFunction(nn.Module):
    """A spiking model as Captum calls it: `[B, ...]` in, `[B, classes]` logits out, neuron state reset first.

    With `time_first_input`, Captum's input is `[B, T, ...]` (see `repeat_over_time`) and the model gets
    `[T, B, ...]`, so input attributions come per timestep. `run(model, inputs)` performs one forward
    pass (default `model(inputs)`); `[T, B, classes]` and `[B, T, classes]` outputs are averaged over time.
    """

    def __init__(self, model: nn.Module, T: int | None, time_first_input: bool = False,
                 run: Callable[[nn.Module, torch.Tensor], Any] | None = None) -> None:
        super().__init__()
        self.model = model
        self.T = T
        self.time_first_input = time_first_input
        self.run = run or default_run
        self.routers: list[TimestepRouter] = []
        self.time_axis: int | None = None  # of a [T, B, classes] (0) or [B, T, classes] (1) output, once learned

    def run_model(self, inputs: torch.Tensor) -> Any:
        """One forward pass from rest on Captum's form of the input; the model's raw output."""
        reset_neuron_states(self.model)
        for router in self.routers:
            router.new_pass()
        model_input = inputs.transpose(0, 1).contiguous() if self.time_first_input else inputs  # [B, T] -> [T, B]
        return self.run(self.model, model_input)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.logits(self.run_model(inputs), inputs.shape[0])

    def logits(self, output: Any, batch: int) -> torch.Tensor:
        """`[B, classes]` logits of one forward pass's output (see the class docstring)."""
        output = first_tensor(output)
        if self.time_axis is None and output is not None and output.dim() == 3:
            axes = self._time_axes(output, batch)
            if len(axes) == 1 or (axes and self.time_first_input):  # B == T: time-first in, time-first out
                self.time_axis = axes[0]
        if self.time_axis is not None and output is not None and output.dim() == 3:
            return output.mean(dim=self.time_axis)
        logits = batch_logits(output, self.T, batch)
        if logits is None:
            shape = tuple(output.shape) if output is not None else "no tensor"
            raise SpikescopeError(f"attribution needs [B, classes] logits (or [T, B, classes], with T given) from the "
                                  f"model; it returned {shape}")
        return logits

    def learn_time_axis(self, images: torch.Tensor) -> None:
        """Find where time is in the model's output from one call with a batch of T + 1 images (never T, so the
        axes cannot be confused), for every later call, whatever its batch size. Without it, the first call whose
        batch differs from T decides (or, with B == T, time-first input means time-first output)."""
        batch = as_input(self, images[torch.arange(self.T + 1) % len(images)], self.T)
        with torch.no_grad():
            output = first_tensor(self.run_model(batch))
        if output is not None and output.dim() == 3:
            axes = self._time_axes(output, self.T + 1)
            self.time_axis = axes[0] if axes else None

    def _time_axes(self, output: torch.Tensor, batch: int) -> list[int]:
        """The axes (0, 1) of a 3-D output that can be time: of length T, with the batch on the other one."""
        return [axis for axis in (0, 1) if self.T is not None and output.shape[axis] == self.T
                and output.shape[1 - axis] == batch]


class TimestepRouter:
    """Passes what `module` emits at timestep `t` through `view`, an identity module Captum's layer methods hook,
    as a batch-first `[B, ...]` tensor; the other timesteps pass untouched.

    Captum's layer methods assume one batch-first output per forward pass; a spiking layer's output is
    `[T, B, ...]`, `[B, T, ...]`, `[T*B, ...]` or `[B*T, ...]`, or comes in T calls (single-step neurons).
    `view` sees it as the metrics do (`tokens.as_features`: token layers as features on their patch grid).
    Whatever Captum puts in place of `view`'s output (LayerIntegratedGradients scales it) flows on into
    the network. `SpikingFunction` calls `new_pass()` before each forward pass.
    """

    def __init__(self, module: nn.Module, layout: Layout, T: int, geometry: Geometry | None = None) -> None:
        self.view = nn.Identity()
        self.layout = layout
        self.geometry = geometry
        self.T = T
        self.t = 0
        self._calls = 0
        self._handle = module.register_forward_hook(self._route)

    def new_pass(self) -> None:
        self._calls = 0

    def remove(self) -> None:
        self._handle.remove()

    def _route(self, module: nn.Module, args: tuple, output: Any) -> Any:
        if isinstance(output, torch.Tensor):
            return self._routed(output)
        index = next(i for i, value in enumerate(output) if isinstance(value, torch.Tensor))  # snnTorch: (spk, mem)
        routed = self._routed(output[index])
        return None if routed is None else type(output)((*output[:index], routed, *output[index + 1:]))

    def _routed(self, spikes: torch.Tensor) -> torch.Tensor | None:
        layout, T = self.layout, self.T
        if layout in (Layout.PER_CALL, Layout.PER_FORWARD):
            self._calls += 1
            return self._viewed(spikes) if self._calls - 1 == self.t else None
        steps = {Layout.TIME_FIRST: lambda x: x, Layout.BATCH_FIRST: lambda x: x.transpose(0, 1),
                 Layout.FOLDED: lambda x: x.unflatten(0, (T, -1)),
                 Layout.FOLDED_BATCH_MAJOR: lambda x: x.unflatten(0, (-1, T)).transpose(0, 1)}[layout](spikes)
        parts = list(steps.unbind(0))
        parts[self.t] = self._viewed(parts[self.t])
        stacked = torch.stack(parts)
        return {Layout.TIME_FIRST: stacked, Layout.BATCH_FIRST: stacked.transpose(0, 1),
                Layout.FOLDED: stacked.flatten(0, 1),
                Layout.FOLDED_BATCH_MAJOR: stacked.transpose(0, 1).flatten(0, 1)}[layout]

    def _viewed(self, spikes: torch.Tensor) -> torch.Tensor:
        return from_features(self.view(as_features(spikes, self.geometry)), self.geometry)



def as_input(function: SpikingFunction, batch: torch.Tensor, T: int | None) -> torch.Tensor:
    """The batch as Captum gives it to `function`: `[B, T, ...]` for time-first models, else as it is."""
    return repeat_over_time(batch, T) if function.time_first_input else batch
