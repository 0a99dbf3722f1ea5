"""Which modules of a network are spiking layers (design.md §3), and how each was recognised.

In order: spikescope's `LIF`; SpikingJelly neurons (`activation_based` `BaseNode`, either step
mode); snnTorch neurons (`SpikingNeuron`); then any other module whose output is binary on the
first batch. Modules that only pass spikes along (pooling, flatten, dropout, padding, identity,
containers) are never spiking layers, nor is anything inside a neuron or inside FSTA, nor a
module that contains a spiking layer.
"""
from __future__ import annotations

import sys

import torch
from torch import nn

from .fsta import FSTA
from .neurons import LIF
from .timelayout import Layout

PASS_THROUGH = (
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.Flatten, nn.Unflatten, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
    nn.Identity, nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d, nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d,
    nn.ReflectionPad1d, nn.ReflectionPad2d, nn.ReflectionPad3d, nn.ReplicationPad1d, nn.ReplicationPad2d,
    nn.ReplicationPad3d, nn.Upsample, nn.PixelShuffle, nn.PixelUnshuffle, nn.ChannelShuffle,
    nn.Sequential, nn.ModuleList, nn.ModuleDict,
)

FOUND_BY_CLASS = {"spikescope": "spikescope LIF", "spikingjelly": "SpikingJelly neuron", "snntorch": "snnTorch neuron"}
FOUND_BY_PROBE = "binary output on the first batch"
FOUND_BY_NAME = "named by the user"

ROLE_SPIKING = "spiking"  # a neuron: its output goes to the spike metrics
ROLE_SYNAPTIC = "synaptic"  # a conv/linear/FSTA: its input goes to the energy metric
ROLE_PASS_THROUGH = "pass-through"  # observed on the first batch only, to recognise containers of spikes


def _spikingjelly_base() -> type | None:
    module = sys.modules.get("spikingjelly.activation_based.neuron")
    return getattr(module, "BaseNode", None) if module else None


def _snntorch_base() -> type | None:
    module = sys.modules.get("snntorch")
    return getattr(module, "SpikingNeuron", None) if module else None


def neuron_framework(module: nn.Module) -> str | None:
    """'spikescope', 'spikingjelly' or 'snntorch' if `module` is a neuron class of that framework."""
    if isinstance(module, LIF):
        return "spikescope"
    for framework, base in (("spikingjelly", _spikingjelly_base()), ("snntorch", _snntorch_base())):
        if base is not None and isinstance(module, base):
            return framework
    return None


def declared_layouts(module: nn.Module) -> tuple[Layout, ...]:
    """Layouts a module's framework declares: multi-step modules are time-first, single-step ones step."""
    if isinstance(module, (LIF, FSTA)):
        return (Layout.TIME_FIRST,)
    step_mode = getattr(module, "step_mode", None)
    if step_mode == "m":
        return (Layout.TIME_FIRST,)
    if step_mode == "s" or neuron_framework(module) == "snntorch":
        return (Layout.PER_CALL, Layout.PER_FORWARD)
    return ()


def sample_rank(module: nn.Module) -> int | None:
    """Dimensions of one sample's input to a convolution (`C` plus the spatial axes); None if unknown."""
    if isinstance(module, nn.modules.conv._ConvNd):
        return 1 + len(module.kernel_size)
    return None


def first_tensor(value) -> torch.Tensor | None:
    """A module's output or input as one tensor: the tensor itself or the first tensor of a tuple/list."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        return next((v for v in value if isinstance(v, torch.Tensor)), None)
    return None


def neurons_by_class(model: nn.Module) -> dict[str, str]:
    """`{name: how found}` for every neuron of a known framework (outermost only, the model itself excluded)."""
    found: dict[str, str] = {}
    for name, module in model.named_modules():
        framework = neuron_framework(module)
        if name and framework and not _inside(name, found):
            found[name] = FOUND_BY_CLASS[framework]
    return found


def probe_candidates(model: nn.Module, known: dict[str, str]) -> tuple[list[str], list[str]]:
    """Modules the binary-output probe looks at: `(candidates, pass_through)`.

    Pass-through modules are never spiking layers, but a binary output from one of them marks
    every module around it as a container of spikes rather than a neuron.
    """
    excluded_roots = set(known) | {name for name, m in model.named_modules() if isinstance(m, FSTA)}
    candidates, pass_through = [], []
    for name, module in model.named_modules():
        if not name or name in known or isinstance(module, FSTA) or _inside(name, excluded_roots):
            continue
        (pass_through if isinstance(module, PASS_THROUGH) else candidates).append(name)
    return candidates, pass_through


def innermost(names: set[str], inner: set[str]) -> set[str]:
    """Keep the probed names that contain no other module with binary output (`names | inner`):
    a container of spikes is not counted again."""
    everything = names | inner
    return {n for n in names if not any(other.startswith(n + ".") for other in everything)}


def _inside(name: str, roots) -> bool:
    return any(name.startswith(root + ".") for root in roots)


def reset_neuron_states(model: nn.Module) -> None:
    """Clear the membrane state that SpikingJelly and snnTorch neurons keep between calls.

    Called before every new batch so that one batch's potentials never leak into the next
    (spikescope's own LIF keeps no state between calls).
    """
    sj_base = sys.modules.get("spikingjelly.activation_based.base")
    memory_module = getattr(sj_base, "MemoryModule", None) if sj_base else None
    for module in model.modules():
        if memory_module is not None and isinstance(module, memory_module):
            module.reset()
        elif neuron_framework(module) == "snntorch" and getattr(module, "init_hidden", False):
            module.reset_mem()
