"""Energy models (docs/metrics.md, "Energy models"): Lemaire et al. 2022's terms on one-layer networks, counted by
hand here; the ANN twin; agreement with SpikingJelly's own Lemaire estimator."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import spikescope
from spikescope.energy.models import ENERGY_MODELS, Lemaire2022, energy_model, leaks
from spikescope.errors import SpikescopeError
from spikescope.metrics.energy import Energy
from spikescope.models.layers import over_time

LEMAIRE = Lemaire2022()
E_ADD, E_MAC = 0.1, 3.2  # 32-bit integer add; multiply (3.1) + add


def per_byte(capacity_bytes: float) -> float:
    """The paper's SRAM curve below 8 KiB: 10 pJ per 32-bit access at 8 KiB, linear from 0."""
    assert capacity_bytes <= 8192
    return capacity_bytes / 8192 * 10 / 4


FIFO = per_byte(4000)  # an event queue of 1000 words


def terms(row) -> dict[str, float]:
    return {t: row[f"energy_{t}_pj_per_image"] for t in ("ops", "addressing", "inout", "params", "potentials")}


def test_the_memory_curve_passes_through_the_papers_points_and_is_flat_above_1_mib():
    assert [LEMAIRE.per_byte(kib * 1024) for kib in (0, 8, 32, 1024, 4096)] == [0, 2.5, 5, 25, 25]
    assert LEMAIRE.per_byte(20 * 1024) == pytest.approx(3.75)  # half way from 8 to 32 KiB
    assert LEMAIRE.access(10, 1000) == pytest.approx(10 * 4 * FIFO)


def test_a_linear_layer_fed_spikes_costs_its_adds_addressing_queue_weights_and_potentials():
    linear = nn.Linear(5, 7)
    metric = Energy("lemaire2022")
    metric.update("fc", torch.tensor([[[1.0, 1, 0, 0, 1]], [[0, 0, 0, 1, 0]]]), linear)  # T=2, B=1: 4 events
    row = metric.compute().layers.iloc[0]
    targets, outputs = 4 * 7, 2 * 7  # each event meets 7 weights; 7 outputs per timestep get the bias
    assert terms(row) == pytest.approx({
        "ops": (targets + outputs) * E_ADD, "addressing": targets * E_ADD,
        "inout": 4 * 4 * FIFO,  # 4 events read from the queue
        "params": (targets + outputs) * 4 * per_byte((35 + 7) * 4),  # a weight per target, a bias per output
        "potentials": 2 * targets * 4 * per_byte(7 * 4)}, rel=1e-12)  # read and written, 7 potentials
    assert row["energy_pj_per_image"] == pytest.approx(sum(terms(row).values()), rel=1e-12)


def test_a_convolution_fed_spikes_reaches_exact_targets_or_the_papers_every_tap():
    conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)
    x = torch.zeros(1, 1, 1, 4, 4)
    x[..., 0, 0] = x[..., 1, 1] = 1  # a corner event reaches 2 x 4 outputs, an inner one 2 x 9
    exact, paper = 2 * (4 + 9), 2 * 2 * 9
    for model, targets in ((Lemaire2022(), exact), (Lemaire2022(fanout="paper"), paper)):
        metric = Energy(model)
        metric.update("conv", x, conv)
        row = metric.compute().layers.iloc[0]
        assert terms(row) == pytest.approx({
            "ops": targets * E_ADD,
            "addressing": targets * E_ADD + 2 * 2 * E_MAC,  # each event's window located by two MACs
            "inout": 2 * 4 * FIFO, "params": targets * 4 * per_byte(18 * 4),
            "potentials": 2 * targets * 4 * per_byte(32 * 4)}, rel=1e-12), model.name


