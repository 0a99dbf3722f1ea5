"""Membrane potentials: read from every framework at the spike decision, binned in threshold units, merged exactly."""
import numpy as np
import pytest
import torch
from torch import nn

from spikescope.checkpoint import bundled_checkpoint, load
from spikescope.data import load_dataset, make_loader
from spikescope.errors import SpikescopeError
from spikescope.metrics.membrane import BINS, COLUMNS, EDGES, MembranePotential
from spikescope.neurons import LIF
from spikescope.pipeline import analyze_checkpoint
from spikescope.record import SpikeRecorder
from spikescope.report.figures import membrane_histograms

IMAGES = next(iter(make_loader(load_dataset("fashion-mnist-sample", "test", limit=40), 40)))[0]


class KeptPotentials:
    """A metric fed potentials that keeps them, to compare with what the frameworks hold."""

    inputs = "membrane"

    def __init__(self) -> None:
        self.seen: dict[str, list[tuple[torch.Tensor, torch.Tensor, float]]] = {}

    def update(self, layer, potential, spikes, threshold) -> None:
        self.seen.setdefault(layer, []).append((potential.clone(), spikes.clone(), threshold))


def constant_current(current: float, T: int = 4) -> MembranePotential:
    metric = MembranePotential()
    model = nn.Sequential(LIF())  # decay 0.25, threshold 0.5
    with torch.no_grad(), SpikeRecorder(model, metrics=[metric], T=T, membrane=True):
        model(torch.full((T, 3, 5), current))
    return metric


def test_a_lif_driven_by_a_constant_current_has_the_potential_its_equation_gives():
    steps = constant_current(0.2).compute().timesteps
    expected, u = [], 0.0
    for _ in range(4):
        u = 0.25 * u + 0.2  # never reaches 0.5: no spike, no reset
        expected.append(u / 0.5)
    assert steps["membrane_mean"].tolist() == pytest.approx(expected, rel=1e-6)
    assert steps["membrane_sd"].max() < 1e-6 and (steps["reset_share"] == 0).all()
    fires = constant_current(0.46).compute().timesteps  # 0.46, then 0.575 fires, reset to 0, 0.46, fires, ...
    assert fires["reset_share"].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert fires["membrane_mean"].tolist()[::2] == pytest.approx([0.92, 0.92], rel=1e-6)
    assert fires["near_threshold_share"].tolist() == [1.0, 0.0, 1.0, 0.0]  # 0.92 x threshold: just below


def test_the_histogram_bins_a_known_potential_where_it_belongs():
    histogram = constant_current(0.21).compute().arrays["membrane_histogram"]["0"]  # [T, BINS + 2]
    column = COLUMNS.index("0.40..0.50")  # u / threshold = 0.21 / 0.5 = 0.42 at t = 0
    assert histogram.shape == (4, BINS + 2) and histogram[0, column] == 15 and histogram[0].sum() == 15
    assert COLUMNS[0] == "below" and COLUMNS[-1] == "fired" and len(EDGES) == BINS + 1


@pytest.fixture(scope="module")
def bundled():
    model, _ = load(bundled_checkpoint("baseline"), torch.device("cpu"))
    return model


def test_histograms_count_every_neuron_at_every_timestep_and_merge_exactly(bundled):
    whole, first, second = MembranePotential(), MembranePotential(), MembranePotential()
    with torch.no_grad(), SpikeRecorder(bundled, metrics=[whole], membrane=True) as recorder:
        bundled(IMAGES[:25])
        bundled(IMAGES[25:])
    for metric, part in ((first, IMAGES[:25]), (second, IMAGES[25:])):
        with torch.no_grad(), SpikeRecorder(bundled, metrics=[metric], membrane=True):
            bundled(part)
    first.merge(second)
    neurons = {"block1.lif": 16 * 28 * 28, "block3.lif": 64 * 14 * 14, "block5.lif": 64 * 7 * 7}
    for layer, count in neurons.items():
        histogram = whole.states[layer]["histogram"]
        assert int(histogram.sum()) == 2 * 40 * count  # T x samples x neurons
        assert (histogram.sum(dim=1) == 40 * count).all()
        assert torch.equal(first.states[layer]["histogram"], histogram)
        torch.testing.assert_close(first.states[layer]["sum"], whole.states[layer]["sum"], rtol=1e-12, atol=1e-9)
    result = whole.compute()
    rates = recorder.compute()["MembranePotential"].layers  # the metric the recorder was given
    assert list(rates["layer"]) == [f"block{i}.lif" for i in range(1, 6)]
    assert ((result.layers["reset_share"] > 0.05) & (result.layers["reset_share"] < 0.5)).all()


