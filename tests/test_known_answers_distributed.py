"""Reductions with known answers: every metric's states merged from two halves equal one pass over the whole
(counts and maxima bit for bit), and across two processes sums add while maxima take the larger value, with the
neutral value of a maximum (not 0) where a process never saw a layer."""
import os
import pickle
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from spikescope.checkpoint import bundled_checkpoint, load
from spikescope.data import load_dataset, make_loader
from spikescope.distributed import all_reduce_states
from spikescope.metrics.cka import TimestepCKA
from spikescope.metrics.energy import Energy
from spikescope.metrics.firing import FiringRate
from spikescope.metrics.membrane import MembranePotential
from spikescope.metrics.sam import SpikeActivationMap
from spikescope.metrics.spectrum import Spectrum
from spikescope.metrics.temporal import TemporalSimilarity
from spikescope.record import SpikeRecorder

IMAGES = next(iter(make_loader(load_dataset("fashion-mnist-sample", "test", limit=24), 24)))[0]


def all_metrics() -> list:
    return [FiringRate(), Spectrum(), TemporalSimilarity(), TimestepCKA(), Energy(), MembranePotential(),
            SpikeActivationMap()]


def measured(model, images: torch.Tensor) -> list:
    metrics = all_metrics()
    with torch.no_grad(), SpikeRecorder(model, metrics=metrics, membrane=True):
        model(images)
    return metrics


def assert_same_states(merged, whole) -> None:
    """Counts and maxima equal bit for bit; float sums to the rounding of the float32 sums some metrics take
    within a batch (DCT power, SAM) before they add them in float64."""
    assert merged.states.keys() == whole.states.keys() and merged.states
    for layer, states in whole.states.items():
        for name, value in states.items():
            if name in type(whole).float_sums:
                torch.testing.assert_close(merged.states[layer][name], value, rtol=1e-6, atol=1e-9)
            else:
                assert torch.equal(merged.states[layer][name], value), (type(whole).__name__, layer, name)


def test_every_metric_merged_from_two_halves_equals_one_pass_over_the_whole():
    model, _ = load(bundled_checkpoint("baseline"), torch.device("cpu"))
    whole, first, second = measured(model, IMAGES), measured(model, IMAGES[:10]), measured(model, IMAGES[10:])
    for a, b, w in zip(first, second, whole):
        assert_same_states(a.merge(b), w)
    firing = whole[0].states["block1.lif"]["ever_fired"]
    assert firing.max() == 1 and int(firing.sum()) > 0  # a maximum: 1 however many halves saw the neuron fire
    assert sorted(set(Energy.reductions.values())) == ["max", "sum"]  # the layer kind is a maximum too


REDUCTIONS = {"count": "sum", "peak": "max", "seen": "max", "total": "sum"}


def hand_made(rank: int) -> dict[str, dict[str, torch.Tensor]]:
    """States of process `rank`: a shared layer, and on process 0 alone a layer whose maximum is negative."""
    states = {"shared": {"count": torch.tensor([rank + 1, 10 * (rank + 1)]),
                         "peak": torch.tensor([-5.0 + rank, -1.0 - rank], dtype=torch.float64),
                         "seen": torch.tensor([rank, 0, 1 - rank], dtype=torch.uint8),
                         "total": torch.tensor([0.5 * (rank + 1)], dtype=torch.float64)}}
    if rank == 0:
        states["only process 0"] = {"count": torch.tensor([3]), "peak": torch.tensor([-7.0], dtype=torch.float64),
                                    "seen": torch.tensor([1], dtype=torch.uint8),
                                    "total": torch.tensor([2.5], dtype=torch.float64)}
    return states


def spikes(rank: int | None = None) -> torch.Tensor:
    """`[T=3, B=8, C=2, 4, 4]` spikes; process r takes samples 4r..4r+3."""
    x = (torch.rand(3, 8, 2, 4, 4, generator=torch.Generator().manual_seed(5)) < 0.3).float()
    return x if rank is None else x[:, 4 * rank:4 * rank + 4]


def _worker(rank: int, port: int, folder: str) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    firing = FiringRate()
    firing.update("l", spikes(rank))
    outcome = {"hand_made": all_reduce_states(hand_made(rank), REDUCTIONS), "firing": firing.all_reduce().states}
    with open(os.path.join(folder, f"rank{rank}.pkl"), "wb") as f:
        pickle.dump(outcome, f)
    dist.destroy_process_group()


def test_two_processes_add_sums_and_take_the_larger_maximum_with_a_negative_maximum_kept(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(port, str(tmp_path)), nprocs=2)
    alone = FiringRate()
    alone.update("l", spikes())
    for rank in (0, 1):
        outcome = pickle.loads((tmp_path / f"rank{rank}.pkl").read_bytes())
        shared, only = outcome["hand_made"]["shared"], outcome["hand_made"]["only process 0"]
        assert shared["count"].tolist() == [3, 30] and shared["total"].tolist() == [1.5]
        assert shared["peak"].tolist() == [-4.0, -1.0] and shared["seen"].tolist() == [1, 0, 1]
        assert only["count"].tolist() == [3] and only["peak"].tolist() == [-7.0]  # not max(-7, 0)
        assert only["seen"].tolist() == [1] and only["total"].tolist() == [2.5]
        for name, value in alone.states["l"].items():
            assert torch.equal(outcome["firing"]["l"][name], value), name
    assert int(alone.states["l"]["ever_fired"].max()) == 1


@pytest.mark.parametrize("metric", all_metrics(), ids=lambda m: type(m).__name__)
def test_every_state_declares_a_sum_or_a_max(metric):
    assert set(metric.reductions.values()) <= {"sum", "max"}
    assert set(type(metric).float_sums) <= {n for n, how in metric.reductions.items() if how == "sum"}
