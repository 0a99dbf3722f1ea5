"""Layers are found over the whole first sequence: a model stepped one timestep per forward call by the caller
has neurons that are silent at t = 0 and fire later (every layer after the first is, in a deep network).

The custom neuron is integrate-and-fire with a soft reset: v += I, a spike when v >= 1, then v -= 1. Spike trains
over T = 3 steps for constant currents (in eighths or quarters, so every sum is exact):
    1.0 -> 1 1 1,  0.75 -> 0 1 1,  0.5 -> 0 1 0,  0.375 -> 0 0 1,  0.25 -> 0 0 0
"""
import warnings

import pytest
import torch
from torch import nn

from spikescope.errors import SpikescopeWarning
from spikescope.metrics.firing import FiringRate
from spikescope.record import SpikeRecorder
from spikescope.timelayout import Layout
from test_timelayout_order import StepIF  # the custom cell described above, no framework

T = 3
SILENT_AT_T0 = torch.tensor([[0.5, 0.5, 0.25, 0.75],     # spikes per step: 0, 3, 1
                             [0.5, 0.25, 0.25, 0.5]])    # 0, 2, 0
FIRING_AT_T0 = torch.tensor([[1.0, 0.375, 0.25, 0.25],   # 1, 1, 2
                             [1.0, 1.0, 0.5, 0.375]])    # 2, 3, 3
RATES = [3 / 16, 9 / 16, 6 / 16]  # per step over both batches: 4 samples x 4 neurons


class OuterLoopNet(nn.Module):
    """A network the caller steps: one forward call is one timestep. `quiet` sees a quarter of the current, so
    (at most 0.25 per step) it never reaches the threshold in T = 3 steps."""

    def __init__(self, quiet: bool = False) -> None:
        super().__init__()
        self.neuron = StepIF()
        self.quiet = StepIF() if quiet else None

    def reset(self) -> None:
        for cell in (self.neuron, self.quiet):
            if cell is not None:
                cell.reset()

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        spikes = self.neuron(current)
        return spikes if self.quiet is None else spikes + self.quiet(current / 4)


def record_outer_loop(model: OuterLoopNet, batches: list[torch.Tensor]) -> SpikeRecorder:
    with torch.no_grad(), SpikeRecorder(model, metrics=[FiringRate()], T=T) as recorder:
        for current in batches:
            model.reset()
            for _ in range(T):
                model(current)
    return recorder


def test_the_reference_cell_fires_as_the_docstring_says():
    cell = StepIF()
    trains = torch.stack([cell(torch.tensor([1.0, 0.75, 0.5, 0.375, 0.25])) for _ in range(T)])
    assert trains.T.tolist() == [[1, 1, 1], [0, 1, 1], [0, 1, 0], [0, 0, 1], [0, 0, 0]]


@pytest.mark.parametrize("batches", [[SILENT_AT_T0, FIRING_AT_T0], [FIRING_AT_T0, SILENT_AT_T0]],
                         ids=["silent-at-t0-first", "firing-at-t0-first"])
def test_a_custom_neuron_silent_at_t0_is_found_and_keeps_every_timestep(batches):
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpikescopeWarning)  # no "output only zeros" warning
        recorder = record_outer_loop(OuterLoopNet(), batches)
    assert [(layer.name, layer.layout) for layer in recorder.layers] == [("neuron", Layout.PER_FORWARD)]
    result = recorder.compute()["FiringRate"]
    assert result.timesteps["firing_rate"].tolist() == pytest.approx(RATES, abs=1e-12)
    assert result.layers.loc[0, "firing_rate"] == pytest.approx(18 / 48, abs=1e-12)
    assert result.layers.loc[0, "samples"] == 4


def test_a_neuron_silent_over_the_whole_first_batch_is_still_named():
    with pytest.warns(SpikescopeWarning, match=r"module quiet \(StepIF\) output only zeros on the first batch.*"
                                               r"--layers quiet"):
        recorder = record_outer_loop(OuterLoopNet(quiet=True), [SILENT_AT_T0, FIRING_AT_T0])
    assert [layer.name for layer in recorder.layers] == ["neuron"]
    assert sum("quiet" in w for w in recorder.warnings) == 1
    assert recorder.compute()["FiringRate"].timesteps["firing_rate"].tolist() == pytest.approx(RATES, abs=1e-12)


