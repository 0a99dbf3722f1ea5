"""The networks `energy_models.py` costs: sequential SpikingJelly stacks its Lemaire estimator supports (seeded and
calibrated to fire 5-30 %), a spiking residual block, and snnTorch, plain-PyTorch and sinabs networks it refuses."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional, layer, neuron
from torch import nn

import _spikingjelly_zoo as zoo
import spikescope
from spikescope.models.layers import over_time

T = 4
SEED = 0


# --- 1. networks SpikingJelly's estimator supports -------------------------------------------------------------
class Stack(nn.Module):
    """A sequential SpikingJelly stack: synaptic layers (Conv2d or Linear), each followed by an IF or LIF neuron, then
    a linear readout. Flattening before a Linear happens in `forward` (the estimator refuses a Flatten module).
    Takes images `[B, C, H, W]`: multi-step repeats them T times, single-step runs the stack T times; the readout's
    mean over time comes out."""

    def __init__(self, step_mode: str, synapses: list[nn.Module], neurons: list[type], readout: nn.Linear) -> None:
        super().__init__()
        self.T, self.step_mode = T, step_mode
        self.synapses = nn.ModuleList(synapses)
        self.neurons = nn.ModuleList(kind() for kind in neurons)
        self.readout = readout
        functional.set_step_mode(self, step_mode)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.step_mode == "m":
            return self.readout(self.features(images.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)).flatten(2)).mean(0)
        return sum(self.readout(self.features(images).flatten(1)) for _ in range(self.T)) / self.T

    def features(self, x: torch.Tensor) -> torch.Tensor:
        for synapse, fire in zip(self.synapses, self.neurons):
            if isinstance(synapse, nn.Linear):
                x = x.flatten(1 if self.step_mode == "s" else 2)
            x = fire(synapse(x))
        return x


def conv_stack(step_mode: str) -> Stack:
    """3x3 convolution (padded, bias) and LIF, strided 3x3 convolution and IF, linear readout."""
    return Stack(step_mode, [layer.Conv2d(1, 8, 3, padding=1), layer.Conv2d(8, 16, 3, stride=2, padding=1)],
                 [neuron.LIFNode, neuron.IFNode], layer.Linear(16 * 14 * 14, 10))


def unbiased_stack(step_mode: str) -> Stack:
    """No bias anywhere, stride 1: 5x5 convolution (unpadded) and IF, padded 3x3 convolution and LIF, readout."""
    return Stack(step_mode, [layer.Conv2d(1, 6, 5, bias=False), layer.Conv2d(6, 12, 3, padding=1, bias=False)],
                 [neuron.IFNode, neuron.LIFNode], layer.Linear(12 * 24 * 24, 10, bias=False))


def mlp(step_mode: str) -> Stack:
    """Linear layers only: 784 -> 128 (LIF) -> 64 (IF) -> 10."""
    return Stack(step_mode, [layer.Linear(784, 128), layer.Linear(128, 64)], [neuron.LIFNode, neuron.IFNode],
                 layer.Linear(64, 10))


SUPPORTED_NETWORKS: dict[str, Callable[[], Stack]] = {
    "conv, single-step, bias, stride 2": lambda: conv_stack("s"),
    "conv, multi-step, bias, stride 2": lambda: conv_stack("m"),
    "conv, multi-step, no bias, stride 1": lambda: unbiased_stack("m"),
    "MLP, single-step": lambda: mlp("s"),
    "MLP, multi-step": lambda: mlp("m"),
}


class SpikingResidual(nn.Module):
    """SpikingJelly's spiking ResNet block (the identity's spikes added to the second convolution's output before its
    neuron), multi-step, then a linear readout; with `norm`, BatchNorm after each convolution as in the ResNet. The
    sum happens in `forward`, where the estimator does not look."""

    def __init__(self, norm: bool = False) -> None:
        super().__init__()
        self.T = T
        self.conv1, self.if1 = layer.Conv2d(1, 8, 3, padding=1), neuron.IFNode()
        self.conv2, self.if2 = layer.Conv2d(8, 8, 3, padding=1), neuron.IFNode()
        self.norms = nn.ModuleList(layer.BatchNorm2d(8) for _ in range(2)) if norm else None
        self.readout = layer.Linear(8 * 28 * 28, 10)
        functional.set_step_mode(self, "m")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        spikes = self.if1(self.normed(0, self.conv1(images.unsqueeze(0).repeat(self.T, 1, 1, 1, 1))))
        return self.readout(self.if2(self.normed(1, self.conv2(spikes)) + spikes).flatten(2)).mean(0)

    def normed(self, i: int, x: torch.Tensor) -> torch.Tensor:
        return x if self.norms is None else self.norms[i](x)


def build(name: str, images: torch.Tensor) -> Stack:
    """One of `SUPPORTED_NETWORKS`, seeded, in eval mode, calibrated on `images`."""
    torch.manual_seed(SEED)
    net = SUPPORTED_NETWORKS[name]().eval()
    calibrate(net, images, zip(net.synapses, (f"neurons.{i}" for i in range(len(net.neurons)))))
    return net


def spiking_residual(images: torch.Tensor, norm: bool = False) -> SpikingResidual:
    """`SpikingResidual`, seeded, in eval mode, calibrated on `images`."""
    torch.manual_seed(SEED)
    net = SpikingResidual(norm).eval()
    calibrate(net, images, [(net.conv1, "if1"), (net.conv2, "if2")])
    return net


def calibrate(net: nn.Module, images: torch.Tensor, pairs, low: float = 0.05, high: float = 0.30) -> dict[str, float]:
    """For each (synaptic layer, name of the SpikingJelly neuron after it) in `pairs`, in order, scale the layer's
    weights until the neuron fires inside [low, high] on `images` (aiming inside the middle four fifths; bisection
    of the scale on a log axis); returns every neuron's rate reached."""
    margin = (high - low) / 10
    for synapse, name in pairs:
        base, small, large, scale = synapse.weight.detach().clone(), 1 / 256, 256.0, 1.0
        for _ in range(40):
            with torch.no_grad():
                synapse.weight.copy_(base * scale)
            rate = zoo.firing_rates(net, images, stop_after=name)[name]
            if low + margin <= rate <= high - margin:
                break
            small, large = (scale, large) if rate < low + margin else (small, scale)
            scale = (small * large) ** 0.5
    return zoo.firing_rates(net, images)



