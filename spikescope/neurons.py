"""The LIF neuron of the FSTA-SNN reference code (docs/metrics.md, "Neuron"), multi-step and time-first.

`u[t] = decay * u[t-1] + x[t]`; a spike when `u > threshold` (0.5 by default); hard reset to 0.
The spike is a Heaviside step forward and a tanh-shaped (Dspike) surrogate backward on
`0 < u < 2 * threshold`. The surrogate is used in `train()` and `eval()` alike, so gradients
(attribution) work on a model in evaluation mode.

The reference code writes the same neuron as `v_threshold = 1.0` and fires when
`u / v_threshold - 0.5 > 0`, so its `v_threshold` is twice the membrane potential at which the
neuron fires (in SpikingJelly, `v_threshold` *is* that potential). spikescope names the firing
threshold itself: `LIF(threshold=0.5)` is the reference code's `v_threshold = 1.0`.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class DspikeSurrogate(torch.autograd.Function):
    """Heaviside(x - 0.5) forward; `b sech^2(b (x - 0.5)) / (2 tanh(b / 2))` on `0 < x < 1` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, temperature: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.temperature = temperature
        return (x > 0.5).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        b = ctx.temperature
        slope = b * (1.0 - torch.tanh(b * (x - 0.5)) ** 2) / (2.0 * math.tanh(b / 2.0))
        inside = (x > 0) & (x < 1)
        return grad_output * slope * inside, None


class LIF(nn.Module):
    """Leaky integrate-and-fire neuron over a whole sequence: `[T, B, ...]` in, spikes `[T, B, ...]` out.

    `threshold` is the membrane potential above which the neuron fires. Membrane state lives only
    inside one call (it starts at 0 for every sequence), so the module needs no reset between batches.
    """

    def __init__(self, decay: float = 0.25, threshold: float = 0.5, surrogate_temperature: float = 1.0) -> None:
        super().__init__()
        self.decay = decay
        self.threshold = threshold
        self.surrogate_temperature = surrogate_temperature

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        membrane = torch.zeros_like(current[0])
        scale = 2.0 * self.threshold  # the surrogate sees u / (2 threshold): a step at 0.5, a window on (0, 1)
        spikes = []
        for x_t in current:
            membrane = self.decay * membrane + x_t
            spike = DspikeSurrogate.apply(membrane / scale, self.surrogate_temperature)
            membrane = membrane * (1.0 - spike)
            spikes.append(spike)
        return torch.stack(spikes)

    def __setstate__(self, state: dict) -> None:
        if "v_threshold" in state:  # a whole model pickled by spikescope 0.1: it fired at u > v_threshold / 2
            state["threshold"] = state.pop("v_threshold") / 2
        super().__setstate__(state)

    def extra_repr(self) -> str:
        return f"decay={self.decay}, threshold={self.threshold}, surrogate_temperature={self.surrogate_temperature}"