def test_a_first_sequence_whose_call_raised_starts_over():
    model = OuterLoopNet()
    with torch.no_grad(), SpikeRecorder(model, metrics=[FiringRate()], T=T) as recorder:
        model(SILENT_AT_T0)
        with pytest.raises(RuntimeError, match="size of tensor"):
            model(torch.ones(2, 5))  # the second call of the first sequence raises: 5 currents for 4 neurons
        for current in (SILENT_AT_T0, FIRING_AT_T0):
            model.reset()
            for _ in range(T):
                model(current)
    result = recorder.compute()["FiringRate"]
    assert result.timesteps["firing_rate"].tolist() == pytest.approx(RATES, abs=1e-12)
    assert result.layers.loc[0, "samples"] == 4


snn = pytest.importorskip("snntorch", reason="test extra: pip install --no-deps snntorch")


def snntorch_tutorial_net() -> nn.Sequential:
    """snnTorch's tutorial pattern: `init_hidden` neurons in a Sequential, stepped by the caller's loop.

    snnTorch's Leaky (beta = 1, threshold 1, subtractive reset applied at the step after a spike):
    mem_t = mem_{t-1} + I_t - [mem_{t-1} > 1], spike when mem_t > 1.
    """
    net = nn.Sequential(nn.Linear(3, 4, bias=False), snn.Leaky(beta=1.0, init_hidden=True),
                        nn.Linear(4, 2, bias=False), snn.Leaky(beta=1.0, init_hidden=True, output=True))
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(4, 3))
        net[2].weight.copy_(torch.tensor([[0.7, 0.7, 0.0, 0.0], [0.0, 0.0, 0.6, 0.0]]))
    return net


def test_snntorch_leaky_stepped_by_the_caller():
    from snntorch import utils

    net = snntorch_tutorial_net()
    currents = torch.tensor([[0.6, 0.3, 1.2], [0.4, 0.9, 0.0]])
    # first Leaky, per neuron: 0.6 -> 0101, 0.3 -> 0001, 1.2 -> 1111, 0 -> 0000; 0.4 -> 0010, 0.9 -> 0111
    # second Leaky: sample 1 gets 0.7 x (0,1,0,2) -> 0001 and 0.6 per step -> 0101; sample 2 gets 0.7 x (0,1,2,1)
    # -> 0011 and nothing -> 0000: silent at t = 0
    expected = {"1": [1 / 8, 3 / 8, 3 / 8, 4 / 8], "3": [0, 1 / 4, 1 / 4, 3 / 4]}
    with torch.no_grad(), SpikeRecorder(net, metrics=[FiringRate()], T=4) as recorder:
        utils.reset(net)
        for _ in range(4):
            net(currents)
    assert [(layer.name, layer.layout) for layer in recorder.layers] == [("1", Layout.PER_FORWARD),
                                                                         ("3", Layout.PER_FORWARD)]
    steps = recorder.compute()["FiringRate"].timesteps
    for name, rates in expected.items():
        assert steps.query("layer == @name")["firing_rate"].tolist() == pytest.approx(rates, abs=1e-12)


def test_norse_cell_stepped_by_the_caller():
    norse = pytest.importorskip("norse.torch", reason="norse is not installed")

    class NorseNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.fc = nn.Linear(4, 6)
            self.cell = norse.LIFCell()

        def forward(self, x: torch.Tensor, state=None):
            return self.cell(self.fc(x) * 40, state)

    net, steps = NorseNet().eval(), 8
    returned = []
    handle = net.cell.register_forward_hook(lambda module, args, output: returned.append(output[0]))
    with torch.no_grad(), SpikeRecorder(net, metrics=[FiringRate()], T=steps) as recorder:
        state = None
        for _ in range(steps):
            _, state = net(SILENT_AT_T0, state)
    handle.remove()
    assert returned[0].sum() == 0 and sum(s.sum() for s in returned) > 0  # Norse's cell is silent at t = 0
    assert [(layer.name, layer.layout) for layer in recorder.layers] == [("cell", Layout.PER_FORWARD)]
    own = torch.stack(returned).double().mean(dim=(1, 2)).tolist()
    assert recorder.compute()["FiringRate"].timesteps["firing_rate"].tolist() == pytest.approx(own, abs=1e-12)
