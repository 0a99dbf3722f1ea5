"""lemaire2022's per-image numbers do not depend on how the images were batched, how time is laid out, which layers
are recorded, or on which batches a branch ran: the same network gives the same rows (docs/metrics.md, "Energy
models")."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import spikescope
from spikescope.metrics.energy import Energy
from test_energy_models import FIFO, per_byte

COLUMNS = ["energy_pj_per_image", *(f"energy_{t}_pj_per_image" for t in ("ops", "addressing", "inout", "params",
                                                                           "potentials")), "ann_energy_pj_per_image"]


class Fire(nn.Module):
    """A neuron stand-in: a spike where its input is positive."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x > 0).float()


def rows(model: nn.Module, batches: list[torch.Tensor], layers: list[str], T: int, energy: str = "lemaire2022",
         **options):
    with torch.no_grad(), spikescope.SpikeRecorder(model, layers=layers, T=T, metrics=[Energy(energy)],
                                                   **options) as recorder:
        for batch in batches:
            model(batch)
    return recorder.compute()["Energy"].layers.set_index("layer")


def test_a_batch_as_large_as_t_gives_the_numbers_of_any_other_batch():
    model, _ = spikescope.load(spikescope.bundled_checkpoint("fsta"))  # T = 2; FSTA rows are fed [T, B, ...]
    image = spikescope.load_dataset("fashion-mnist-sample", "test", limit=1).images.float()
    two, three = (spikescope.analyze(model, [image.repeat(B, 1, 1, 1)], energy="lemaire2022").energy
                  .set_index("layer")[COLUMNS] for B in (2, 3))
    assert (two - three).abs().max().max() <= 1e-9 * three.abs().max().max()


