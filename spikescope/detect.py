"""Which modules of a network are spiking layers (docs/metrics.md, "Spiking layers"), and how each was recognised.

In order: spikescope's `LIF`; SpikingJelly neurons (`activation_based` `BaseNode`, either step
mode); snnTorch neurons (`SpikingNeuron`); sinabs neurons (a `StatefulLayer` that spikes); then
any other module whose output is binary on the first batch. Modules that only pass spikes along
(pooling, flatten, dropout, padding, identity, delays, containers, in torch and in those
frameworks) are never spiking layers, nor is anything inside a neuron or inside FSTA, nor a
module that contains a spiking layer.
"""
from __future__ import annotations

import sys
from typing import Sequence

import torch
from torch import nn

from .fsta import FSTA
from .metrics.base import spike_counts, zero_one
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
    nn.LPPool1d, nn.LPPool2d, nn.LPPool3d,  # sinabs' SumPool2d is an LPPool2d with norm 1
    nn.Sequential, nn.ModuleList, nn.ModuleDict,
)
# Pass-through modules of other frameworks, by module and class name (looked up only if already imported).
FRAMEWORK_PASS_THROUGH = {
    "spikingjelly.activation_based.layer": ("Dropout", "Dropout2d", "Delay"),  # memory modules that mask or delay
    "sinabs.layers": ("UnflattenTime", "Merge", "ChannelShift", "Cropping2dLayer", "SpikingMaxPooling2dLayer"),
}

FOUND_BY_CLASS = {"spikescope": "spikescope LIF", "spikingjelly": "SpikingJelly neuron", "snntorch": "snnTorch neuron",
                  "sinabs": "sinabs neuron"}
OUTPUT_SPIKES = "spikes"  # values in {0, 1}
OUTPUT_COUNTS = "spike counts"  # non-negative whole numbers: several spikes per neuron and timestep (sinabs)
OUTPUT_ANALOG = "analog"  # real values: a layer named by the user that is not a neuron
FOUND_BY_PROBE = "binary output on the first batch"
FOUND_BY_NAME = "named by the user"

ROLE_SPIKING = "spiking"  # a neuron: its output goes to the spike metrics
ROLE_PASS_THROUGH = "pass-through"  # observed on the first batch only, to recognise containers of spikes


def _spikingjelly_base() -> type | None:
    module = sys.modules.get("spikingjelly.activation_based.neuron")
    return getattr(module, "BaseNode", None) if module else None


def _snntorch_base() -> type | None:
    module = sys.modules.get("snntorch")
    return getattr(module, "SpikingNeuron", None) if module else None


def _sinabs(name: str) -> type | None:
    module = sys.modules.get("sinabs.layers")
    return getattr(module, name, None) if module else None


def _is_sinabs_neuron(module: nn.Module) -> bool:
    base = _sinabs("StatefulLayer")
    return base is not None and isinstance(module, base) and bool(getattr(module, "does_spike", False))


def neuron_framework(module: nn.Module) -> str | None:
    """'spikescope', 'spikingjelly', 'snntorch' or 'sinabs' if `module` is a neuron class of that framework."""
    if isinstance(module, LIF):
        return "spikescope"
    for framework, base in (("spikingjelly", _spikingjelly_base()), ("snntorch", _snntorch_base())):
        if base is not None and isinstance(module, base):
            return framework
    return "sinabs" if _is_sinabs_neuron(module) else None


def _sinabs_squeezed(module: nn.Module) -> bool:
    squeeze = _sinabs("SqueezeMixin") or getattr(sys.modules.get("sinabs.layers.reshape"), "SqueezeMixin", None)
    return squeeze is not None and isinstance(module, squeeze)


def declared_layouts(module: nn.Module) -> tuple[Layout, ...]:
    """Layouts a module's framework declares: multi-step modules are time-first (sinabs: batch-first, or
    folded batch-major in its squeeze layers), single-step ones step."""
    if isinstance(module, (LIF, FSTA)):
        return (Layout.TIME_FIRST,)
    if _is_sinabs_neuron(module):
        return (Layout.FOLDED_BATCH_MAJOR,) if _sinabs_squeezed(module) else (Layout.BATCH_FIRST,)
    step_mode = getattr(module, "step_mode", None)
    if step_mode == "m":
        return (Layout.TIME_FIRST,)
    if step_mode == "s" or neuron_framework(module) == "snntorch":
        return (Layout.PER_CALL, Layout.PER_FORWARD)
    return ()


