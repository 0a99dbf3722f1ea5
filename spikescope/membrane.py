"""Reading membrane potentials out of neurons of every supported framework (docs/metrics.md, "Membrane potential").

For every timestep spikescope needs the potential the neuron compared with its threshold. Where the
neuron did not fire, that is the potential every framework keeps after the step; where it fired,
frameworks keep the reset value instead, so fired neurons are counted as fired, not binned.

- spikescope `LIF`: recomputed from the layer's input current and its spikes, in the neuron's own
  operations and order (`u[t] = decay * u[t-1] + x[t]`, zero after a spike): the same floats.
- SpikingJelly: `v_seq` (multi-step, with `store_v_seq` switched on while recording) or `v` after
  each single-step call.
- snnTorch: the neuron's `mem` after each call (every snnTorch neuron keeps it, also the ones that
  return `syn` too).
- sinabs: `recordings["v_mem"]` (with `record_states` switched on while recording).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
from torch import nn

from .detect import first_tensor, neuron_framework

PotentialReader = Callable[[nn.Module, tuple, Any], torch.Tensor]


def threshold_of(module: nn.Module) -> float | torch.Tensor | None:
    """The firing threshold of a neuron of a known framework: a number, or a tensor of per-neuron thresholds
    (None if it has none)."""
    framework = neuron_framework(module)
    name = {"spikescope": "threshold", "spikingjelly": "v_threshold", "snntorch": "threshold",
            "sinabs": "spike_threshold"}.get(framework or "")
    value = getattr(module, name, None) if name else None
    if isinstance(value, torch.Tensor):
        return value.detach() if value.numel() > 1 else (float(value) if value.numel() else None)
    return float(value) if isinstance(value, (int, float)) else None


def potential_problem(potential: torch.Tensor, spikes: torch.Tensor, threshold: float | torch.Tensor) -> str | None:
    """Why a potential read from a neuron cannot be binned against its spikes (None if it can): shapes that
    differ, or a threshold that varies per sample (adaptive thresholds change at every step)."""
    if potential.shape != spikes.shape:
        return f"its potential has shape {tuple(potential.shape)}, its spikes {tuple(spikes.shape)}"
    if isinstance(threshold, torch.Tensor) and not _per_neuron(threshold, spikes):
        return f"its threshold of shape {tuple(threshold.shape)} varies per sample (an adaptive threshold)"
    return None


def _per_neuron(threshold: torch.Tensor, spikes: torch.Tensor) -> bool:
    """True if `threshold` holds one value per neuron (or per channel): it broadcasts over the trailing
    dimensions of the spikes without a batch dimension of its own."""
    if threshold.dim() >= spikes.dim():
        return False
    trailing = spikes.shape[spikes.dim() - threshold.dim():]
    try:
        return torch.broadcast_shapes(threshold.shape, trailing) == trailing
    except RuntimeError:
        return False


def _lif_potential(module: nn.Module, args: tuple, output: Any) -> torch.Tensor:
    current, spikes = first_tensor(args), first_tensor(output)
    membrane = torch.zeros_like(current[0])
    potentials = []
    for x_t, s_t in zip(current, spikes):
        membrane = module.decay * membrane + x_t
        potentials.append(membrane)
        membrane = membrane * (1.0 - s_t)
    return torch.stack(potentials)


def _spikingjelly_potential(module: nn.Module, args: tuple, output: Any) -> torch.Tensor:
    if getattr(module, "step_mode", "s") == "m":
        return module.v_seq
    return module.v


def _snntorch_potential(module: nn.Module, args: tuple, output: Any) -> torch.Tensor:
    return module.mem


def _sinabs_potential(module: nn.Module, args: tuple, output: Any) -> torch.Tensor:
    recorded = module.recordings["v_mem"]  # [B, T, ...]
    spikes = first_tensor(output)
    return recorded.reshape(spikes.shape)  # a squeeze layer's output is the batch-major fold of [B, T, ...]


READERS: dict[str, PotentialReader] = {"spikescope": _lif_potential, "spikingjelly": _spikingjelly_potential,
                                       "snntorch": _snntorch_potential, "sinabs": _sinabs_potential}


def potential_reader(module: nn.Module) -> PotentialReader | None:
    """How to read `module`'s membrane potential from a forward hook; None for neurons of no known framework."""
    return READERS.get(neuron_framework(module) or "")


@contextmanager
def potentials_exposed(model: nn.Module) -> Iterator[None]:
    """Switch on the per-step state records that SpikingJelly (`store_v_seq`) and sinabs (`record_states`) keep
    only when asked, for as long as the block runs; restored afterwards."""
    switched: list[tuple[nn.Module, str, Any]] = []
    for module in model.modules():
        framework = neuron_framework(module)
        name = {"spikingjelly": "store_v_seq", "sinabs": "record_states"}.get(framework or "")
        if name and hasattr(module, name):
            switched.append((module, name, getattr(module, name)))
            setattr(module, name, True)
    try:
        yield
    finally:
        for module, name, value in switched:
            setattr(module, name, value)
