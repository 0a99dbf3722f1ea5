"""NeuroBench's metrics measured in spikescope's pass: hand-computed answers, NeuroBench 2.3's own harness on a
snnTorch network, and merged halves."""
import copy
import json

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import spikescope
from spikescope.data import load_dataset, make_loader
from spikescope.detect import reset_neuron_states
from spikescope.neurobench import NeuroBench, neurobench_metrics
from spikescope.record import SpikeRecorder

snn = pytest.importorskip("snntorch", reason="test extra: pip install --no-deps snntorch")

T = 3
IMAGES = load_dataset("fashion-mnist-sample", "test", limit=40)


def stepped(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """NeuroBench's SNNTorchModel: `x` is `[B, T, ...]`, the network is called once per timestep."""
    return torch.stack([model(x[:, t])[0] for t in range(x.shape[1])])


def one_layer_net() -> nn.Sequential:
    """Linear 3 -> 3 (6 of 9 weights zero) and snnTorch's Leaky (beta 1, threshold 1, reset by subtraction at the
    step after a spike)."""
    net = nn.Sequential(nn.Linear(3, 3, bias=False), snn.Leaky(beta=1.0, threshold=1.0, init_hidden=True, output=True))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0], [0.0, 0.0, 0.0]]))
    return net


def test_one_layer_network_by_hand():
    # step 0: x = (0.5, 0, 1), not all 0/1: MACs; the non-zero inputs 1 and 3 meet 1 and 2 non-zero weights: 3
    # step 1: x = (1, 0, 1), spikes: 3 ACs; Dense = 9 pairs per step
    # mem: step 0 (2.5, 3, 0) -> spikes (1, 1, 0); step 1 (2.5 + 3 - 1, 3 + 3 - 1, 0) -> spikes (1, 1, 0):
    # 4 of 6 outputs are spikes; updates: 3 at the first step, then 2 (the third neuron stays at 0)
    x = torch.tensor([[[0.5, 0.0, 1.0], [1.0, 0.0, 1.0]]])  # [B = 1, T = 2, 3]
    net = one_layer_net()
    buffers = sum(b.numel() * b.element_size() for b in net[1].buffers())
    result = spikescope.analyze(net, [x], T=2, run=stepped, membrane=True, neurobench=True)
    assert result.neurobench == {
        "ActivationSparsity": pytest.approx(1 / 3, rel=1e-12),
        "SynapticOperations": {"Effective_MACs": 3.0, "Effective_ACs": 3.0, "Dense": 18.0},
        "MembraneUpdates": 5.0, "ConnectionSparsity": 0.6667, "Footprint": 9 * 4 + buffers, "ParameterCount": 9}


def test_membrane_updates_need_membrane_potentials():
    x = torch.tensor([[[0.5, 0.0, 1.0], [1.0, 0.0, 1.0]]])
    result = spikescope.analyze(one_layer_net(), [x], T=2, run=stepped, neurobench=True)
    assert result.neurobench["MembraneUpdates"] is None
    assert result.neurobench["SynapticOperations"]["Dense"] == 18.0
    assert result.membrane == {}


def conv_net() -> nn.Sequential:
    """A conv and a linear layer with leaky neurons, a share of their weights pruned to zero."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), snn.Leaky(beta=0.8, threshold=0.5, init_hidden=True),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 14 * 14, 10),
                        snn.Leaky(beta=0.8, threshold=0.5, init_hidden=True, output=True)).eval()
    with torch.no_grad():
        net[0].weight[1, 0, 0] = 0.0
        net[4].weight[:, :300] = 0.0
    return net


def sequences() -> tuple[torch.Tensor, torch.Tensor]:
    """`[N, T, 1, 28, 28]`: the image at t = 0 (graded: MACs in the first layer), then its binarised copy (ACs)."""
    images, labels = next(iter(make_loader(IMAGES, len(IMAGES))))
    binary = (images > 0.5).float()
    return torch.stack([images, *[binary] * (T - 1)], dim=1), labels


def test_equal_to_neurobench_harness_on_a_snntorch_network():
    pytest.importorskip("neurobench", reason="test extra: pip install --no-deps neurobench")
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ConnectionSparsity, Footprint, ParameterCount
    from neurobench.metrics.workload import ActivationSparsity, MembraneUpdates, SynapticOperations
    from neurobench.models import SNNTorchModel

    data, labels = sequences()
    loader = DataLoader(TensorDataset(data, labels), batch_size=16)  # 16, 16, 8: NeuroBench weights batches by size
    theirs = Benchmark(SNNTorchModel(conv_net()), loader, [], [],
                       [[ParameterCount, Footprint, ConnectionSparsity],
                        [ActivationSparsity, SynapticOperations, MembraneUpdates]]).run(quiet=True)
    ours = spikescope.analyze(conv_net(), loader, T=T, run=stepped, membrane=True, neurobench=True).neurobench
    assert theirs["SynapticOperations"]["Effective_MACs"] > 0 and theirs["SynapticOperations"]["Effective_ACs"] > 0
    assert 0 < theirs["ActivationSparsity"] < 1 and 0 < theirs["ConnectionSparsity"] < 1
    assert ours["ActivationSparsity"] == pytest.approx(theirs["ActivationSparsity"], rel=1e-9)
    assert {k: v for k, v in ours.items() if k != "ActivationSparsity"} == {
        k: v for k, v in theirs.items() if k != "ActivationSparsity"}


def measured(net: nn.Module, data: torch.Tensor) -> NeuroBench:
    """NeuroBench's counters fed by a recorder over batches of 8 sequences."""
    bench = NeuroBench(net, membrane=True)
    with torch.no_grad(), SpikeRecorder(net, metrics=bench.recorded([]), T=T), bench:
        for batch in data.split(8):
            reset_neuron_states(net)
            stepped(net, batch)
    return bench