def framework_fold(model: nn.Module) -> Layout | None:
    """How the model's framework folds time into the batch, if its neurons say: time-major for time-first
    neurons (spikescope, SpikingJelly multi-step), batch-major for sinabs; None if unknown or mixed."""
    folds = set()
    for module in model.modules():
        layouts = declared_layouts(module) if neuron_framework(module) else ()
        if layouts == (Layout.TIME_FIRST,):
            folds.add(Layout.FOLDED)
        elif layouts in ((Layout.BATCH_FIRST,), (Layout.FOLDED_BATCH_MAJOR,)):
            folds.add(Layout.FOLDED_BATCH_MAJOR)
    return folds.pop() if len(folds) == 1 else None


def declared_geometry(module: nn.Module, shape: Sequence[int]) -> tuple[int, int] | None:
    """`(T, B)` read off one whole-sequence output of a module whose framework fixes the layout, else None.

    sinabs' squeeze layers know their `num_timesteps` or `batch_size` (the other is -1).
    """
    layouts = declared_layouts(module)
    if layouts == (Layout.TIME_FIRST,) and len(shape) >= 2:
        return int(shape[0]), int(shape[1])
    if layouts == (Layout.BATCH_FIRST,) and len(shape) >= 2:
        return int(shape[1]), int(shape[0])
    if layouts == (Layout.FOLDED_BATCH_MAJOR,):
        steps, batch = int(getattr(module, "num_timesteps", -1)), int(getattr(module, "batch_size", -1))
        if steps > 0 and shape[0] % steps == 0:
            return steps, int(shape[0]) // steps
        if batch > 0 and shape[0] % batch == 0:
            return int(shape[0]) // batch, batch
    return None


def declared_output(module: nn.Module) -> str | None:
    """What a known neuron emits: `OUTPUT_SPIKES`, or `OUTPUT_COUNTS` for sinabs' multi-spike functions."""
    framework = neuron_framework(module)
    if framework != "sinabs":
        return OUTPUT_SPIKES if framework else None
    spike_fn = getattr(module, "spike_fn", None)
    activation = sys.modules.get("sinabs.activation")
    multi, capped = getattr(activation, "MultiSpike", None), getattr(activation, "MaxSpike", None)
    if spike_fn is multi or (capped is not None and isinstance(spike_fn, capped)
                             and getattr(spike_fn, "max_num_spikes_per_bin", 2) > 1):
        return OUTPUT_COUNTS
    return OUTPUT_SPIKES


def sums_spikes(module: nn.Module) -> bool:
    """True for sum pooling (an `LPPool` of norm 1, as sinabs' `SumPool2d`): it turns spikes into spike counts."""
    return isinstance(module, (nn.LPPool1d, nn.LPPool2d, nn.LPPool3d)) and float(module.norm_type) == 1.0


def output_kind(x: torch.Tensor) -> str:
    """`OUTPUT_SPIKES` for values in {0, 1}, `OUTPUT_COUNTS` for other non-negative whole numbers, else analog."""
    if zero_one(x):
        return OUTPUT_SPIKES
    return OUTPUT_COUNTS if spike_counts(x) else OUTPUT_ANALOG


def _framework_pass_through() -> tuple[type, ...]:
    found = []
    for module_name, names in FRAMEWORK_PASS_THROUGH.items():
        module = sys.modules.get(module_name)
        found += [getattr(module, name) for name in names if module is not None and hasattr(module, name)]
    return tuple(found)


def pass_through(module: nn.Module) -> bool:
    """A module that only moves, pools or masks what it is fed (`PASS_THROUGH`, and other frameworks' such modules)."""
    return isinstance(module, PASS_THROUGH + _framework_pass_through())


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
    candidates, passing = [], []
    for name, module in model.named_modules():
        if not name or name in known or isinstance(module, FSTA) or _inside(name, excluded_roots):
            continue
        (passing if pass_through(module) else candidates).append(name)
    return candidates, passing


def innermost(names: set[str], inner: set[str]) -> set[str]:
    """Keep the probed names that contain no other module with binary output (`names | inner`):
    a container of spikes is not counted again."""
    everything = names | inner
    return {n for n in names if not any(other.startswith(n + ".") for other in everything)}


def _inside(name: str, roots) -> bool:
    return any(name.startswith(root + ".") for root in roots)


def reset_neuron_states(model: nn.Module) -> None:
    """Clear the state that SpikingJelly, snnTorch and sinabs modules keep between calls.

    Called before every new batch so that one batch's potentials never leak into the next
    (spikescope's own LIF keeps no state between calls). sinabs layers keep their state across
    calls, even when the batch size changes, until `reset_states()`.
    """
    sj_base = sys.modules.get("spikingjelly.activation_based.base")
    memory_module = getattr(sj_base, "MemoryModule", None) if sj_base else None
    stateful = _sinabs("StatefulLayer")
    for module in model.modules():
        if memory_module is not None and isinstance(module, memory_module):
            module.reset()
        elif stateful is not None and isinstance(module, stateful):
            module.reset_states()
        elif neuron_framework(module) == "snntorch" and getattr(module, "init_hidden", False):
            module.reset_mem()