# --- 2. networks SpikingJelly's estimator refuses ----------------------------------------------------------------
class SnnTorchNet(nn.Module):
    """The snnTorch tutorial pattern: convolution, `Leaky`, average pooling and flattening in `forward`, linear,
    `Leaky`; the model's own loop over T steps; the mean output spikes come out."""

    def __init__(self) -> None:
        import snntorch

        super().__init__()
        self.T = T
        self.conv, self.lif1 = nn.Conv2d(1, 8, 3, padding=1), snntorch.Leaky(beta=0.9)
        self.fc, self.lif2 = nn.Linear(8 * 14 * 14, 10), snntorch.Leaky(beta=0.9)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        mem1, mem2, total = self.lif1.init_leaky(), self.lif2.init_leaky(), 0.0
        for _ in range(self.T):
            spikes1, mem1 = self.lif1(self.conv(images) * 2, mem1)
            spikes2, mem2 = self.lif2(self.fc(F.avg_pool2d(spikes1, 2).flatten(1)) * 4, mem2)
            total = total + spikes2
        return total / self.T


class PlainLIFNet(nn.Module):
    """Plain PyTorch with spikescope's own `LIF` (`[T, B, ...]` sequences): convolution, LIF, average pooling,
    convolution, LIF, Flatten, linear readout."""

    def __init__(self) -> None:
        super().__init__()
        self.T = T
        self.conv1, self.lif1 = nn.Conv2d(1, 8, 3, padding=1), spikescope.neurons.LIF()
        self.pool = nn.AvgPool2d(2)
        self.conv2, self.lif2 = nn.Conv2d(8, 16, 3, padding=1), spikescope.neurons.LIF()
        self.flatten, self.readout = nn.Flatten(2), nn.Linear(16 * 14 * 14, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.lif1(over_time(self.conv1, images.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)))
        x = self.lif2(over_time(self.conv2, over_time(self.pool, x)) * 2)
        return self.readout(self.flatten(x)).mean(0)


def sinabs_net() -> nn.Module:
    """sinabs' usual pattern, fed `[B*T, ...]` folded batch-major: convolution, IAF, sum pooling, convolution, IAF,
    Flatten, linear."""
    import sinabs.layers as sl

    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), sl.IAFSqueeze(num_timesteps=T), sl.SumPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), sl.IAFSqueeze(num_timesteps=T), nn.Flatten(),
                         nn.Linear(16 * 14 * 14, 10)).eval()