def test_a_strided_convolution_adds_over_ceil_k_over_s_taps_in_the_papers_reading():
    conv = nn.Conv2d(1, 1, 3, stride=2, padding=1, bias=False)
    x = torch.zeros(1, 1, 1, 6, 6)
    x[..., 1, 1] = 1  # reaches outputs (0, 0), (0, 1), (1, 0), (1, 1): 4 = ceil(3/2)^2, but 9 taps are read
    rows = {}
    for model in ("lemaire2022", "lemaire2022-paper"):
        metric = Energy(model)
        metric.update("conv", x, conv)
        rows[model] = metric.compute().layers.iloc[0]
    assert rows["lemaire2022"]["energy_ops_pj_per_image"] == pytest.approx(4 * E_ADD)
    assert rows["lemaire2022-paper"]["energy_ops_pj_per_image"] == pytest.approx(4 * E_ADD)
    assert rows["lemaire2022"]["energy_params_pj_per_image"] == pytest.approx(4 * 4 * per_byte(9 * 4))
    assert rows["lemaire2022-paper"]["energy_params_pj_per_image"] == pytest.approx(9 * 4 * per_byte(9 * 4))


def test_a_dense_fed_layer_is_the_papers_formal_layer():
    conv = nn.Conv2d(1, 2, 3, padding=1)
    metric = Energy("lemaire2022")
    metric.update("conv", torch.full((1, 1, 1, 4, 4), 0.5), conv)
    row = metric.compute().layers.iloc[0]
    macs, outputs = 2 * 16 * 9, 2 * 16
    assert row["macs_per_image"] == macs
    assert terms(row) == pytest.approx({
        "ops": macs * E_MAC + outputs * E_ADD, "addressing": (16 + outputs + 2 * 9) * E_ADD,
        "inout": macs * 4 * per_byte(16 * 4)  # an input read per MAC from the 16-value input
                 + outputs * 4 * per_byte(outputs * 4),  # no neuron follows: the outputs are written
        "params": (macs + outputs) * 4 * per_byte(20 * 4), "potentials": 0.0}, rel=1e-12)


class Fire(nn.Module):
    """A neuron stand-in that passes the spikes the test chose."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = Fire(), Fire()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x[:, :, 0]) + self.b(x[:, :, 1])


class Pool(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = Fire()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return over_time(lambda y: F.avg_pool2d(y, 2), self.a(x))


def energy_rows(model: nn.Module, x: torch.Tensor, energy: str = "lemaire2022"):
    names = [n for n, m in model.named_modules() if isinstance(m, Fire)]
    with torch.no_grad(), spikescope.SpikeRecorder(model, layers=names, T=x.shape[0],
                                                   metrics=[Energy(energy)]) as recorder:
        model(x)
    return recorder.compute()["Energy"].layers.set_index("layer")


def test_a_residual_sum_of_spikes_adds_each_event_into_its_output_and_each_neuron_updates_its_potential():
    T, B, N = 2, 3, 4 * 8
    x = (torch.rand(T, B, 2, 4, 8, generator=torch.Generator().manual_seed(0)) < 0.4).float()
    rows = energy_rows(Residual(), x)
    events = float(x.sum()) / B  # per image
    add = rows.loc["(model): add 1"]
    assert add["part"] == "residual"
    assert terms(add) == pytest.approx({"ops": events * E_ADD, "addressing": events * E_ADD,
                                        "inout": events * 4 * FIFO, "params": 0.0,
                                        "potentials": 2 * events * 4 * per_byte(N * 4)}, rel=1e-12)
    assert add["ann_energy_ops_pj_per_image"] == pytest.approx(N * E_ADD)  # the twin adds N reals once
    assert add["ann_energy_inout_pj_per_image"] == pytest.approx(
        2 * N * 4 * per_byte(2 * N * 4) + N * 4 * per_byte(N * 4))  # reads both operands, writes the sum
    a = rows.loc["a"]
    spikes = float(x[:, :, 0].sum()) / B
    assert a["kind"] == "neuron" and a["part"] == "neurons" and a["ann_energy_pj_per_image"] == 0
    assert terms(a) == pytest.approx({"ops": spikes * E_ADD + T * N * E_MAC,  # a reset per spike, a leak per update
                                      "addressing": 0.0, "inout": spikes * 4 * FIFO, "params": 0.0,
                                      "potentials": 2 * T * N * 4 * per_byte(N * 4)}, rel=1e-12)
    assert "a" not in energy_rows(Residual(), x, "fp32").index  # compute-only models price no neuron updates


def test_average_pooling_of_spikes_adds_each_event_once_into_its_window():
    T, B = 2, 2
    x = (torch.rand(T, B, 3, 4, 4, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    pool = energy_rows(Pool(), x).loc["(model): pooling 1"]
    events, outputs = float(x.sum()) / B, 3 * 2 * 2
    assert terms(pool) == pytest.approx({"ops": events * E_ADD, "addressing": events * E_ADD,
                                         "inout": events * 4 * FIFO, "params": 0.0,
                                         "potentials": 2 * events * 4 * per_byte(outputs * 4)}, rel=1e-12)


class Silent(nn.Module):
    """A neuron that never fires."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