class Branches(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.s1, self.fc2, self.s2, self.fc3 = nn.Linear(8, 64), Fire(), nn.Linear(64, 64), Fire(), \
            nn.Linear(64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.s1(self.fc1(x))
        return self.fc3(a + self.s2(self.fc2(a)))


def test_batch_first_and_time_first_runs_of_one_network_cost_the_same():
    x = torch.randn(4, 3, 8, generator=torch.Generator().manual_seed(1))
    time_first = rows(Branches(), [x], ["s1", "s2"], T=4)[COLUMNS]
    batch_first = rows(Branches(), [x.transpose(0, 1).contiguous()], ["s1", "s2"], T=4, batch_first=True)[COLUMNS]
    assert batch_first.loc[time_first.index].values == pytest.approx(time_first.values, rel=1e-12)


T, B, N, D = 4, 3, 16, 64


class OwnLoop(nn.Module):
    """Steps time in its own forward on tokens `[B, N, D]`, then reads the stacked steps out."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.s1, self.w, self.u = Fire(), nn.Parameter(torch.randn(D, D) / 8), nn.Parameter(torch.randn(D, 8) / 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = []
        for t in range(T):
            h = self.s1(x[:, t])
            steps.append(h + F.linear(h, self.w))
        return torch.stack(steps) @ self.u


class AllAtOnce(OwnLoop):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.s1(x.transpose(0, 1))
        return (h + F.linear(h, self.w)) @ self.u


def test_a_model_stepping_time_itself_costs_what_the_same_model_run_all_at_once_does():
    x = torch.randn(B, T, N, D, generator=torch.Generator().manual_seed(2))
    stepped, whole = rows(OwnLoop(), [x], ["s1"], T=T), rows(AllAtOnce(), [x], ["s1"], T=T)
    assert stepped.groupby("operator")[COLUMNS].sum().values == pytest.approx(
        whole.groupby("operator")[COLUMNS].sum().values, rel=1e-12)


class LayerScale(nn.Module):
    def __init__(self, features: int = 256) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.s1, self.fc2 = nn.Linear(8, features), Fire(), nn.Linear(features, 3)
        self.gamma = nn.Parameter(torch.rand(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.s1(self.fc1(x)) * self.gamma)


def test_a_product_with_a_parameter_reads_it_from_a_parameter_memory_of_its_size_at_any_batch_size():
    x = torch.randn(2, 1, 8, generator=torch.Generator().manual_seed(3))
    scaled = [rows(LayerScale(), [x.repeat(1, b, 1)], ["s1"], T=2).loc["(model): product 1"] for b in (2, 5)]
    assert scaled[0][COLUMNS].values == pytest.approx(scaled[1][COLUMNS].values, rel=1e-12)
    events = float(LayerScale().s1(LayerScale().fc1(x)).sum())  # per image: one read of gamma per event
    assert scaled[0]["operands"] == "spikes x weights"
    assert scaled[0]["energy_params_pj_per_image"] == pytest.approx(events * 4 * per_byte(256 * 4))  # 256 words


class SomeBatches(Branches):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.s1(self.fc1(x))
        if x[0, 0, 0] > 0:  # a branch taken on some batches only
            a = a + self.s2(self.fc2(a))
        return self.fc3(a)


def test_a_branch_run_on_half_the_images_costs_half_per_image_with_memories_of_its_full_size():
    x = torch.randn(2, 2, 8, generator=torch.Generator().manual_seed(4))
    x[0, :, 0] = 1.0
    y = x.clone()
    y[0, :, 0] = -1.0
    once, half = rows(SomeBatches(), [x], ["s1", "s2"], T=2), rows(SomeBatches(), [x, y], ["s1", "s2"], T=2)
    for row in ("fc2", "(model): add 1", "s2"):
        assert half.loc[row, COLUMNS].values == pytest.approx(once.loc[row, COLUMNS].values / 2, rel=1e-12)


def test_the_total_and_the_neuron_rows_do_not_depend_on_the_recorded_layers():
    model, _ = spikescope.load(spikescope.bundled_checkpoint("baseline"))
    images = [spikescope.load_dataset("fashion-mnist-sample", "test", limit=3).images.float()]
    every = spikescope.analyze(model, images, energy="lemaire2022").energy.set_index("layer")
    assert (every["kind"] == "neuron").sum() == 5
    for layers in (["block1.lif"], ["classifier"]):  # a spiking layer; an analog layer, the only one recorded
        some = spikescope.analyze(model, images, energy="lemaire2022", layers=layers).energy.set_index("layer")
        assert some.loc[every.index, COLUMNS].values == pytest.approx(every[COLUMNS].values, rel=1e-12)


class Dropped(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.s1, self.drop, self.fc2 = nn.Linear(8, 64), Fire(), nn.Dropout(0.0), nn.Linear(64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(self.s1(self.fc1(x))))


def test_a_dropout_named_as_a_spiking_layer_has_no_updates_of_its_own():
    x = torch.randn(2, 3, 8, generator=torch.Generator().manual_seed(5))
    alone, named = rows(Dropped().eval(), [x], ["s1"], T=2), rows(Dropped().eval(), [x], ["s1", "drop"], T=2)
    assert "drop" not in named.index and list(named.index[named["kind"] == "neuron"]) == ["s1"]
    assert named[COLUMNS].values == pytest.approx(alone.loc[named.index, COLUMNS].values, rel=1e-12)


class Multi(nn.Module):
    """A multi-spike neuron stand-in: 0 to 3 spikes per step."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(0, 3).floor()


class Counts(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.s1, self.fc2 = nn.Linear(8, 16), Multi(), nn.Linear(16, 4, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.s1(self.fc1(x) * 3))


def test_a_multi_spike_neuron_writes_to_its_queue_the_events_the_next_layer_reads():
    x = torch.randn(2, 3, 8, generator=torch.Generator().manual_seed(6))
    model = Counts()
    energy = rows(model, [x], ["s1"], T=2)
    counts = model.s1(model.fc1(x) * 3)
    assert counts.max() > 1  # several spikes per neuron and step somewhere
    words = float(counts.sum()) / 3  # per image, a count of k is k events
    assert energy.loc["s1", "energy_inout_pj_per_image"] == pytest.approx(words * 4 * FIFO)
    assert energy.loc["fc2", "energy_inout_pj_per_image"] == pytest.approx(words * 4 * FIFO)


class Stem(nn.Module):
    def __init__(self, once: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.once, self.stem, self.s1, self.fc = once, nn.Linear(8, 64), Fire(), nn.Linear(64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.once:  # the stem runs once per image, its output is repeated over time
            h = self.stem(x).unsqueeze(0).repeat(4, 1, 1)
        else:  # the image is repeated over time, the stem runs at every timestep
            h = self.stem(x.unsqueeze(0).repeat(4, 1, 1))
        return self.fc(self.s1(h)).mean(0)


@pytest.mark.parametrize("energy", ["fp32", "lemaire2022"])
def test_the_ann_twin_runs_a_stem_once_per_image_whether_the_snn_runs_it_once_or_at_every_timestep(energy):
    x = torch.randn(3, 8, generator=torch.Generator().manual_seed(7))
    once, every_step = (rows(Stem(once), [x], ["s1"], T=4, energy=energy).loc["stem"] for once in (True, False))
    assert once["ann_macs_per_image"] == every_step["ann_macs_per_image"] == 8 * 64
    assert once["ann_energy_pj_per_image"] == pytest.approx(every_step["ann_energy_pj_per_image"], rel=1e-12)
    assert every_step["macs_per_image"] == 4 * once["macs_per_image"]
