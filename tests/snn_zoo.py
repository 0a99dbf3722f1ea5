"""Small real spiking networks written the ways users write them, for recorder tests."""
import torch
from torch import nn


class ReferenceStyleLIF(nn.Module):
    """A plain `nn.Module` neuron like the FSTA-SNN reference code's: `[T, B, ...]` in, stacked spikes out."""

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        membrane, spikes = torch.zeros_like(current[0]), []
        for x in current:
            membrane = 0.25 * membrane + x
            spike = (membrane > 0.5).float()
            membrane = membrane * (1 - spike)
            spikes.append(spike)
        return torch.stack(spikes)


class Folded(nn.Sequential):
    """Runs per-sample modules on `[T, B, ...]` by folding time into the batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.flatten(0, 1)).unflatten(0, x.shape[:2])


class PlainSNN(nn.Module):
    """Two conv layers with reference-style neurons, max pooling in a custom wrapper, a linear readout."""

    def __init__(self, T: int = 3) -> None:
        super().__init__()
        self.T = T
        self.stage1 = nn.Sequential(Folded(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4)), ReferenceStyleLIF())
        self.pool = Folded(nn.MaxPool2d(2))
        self.stage2 = nn.Sequential(Folded(nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8)), ReferenceStyleLIF())
        self.head = nn.Linear(8 * 14 * 14, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.unsqueeze(0).repeat(self.T, 1, 1, 1, 1) * 2
        x = self.stage2(self.pool(self.stage1(x)))
        return self.head(x.flatten(2)).mean(0)


class FoldedHeaviside(nn.Module):
    """A neuron-less threshold applied to time folded into the batch: `[T*B, ...]` in and out."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x > 0.3).float()


class FoldedSNN(nn.Module):
    """Hides its number of timesteps (no `T` attribute), like many user models."""

    def __init__(self, steps: int = 2) -> None:
        super().__init__()
        self.steps = steps
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.fire = FoldedHeaviside()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = torch.cat([images * (t + 1) for t in range(self.steps)])  # [T*B, C, H, W], timestep t scaled by t + 1
        return self.fire(self.conv(x))


class SnnLikeLoop(nn.Module):
    """A threshold neuron called once per step inside the model's own loop; can fail at a chosen step."""

    def __init__(self, T: int = 3, fail_at_step: int | None = None) -> None:
        super().__init__()
        self.T = T
        self.fail_at_step = fail_at_step
        self.fc = nn.Linear(10, 6)
        self.fire = FoldedHeaviside()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spikes = []
        for step in range(self.T):
            if step == self.fail_at_step:
                raise RuntimeError(f"failed at step {step}")
            spikes.append(self.fire(self.fc(x)))
        return torch.stack(spikes)


def spikingjelly_classifier() -> nn.Module:
    """A SpikingJelly network in multi-step mode (`[T, B, 1, 28, 28]` in, `[T, B, 10]` out)."""
    from spikingjelly.activation_based import functional, layer, neuron

    net = nn.Sequential(
        layer.Conv2d(1, 6, 3, padding=1), layer.BatchNorm2d(6), neuron.LIFNode(tau=2.0, v_threshold=0.2),
        layer.MaxPool2d(2), layer.Flatten(), layer.Linear(6 * 14 * 14, 10),
    )
    functional.set_step_mode(net, "m")
    return net


def plain_snn() -> nn.Module:
    """`PlainSNN` as a factory for `--arch`."""
    return PlainSNN()


def linear_classifier() -> nn.Module:
    """Not a spiking network at all."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))


class MLPSNN(nn.Module):
    """Only fully connected spiking layers: `[T, B, N]` spikes, no 2D map anywhere."""

    def __init__(self, T: int = 2) -> None:
        super().__init__()
        from spikescope.neurons import LIF

        torch.manual_seed(0)
        self.T = T
        self.fc1, self.lif1 = nn.Linear(784, 64), LIF()
        self.fc2, self.lif2 = nn.Linear(64, 32), LIF()
        self.readout = nn.Linear(32, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.flatten(1).unsqueeze(0).expand(self.T, -1, -1) * 3
        x = self.lif2(self.fc2(self.lif1(self.fc1(x))))
        return self.readout(x).mean(0)


def mlp_snn() -> nn.Module:
    """`MLPSNN` as a factory for `--arch`."""
    return MLPSNN()


class QuietUntilWoken(nn.Module):
    """A custom threshold neuron that stays silent on its first call (a dead neuron on the probing batch)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return (current > 0.5).float() if self.calls > 1 else torch.zeros_like(current)


class QuietSNN(nn.Module):
    """A time-first network whose one custom neuron emits nothing on the first batch."""

    def __init__(self, T: int = 2) -> None:
        super().__init__()
        self.T = T
        self.conv = Folded(nn.Conv2d(1, 4, 3, padding=1))
        self.neuron = QuietUntilWoken()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.neuron(self.conv(images.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)))