def test_analyze_membrane_reset_share_is_the_firing_rate_and_is_written(tmp_path):
    result, files = analyze_checkpoint(limit=60, membrane=True, out=tmp_path / "r")
    layers = result.layers.set_index("layer")
    np.testing.assert_allclose(layers["reset_share"], layers["firing_rate"], rtol=1e-12)
    assert set(np.load(files["membrane.npz"]).files) == {*(f"block{i}.lif" for i in range(1, 6)), "columns"}
    assert "<h2>Membrane potentials</h2>" in files["report.html"].read_text()
    plain, plain_files = analyze_checkpoint(limit=20, out=tmp_path / "plain")
    assert not plain.membrane and "membrane_mean" not in plain.layers and "membrane.npz" not in plain_files


# --- the frameworks' own state -----------------------------------------------------------------------------------

def quiet_equal(kept: list, own: list[torch.Tensor]) -> None:
    """Where a neuron did not fire, the potential spikescope read equals the framework's own."""
    assert kept and len(kept) == len(own)
    for (potential, spikes, _), state in zip(kept, own):
        quiet = spikes == 0
        assert quiet.any() and (~quiet).any()
        torch.testing.assert_close(potential[quiet], state[quiet], rtol=0, atol=0)


def test_spikingjelly_potentials_equal_its_own_v_seq():
    pytest.importorskip("spikingjelly.activation_based.neuron", reason="test extra")
    from spikingjelly.activation_based import functional, layer, neuron

    torch.manual_seed(0)
    net = nn.Sequential(layer.Conv2d(1, 4, 3, padding=1), neuron.LIFNode(tau=2.0, v_threshold=0.3)).eval()
    functional.set_step_mode(net, "m")
    x = IMAGES[:8].unsqueeze(0).repeat(4, 1, 1, 1, 1)
    kept = KeptPotentials()
    with torch.no_grad(), SpikeRecorder(net, metrics=[kept], membrane=True):
        functional.reset_net(net)
        net(x)
    assert net[1].store_v_seq is False  # switched back
    net[1].store_v_seq = True
    with torch.no_grad():
        functional.reset_net(net)
        net(x)
    quiet_equal(kept.seen["1"], [net[1].v_seq])
    assert kept.seen["1"][0][2] == 0.3


def test_snntorch_potentials_equal_the_mem_it_returns():
    snn = pytest.importorskip("snntorch", reason="test extra")

    class Loop(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.conv, self.lif = nn.Conv2d(1, 4, 3, padding=1), snn.Leaky(beta=0.8, threshold=0.7)

        def forward(self, x):
            mem, out = self.lif.init_leaky(), []
            for _ in range(4):
                spk, mem = self.lif(self.conv(x) * 2, mem)
                out.append(spk)
            return torch.stack(out)

    net, kept, own = Loop().eval(), KeptPotentials(), []
    with torch.no_grad(), SpikeRecorder(net, metrics=[kept], T=4, membrane=True):
        net(IMAGES[:8])
    handle = net.lif.register_forward_hook(lambda module, args, output: own.append(output[1]))
    with torch.no_grad():
        net(IMAGES[:8])
    handle.remove()
    quiet_equal(kept.seen["lif"], [torch.stack(own)])
    assert kept.seen["lif"][0][2] == pytest.approx(0.7)


def test_sinabs_potentials_equal_its_own_recordings():
    sl = pytest.importorskip("sinabs.layers", reason="test extra")
    from sinabs.activation import SingleSpike

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1),
                        sl.IAFSqueeze(num_timesteps=4, spike_fn=SingleSpike, spike_threshold=0.8)).eval()
    x = IMAGES[:6].repeat_interleave(4, dim=0)  # [B*T, ...] batch-major
    kept = KeptPotentials()
    with torch.no_grad(), SpikeRecorder(net, metrics=[kept], membrane=True):
        net[1].reset_states()
        net(x)
    assert net[1].record_states is False
    net[1].record_states = True
    with torch.no_grad():
        net[1].reset_states()
        net(x)
    own = net[1].recordings["v_mem"].transpose(0, 1)  # [B, T, ...] -> time-first
    quiet_equal(kept.seen["1"], [own])


