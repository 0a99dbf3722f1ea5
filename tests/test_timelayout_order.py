"""Timesteps come out in the right order for every time layout, in plain PyTorch (no SNN framework needed).

The neuron is a real single-step integrate-and-fire neuron with a soft reset, fed a constant current per
neuron. Its spikes differ by timestep in a known, asymmetric way, so a recorder that reverses, rotates or
interleaves timesteps (or mixes up samples with timesteps) reports different per-timestep firing rates.

Per-neuron spike trains over T=3 steps (threshold 1, currents in eighths, so all arithmetic is exact):
    current 1.0 -> 1 1 1,  0.75 -> 0 1 1,  0.5 -> 0 1 0,  0.375 -> 0 0 1,  0.25 -> 0 0 0
"""
import pytest
import torch
from torch import nn

from spikescope.metrics.firing import FiringRate
from spikescope.record import SpikeRecorder
from spikescope.timelayout import Layout

T = 3
# Two batches of B=2 samples x N=4 neurons (B != T, so no layout is ambiguous).
CURRENTS = [
    torch.tensor([[1.0, 0.75, 0.375, 0.25],     # spikes per step: 1, 2, 3
                  [0.5, 0.5, 0.5, 0.5]]),       # 0, 4, 0
    torch.tensor([[0.25, 0.25, 0.25, 0.25],     # 0, 0, 0
                  [0.375, 0.375, 1.0, 1.0]]),   # 2, 2, 4
]
# spikes at t / (4 samples x 4 neurons)
EXPECTED_RATES = [3 / 16, 8 / 16, 7 / 16]
EXPECTED_FIRST_BATCH = [1 / 8, 6 / 8, 3 / 8]


def integrate_and_fire(currents: torch.Tensor) -> torch.Tensor:
    """`[T, B, N]` currents -> `[T, B, N]` spikes, without spikescope (the reference for the folded models)."""
    v, spikes = torch.zeros_like(currents[0]), []
    for current in currents:
        v = v + current
        spike = (v >= 1.0).float()
        v = v - spike
        spikes.append(spike)
    return torch.stack(spikes)


def test_the_reference_neuron_fires_as_the_docstring_says():
    currents = torch.tensor([1.0, 0.75, 0.5, 0.375, 0.25]).expand(T, 1, 5)
    assert integrate_and_fire(currents)[:, 0].T.tolist() == [[1, 1, 1], [0, 1, 1], [0, 1, 0], [0, 0, 1], [0, 0, 0]]


class StepIF(nn.Module):
    """A single-step integrate-and-fire neuron: one timestep per call, membrane kept until `reset()`."""

    def __init__(self) -> None:
        super().__init__()
        self.v = None

    def reset(self) -> None:
        self.v = None

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        self.v = current if self.v is None else self.v + current
        spike = (self.v >= 1.0).float()
        self.v = self.v - spike
        return spike


class LoopInside(nn.Module):
    """The model loops over time itself: the neuron runs T times per forward pass (snnTorch style)."""

    def __init__(self) -> None:
        super().__init__()
        self.T = T
        self.neuron = StepIF()

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        self.neuron.reset()
        return torch.stack([self.neuron(current) for _ in range(self.T)]).sum(0)


class OneStep(nn.Module):
    """One forward pass is one timestep; the user loops over time (SpikingJelly single-step style)."""

    def __init__(self) -> None:
        super().__init__()
        self.neuron = StepIF()

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        return self.neuron(current)


class FoldedIF(nn.Module):
    """A neuron that sees time folded into the batch, `[B*T, N]` in and out, in the given fold order."""

    def __init__(self, order: str) -> None:
        super().__init__()
        self.order = order

    def forward(self, folded: torch.Tensor) -> torch.Tensor:
        if self.order == "batch-major":  # row b*T + t (sinabs' squeeze layers)
            currents = folded.unflatten(0, (-1, T)).transpose(0, 1)
            return integrate_and_fire(currents).transpose(0, 1).flatten(0, 1)
        currents = folded.unflatten(0, (T, -1))  # time-major: row t*B + b (x.flatten(0, 1) of [T, B, ...])
        return integrate_and_fire(currents).flatten(0, 1)


class FoldedModel(nn.Module):
    def __init__(self, order: str) -> None:
        super().__init__()
        self.order = order
        self.neuron = FoldedIF(order)

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        # the same current at every timestep, folded in the model's order
        folded = current.repeat_interleave(T, dim=0) if self.order == "batch-major" else current.repeat(T, 1)
        return self.neuron(folded)


def per_step_rates(recorder: SpikeRecorder) -> list[float]:
    steps = recorder.compute()["FiringRate"].timesteps
    assert steps["t"].tolist() == list(range(T))
    return steps["firing_rate"].tolist()


def test_single_step_neuron_called_T_times_inside_the_model_keeps_the_timestep_order():
    model = LoopInside()
    with torch.no_grad(), SpikeRecorder(model, metrics=[FiringRate()], T=T) as recorder:
        for current in CURRENTS:
            model(current)
    assert [(layer.name, layer.layout) for layer in recorder.layers] == [("neuron", Layout.PER_CALL)]
    assert per_step_rates(recorder) == EXPECTED_RATES


def test_single_step_model_called_T_times_per_batch_keeps_the_timestep_order():
    model = OneStep()
    with torch.no_grad(), SpikeRecorder(model, metrics=[FiringRate()], T=T) as recorder:
        for current in CURRENTS:
            model.neuron.reset()
            for _ in range(T):
                model(current)
    assert [(layer.name, layer.layout) for layer in recorder.layers] == [("neuron", Layout.PER_FORWARD)]
    assert per_step_rates(recorder) == EXPECTED_RATES
    assert recorder.compute()["FiringRate"].layers.loc[0, "samples"] == 4


def test_a_single_batch_of_single_step_calls_gives_the_first_batch_rates():
    model = OneStep()
    with torch.no_grad(), SpikeRecorder(model, metrics=[FiringRate()], T=T) as recorder:
        for _ in range(T):
            model(CURRENTS[0])
    assert per_step_rates(recorder) == EXPECTED_FIRST_BATCH


@pytest.mark.parametrize("order, layout", [("batch-major", Layout.FOLDED_BATCH_MAJOR), ("time-major", Layout.FOLDED)])
def test_time_folded_into_the_batch_is_unfolded_in_the_fold_order_given(order, layout):
    model = FoldedModel(order)
    with torch.no_grad(), SpikeRecorder(model, metrics=[FiringRate()], T=T, fold=order) as recorder:
        for current in CURRENTS:
            model(current)
    assert [(layer.name, layer.layout) for layer in recorder.layers] == [("neuron", layout)]
    assert per_step_rates(recorder) == EXPECTED_RATES


@pytest.mark.parametrize("order", ["batch-major", "time-major"])
def test_unfolded_spikes_are_the_neurons_spikes_of_each_sample_at_each_timestep(order):
    model = FoldedModel(order)
    with torch.no_grad(), SpikeRecorder(model, metrics=[FiringRate()], T=T, fold=order, capture=2) as recorder:
        model(CURRENTS[0])
    expected = integrate_and_fire(CURRENTS[0].expand(T, 2, 4))  # [T, B, N]
    assert torch.equal(torch.from_numpy(recorder.capture.spikes("neuron")).float(), expected)
    assert expected.sum(dim=(1, 2)).tolist() == [1, 6, 3]  # the known, asymmetric spike counts per timestep