class Quiet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.s1 = nn.Conv2d(1, 4, 3, padding=1), Silent()
        self.conv2, self.s2 = nn.Conv2d(4, 4, 3, padding=1), Silent()
        self.fc = nn.Linear(4 * 6 * 6, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = over_time(lambda z: self.s2(self.conv2(self.s1(self.conv1(z)))), x)
        return self.fc(y.flatten(2)).mean(0)


@pytest.mark.parametrize("T", [1, 3])
def test_the_ann_twin_of_a_network_with_no_spikes_is_its_dense_mac_count_once_per_image(T):
    x = torch.rand(T, 2, 1, 6, 6)
    model = Quiet()
    with torch.no_grad(), spikescope.SpikeRecorder(model, layers=["s1", "s2"], T=T, fold="time-major",
                                                   metrics=[Energy()]) as recorder:
        model(x)
    rows = recorder.compute()["Energy"].layers
    dense = 4 * 36 * 9 + 4 * 36 * 4 * 9 + 144 * 10  # conv1, conv2, fc: C_out H W C_in k^2 and in x out
    assert rows["ann_macs_per_image"].sum() == dense
    assert rows["ann_energy_pj_per_image"].sum() == pytest.approx(4.6 * dense, rel=1e-12)
    assert rows["sops_per_image"].sum() == 0 and rows["macs_per_image"].sum() == T * 4 * 36 * 9  # the image, T times


def test_energy_models_are_named_and_unknown_ones_refused_in_one_line():
    assert list(ENERGY_MODELS) == ["fp32", "fp16", "int8", "lemaire2022", "lemaire2022-paper"]
    assert energy_model("lemaire2022-paper").fanout == "paper"
    with pytest.raises(SpikescopeError, match="unknown energy model 'lemaire'; choose one of fp32, fp16"):
        energy_model("lemaire")
    with pytest.raises(SpikescopeError, match="fanout must be"):
        Lemaire2022(fanout="approx")


def test_integrate_and_fire_neurons_and_a_decay_of_one_do_not_leak():
    snntorch = pytest.importorskip("snntorch")
    from spikingjelly.activation_based import neuron

    assert not leaks(neuron.IFNode()) and leaks(neuron.LIFNode()) and leaks(neuron.ParametricLIFNode())
    assert not leaks(snntorch.Leaky(beta=1.0)) and leaks(snntorch.Leaky(beta=0.9))
    assert leaks(spikescope.neurons.LIF()) and leaks(Fire())


def spikingjelly_network(step_mode: str):
    """A sequential stack SpikingJelly's estimator supports: a convolution fed the image, LIF, a strided
    convolution, IF, a linear readout (flattened in the forward, not by a module it would refuse)."""
    from spikingjelly.activation_based import layer, neuron

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.T = 3
            self.conv1 = layer.Conv2d(1, 8, 3, padding=1, step_mode=step_mode)
            self.lif1 = neuron.LIFNode(step_mode=step_mode)
            self.conv2 = layer.Conv2d(8, 16, 3, stride=2, padding=1, step_mode=step_mode)
            self.if2 = neuron.IFNode(step_mode=step_mode)
            self.fc = layer.Linear(16 * 14 * 14, 10, step_mode=step_mode)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if step_mode == "m":
                x = x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)
                return self.fc(self.if2(self.conv2(self.lif1(self.conv1(x)))).flatten(2)).mean(0)
            return sum(self.fc(self.if2(self.conv2(self.lif1(self.conv1(x)))).flatten(1))
                       for _ in range(self.T)) / self.T

    torch.manual_seed(0)
    net = Net()
    with torch.no_grad():
        net.conv1.weight.mul_(3)  # enough input to make both layers fire
    return net