def test_two_halves_merged_equal_the_whole():
    data, _ = sequences()
    whole, first, second = (measured(conv_net(), part) for part in (data, data[:24], data[24:]))  # fresh: snnTorch
    # keeps `mem` as a buffer, so a network that ran has a larger Footprint (NeuroBench's reading too)
    for name in ("activations", "operations", "membrane"):
        getattr(first, name).merge(getattr(second, name))
    merged = neurobench_metrics(first.static, first.activations, first.operations, first.membrane)
    assert merged == neurobench_metrics(whole.static, whole.activations, whole.operations, whole.membrane)
    assert merged["SynapticOperations"]["Dense"] > 0 and merged["MembraneUpdates"] > 0


def _two_processes(rank: int, folder: str) -> None:
    """One of two processes analysing the loader's batches under a gloo process group; saves its result."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=2)
    result = spikescope.analyze(conv_net(), DataLoader(TensorDataset(*sequences()), batch_size=8), T=T, run=stepped,
                                membrane=True, neurobench=True)
    with open(f"{folder}/rank{rank}.json", "w") as f:
        json.dump(result.neurobench, f)
    dist.destroy_process_group()


def test_two_processes_measure_what_one_process_does(tmp_path):
    mp.spawn(_two_processes, args=(str(tmp_path),), nprocs=2)  # 5 batches: 3 and 2 per process
    alone = spikescope.analyze(conv_net(), DataLoader(TensorDataset(*sequences()), batch_size=8), T=T, run=stepped,
                               membrane=True, neurobench=True).neurobench
    for rank in (0, 1):
        assert json.loads((tmp_path / f"rank{rank}.json").read_text()) == alone


def test_counting_leaves_the_energy_of_the_bundled_model_alone_and_agrees_with_its_sops():
    model, _ = spikescope.load(spikescope.bundled_checkpoint("baseline"))
    batches = list(make_loader(load_dataset("fashion-mnist-sample", "test", limit=8), 4))
    counted = spikescope.analyze(copy.deepcopy(model), batches, neurobench=True)
    plain = spikescope.analyze(model, batches)
    assert counted.energy.equals(plain.energy) and counted.layers.equals(plain.layers)
    assert plain.neurobench == {} and 0 < counted.neurobench["ActivationSparsity"] < 1
    assert counted.neurobench["MembraneUpdates"] is None  # potentials are read with membrane=True only
    # two independent counts of the same events: every spike meets the non-zero weights it reaches (none are zero)
    assert counted.neurobench["SynapticOperations"]["Effective_ACs"] == pytest.approx(
        counted.energy_totals()["sops_per_image"], rel=1e-9)


def test_membrane_updates_of_spikescope_lif_count_the_state_it_keeps_after_a_spike():
    from spikescope.neurons import LIF

    # u = 0.5 u + x, a spike above 0.5 resets u to 0. Neuron a: x = 0.3, 0.4, 0 -> u = 0.3, 0.55 (spike), 0; the
    # state kept: 0.3, 0, 0 (changed at t = 1 only). Neuron b: x = 0, 0, 0.2 -> kept 0, 0, 0.2 (changed at t = 2).
    x = torch.tensor([[[0.3, 0.0]], [[0.4, 0.0]], [[0.0, 0.2]]])  # [T = 3, B = 1, 2]
    result = spikescope.analyze(nn.Sequential(LIF(decay=0.5, threshold=0.5)), [x], T=3, membrane=True,
                                neurobench=True)
    assert result.neurobench == {
        "ActivationSparsity": pytest.approx(5 / 6, rel=1e-12), "MembraneUpdates": 2.0 + 1 + 1,
        "SynapticOperations": {"Effective_MACs": 0.0, "Effective_ACs": 0.0, "Dense": 0.0},
        "ConnectionSparsity": None, "Footprint": 0, "ParameterCount": 0}


def test_membrane_updates_are_none_where_a_potential_cannot_be_read():
    import snn_zoo
    from spikescope.errors import SpikescopeWarning

    images = next(iter(make_loader(IMAGES, 4)))[0]
    with pytest.warns(SpikescopeWarning, match="no membrane statistics"):
        result = spikescope.analyze(snn_zoo.PlainSNN().eval(), [images], membrane=True, neurobench=True)
    assert result.neurobench["MembraneUpdates"] is None  # reference-style neurons: no framework keeps a potential
    assert result.neurobench["SynapticOperations"]["Dense"] > 0 and result.neurobench["ActivationSparsity"] < 1


def test_the_cli_flag_writes_the_metrics_of_the_python_call_to_summary_json(tmp_path):
    from spikescope.cli import main

    assert main(["analyze", "--limit", "8", "--batch-size", "4", "--neurobench", "--membrane",
                 "--out", str(tmp_path / "with")]) == 0
    assert main(["analyze", "--limit", "8", "--batch-size", "4", "--out", str(tmp_path / "without")]) == 0
    model, _ = spikescope.load(spikescope.bundled_checkpoint("baseline"))
    batches = list(make_loader(load_dataset("fashion-mnist-sample", "test", limit=8), 4))
    expected = spikescope.analyze(model, batches, membrane=True, neurobench=True).neurobench
    written = json.loads((tmp_path / "with" / "summary.json").read_text())["neurobench"]
    assert written == json.loads(json.dumps(expected))  # the same pass over the same batches
    assert written["MembraneUpdates"] > 0
    assert json.loads((tmp_path / "without" / "summary.json").read_text())["neurobench"] is None