def test_neurons_of_no_known_framework_are_named_and_left_out():
    import snn_zoo
    from spikescope.errors import SpikescopeWarning

    net, metric = snn_zoo.PlainSNN().eval(), MembranePotential()  # reference-style neurons: no known framework
    with pytest.warns(SpikescopeWarning, match="no membrane statistics for stage1.1, stage2.1"):
        with torch.no_grad(), SpikeRecorder(net, metrics=[metric], membrane=True):
            net(IMAGES[:4])
    assert metric.states == {}


def test_snntorch_neurons_with_a_synaptic_current_and_per_neuron_thresholds():
    snn = pytest.importorskip("snntorch", reason="test extra")
    torch.manual_seed(0)
    fc = nn.Linear(784, 20)
    thresholds = torch.linspace(0.2, 2.0, 20)
    neuron = snn.Synaptic(alpha=0.8, beta=0.7, threshold=thresholds, init_hidden=True)

    class Loop(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.neuron = fc, neuron

        def forward(self, x):
            return torch.stack([self.neuron(self.fc(x.flatten(1)) * 3) for _ in range(4)])

    net, kept = Loop().eval(), KeptPotentials()
    own = []
    with torch.no_grad(), SpikeRecorder(net, metrics=[kept], T=4, membrane=True):
        neuron.reset_hidden()
        handle = neuron.register_forward_hook(lambda module, args, output: own.append(module.mem.clone()))
        net(IMAGES[:8])
        handle.remove()
    potential, spikes, threshold = kept.seen["neuron"][0]
    quiet_equal(kept.seen["neuron"], [torch.stack(own)])  # mem, not the synaptic current
    assert torch.equal(threshold, thresholds)
    metric = MembranePotential()
    metric.update("n", potential, spikes, threshold)
    ratio = (potential.double() / thresholds)[spikes == 0]  # the ratio in float64, as binned
    assert float(metric.states["n"]["sum"].sum()) == pytest.approx(float(ratio.sum()), rel=1e-9)


def test_spikingjelly_single_step_neurons_and_switches_restored_after_a_failed_start():
    pytest.importorskip("spikingjelly.activation_based.neuron", reason="test extra")
    from spikingjelly.activation_based import functional, layer, neuron

    torch.manual_seed(0)
    net = nn.Sequential(layer.Conv2d(1, 4, 3, padding=1), neuron.LIFNode(tau=2.0, v_threshold=0.3)).eval()
    kept, own = KeptPotentials(), []
    with torch.no_grad(), SpikeRecorder(net, metrics=[kept], T=3, membrane=True):
        functional.reset_net(net)
        handle = net[1].register_forward_hook(lambda module, args, output: own.append(module.v.clone()))
        for _ in range(3):  # the loop over time outside the model
            net(IMAGES[:8])
        handle.remove()
    quiet_equal(kept.seen["1"], [torch.stack(own)])
    with pytest.raises(SpikescopeError, match="no module named 'nope'"):
        SpikeRecorder(net, layers=["nope"], membrane=True).open()
    assert net[1].store_v_seq is False



def test_the_membrane_figure_draws_the_catch_all_bin_apart_and_labels_the_threshold():
    """Counts [below -6, the 70 bins, fired] = [10, 2 in the first bin, 3 in the last, 5 fired] of 20 neurons: the
    line holds the 70 bins only, the catch-all bin is a lone marker left of -6, and the line at 1 says threshold."""
    counts = np.zeros(len(COLUMNS))
    counts[0], counts[1], counts[-2], counts[-1] = 10, 2, 3, 5
    figure = membrane_histograms({"model": {"conv": counts}, "other": {"conv": counts}})
    lines = [trace for trace in figure.data if trace.mode == "lines"]
    markers = [trace for trace in figure.data if trace.mode == "markers"]
    assert len(lines) == len(markers) == 2
    np.testing.assert_allclose(lines[0].x, (EDGES[:-1] + EDGES[1:]) / 2)
    assert lines[0].y[0] == 10 and lines[0].y[-1] == 15 and len(lines[0].y) == BINS
    assert list(markers[0].y) == [50] and markers[0].x[0] < EDGES[0] - 0.5  # apart, left of the first bin
    assert markers[0].marker.color == lines[0].line.color and not markers[0].showlegend
    ticks = dict(zip(figure.layout.xaxis.tickvals, figure.layout.xaxis.ticktext))
    assert ticks[markers[0].x[0]] == "< -6"
    assert len([shape for shape in figure.layout.shapes if shape.x0 == shape.x1 == 1.0]) == 1
    assert [a.text for a in figure.layout.annotations if a.text == "threshold"] == ["threshold"]