@pytest.mark.parametrize("step_mode", ["s", "m"])
def test_lemaire_with_the_papers_fanouts_equals_spikingjellys_estimator_on_a_network_it_supports(step_mode):
    pytest.importorskip("spikingjelly")
    from spikescope.energy.peers import spikingjelly_lemaire

    images = spikescope.load_dataset("fashion-mnist-sample", "test", limit=6).images.float()
    net = spikingjelly_network(step_mode)
    theirs = spikingjelly_lemaire(net, images)
    totals = spikescope.analyze(net, [images], energy="lemaire2022-paper").energy_totals()
    ours = {t: totals[f"energy_{t}_pj_per_image"] for t in ("ops", "addressing", "inout", "params", "potentials")}
    assert ours["potentials"] > 0.5 * totals["energy_pj_per_image"]  # memory of potentials dominates here
    if step_mode == "s":  # one image, one timestep per call: the same memories, term by term
        assert {**ours, "total": totals["energy_pj_per_image"]} == pytest.approx(theirs, rel=1e-9)
        return
    # Fed [T, 1, ...] at once, SpikingJelly sizes the image's buffer for all T timesteps and addresses each
    # convolution's taps once per call; spikescope holds one timestep's input and addresses the taps each timestep.
    assert {t: v for t, v in ours.items() if t not in ("inout", "addressing")} == pytest.approx(
        {t: v for t, v in theirs.items() if t not in ("inout", "addressing", "total")}, rel=1e-9)
    image, T = 28 * 28, net.T
    input_reads = T * 8 * image * 9  # conv1 reads an input per MAC (padding taps included)
    assert theirs["inout"] - ours["inout"] == pytest.approx(
        input_reads * 4 * (LEMAIRE.per_byte(T * image * 4) - per_byte(image * 4)), rel=1e-9)
    assert ours["addressing"] - theirs["addressing"] == pytest.approx((T - 1) * 8 * 9 * E_ADD, rel=1e-9)  # conv1


class OwnLoop(nn.Module):
    """Steps time in its own forward: each timestep's add is a row of its own (`(model): add t`)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = Fire(), Fire()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.a(step[:, 0]) + self.b(step[:, 1]) for step in x])


def test_a_row_of_one_timestep_in_a_models_own_time_loop_has_memories_of_one_timestep():
    T, B, N = 3, 4, 4 * 8
    x = (torch.rand(T, B, 2, 4, 8, generator=torch.Generator().manual_seed(2)) < 0.4).float()
    rows = energy_rows(OwnLoop(), x)
    for t in range(T):
        add = rows.loc[f"(model): add {t + 1}"]
        events = float(x[t].sum()) / B
        assert add["energy_potentials_pj_per_image"] == pytest.approx(2 * events * 4 * per_byte(N * 4), rel=1e-12)
        assert add["ann_energy_ops_pj_per_image"] == pytest.approx(N * E_ADD / T)  # together: the twin's one add
        assert add["ann_energy_inout_pj_per_image"] == pytest.approx(
            (2 * N * 4 * per_byte(2 * N * 4) + N * 4 * per_byte(N * 4)) / T)
