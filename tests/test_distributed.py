"""Several processes: analysis under torchrun writes the tables one process writes, and training with
DistributedDataParallel keeps every process's weights equal and resumes bit for bit.

Every run uses 2 CPU processes (gloo) with OMP_NUM_THREADS=1, on a free port of 127.0.0.1.
"""
import json
import os
import pickle
import socket
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import spikescope
from spikescope import distributed
from spikescope.checkpoint import read_checkpoint
from spikescope.data import load_dataset, make_loader
from spikescope.errors import SpikescopeError
from spikescope.metrics import FiringRate

CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args, env=None):
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr", "127.0.0.1",
               "--master_port", str(free_port()), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env={**CHILD_ENV, **(env or {})}, timeout=300)


def spikescope_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "spikescope", *map(str, args)], capture_output=True, text=True,
                          env={**CHILD_ENV, **(env or {})}, timeout=300)


# --- analysis ------------------------------------------------------------------------------------------------

ANALYZE = ["analyze", "--data", "fashion-mnist-sample", "--limit", 400, "--batch-size", 50, "--energy", "lemaire2022"]
TABLES = ("layers.csv", "timesteps.csv", "channels.csv", "energy.csv")
COUNTS = {  # columns computed from counts and maxima only: equal bit for bit
    "layers.csv": ["neurons", "samples", "T", "spikes", "firing_rate", "silent_fraction", "similarity_left_out_max"],
    "timesteps.csv": ["firing_rate"],
    "channels.csv": ["firing_rate", "silent_fraction", "silent"],
    "energy.csv": ["input_firing_rate", "sops_per_image", "sops_approx_per_image", "macs_per_image",
                   "dense_ops_per_image", "energy_pj_per_image", "energy_ops_pj_per_image",
                   "energy_addressing_pj_per_image", "energy_inout_pj_per_image", "energy_params_pj_per_image",
                   "energy_potentials_pj_per_image", "ann_macs_per_image", "ann_energy_pj_per_image"],
}


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """The same 400 images analysed by one process and by two (once for this module)."""
    root = tmp_path_factory.mktemp("reports")
    one = spikescope_cli(*ANALYZE, "--out", root / "one")
    assert one.returncode == 0, one.stderr[-3000:]
    two = torchrun("-m", "spikescope", *ANALYZE, "--out", root / "two")
    assert two.returncode == 0, two.stderr[-3000:]
    return root, two


def test_two_processes_write_the_tables_of_one_process(reports):
    """Under the memory-aware model, whose neuron rows come from the spiking layers' own states."""
    root, _ = reports
    assert (pd.read_csv(root / "two" / "energy.csv")["kind"] == "neuron").sum() == 5
    for name in TABLES:
        one, two = pd.read_csv(root / "one" / name), pd.read_csv(root / "two" / name)
        pd.testing.assert_frame_equal(two, one, check_exact=False, rtol=1e-12)
        for column in COUNTS[name]:
            assert np.array_equal(two[column], one[column], equal_nan=True), (name, column)
    for name in ("spectra.npz", "similarity.npz"):
        one, two = np.load(root / "one" / name), np.load(root / "two" / name)
        assert sorted(one) == sorted(two)
        for key in one:
            np.testing.assert_allclose(two[key], one[key], rtol=1e-12, err_msg=f"{name}:{key}")
    one, two = np.load(root / "one" / "spikes.npz"), np.load(root / "two" / "spikes.npz")
    assert sorted(one) == sorted(two) and all(np.array_equal(one[k], two[k]) for k in one)


def test_each_of_two_processes_analyses_half_the_images_and_rank_0_alone_reports(reports):
    root, two = reports
    summary = json.loads((root / "two" / "summary.json").read_text())
    single = json.loads((root / "one" / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["samples_per_process"] == [200, 200]
    assert summary["samples"] == single["samples"] == 400 and summary["accuracy"] == single["accuracy"]
    assert single["processes"] == 1 and single["samples_per_process"] == [400]
    assert two.stdout.count("report: ") == 1 and "400 samples (2 processes: 200 + 200)" in two.stdout
    assert sorted(os.listdir(root)) == ["one", "two"]  # no staging folder of another process


def test_fewer_batches_than_processes_is_a_one_line_error_in_every_process(tmp_path):
    result = torchrun("-m", "spikescope", "analyze", "--data", "fashion-mnist-sample", "--limit", 50, "--batch-size",
                      50, "--out", tmp_path / "r")
    assert result.returncode != 0
    message = "the data loader yielded fewer batches (1) than there are processes (2)"
    assert f"spikescope: error: {message}" in result.stderr  # process 0
    assert f"spikescope: error (process 1 of 2): {message}" in result.stderr
    assert "lower --batch-size or the number of processes" in result.stderr
    assert os.listdir(tmp_path) == []


def test_commands_that_run_in_one_process_refuse_torchrun():
    result = spikescope_cli("compare", "a.pt", "b.pt", env={"WORLD_SIZE": "2"})
    assert result.returncode == 2
    assert result.stderr == ("spikescope: error: spikescope compare runs in one process, not under torchrun: run the "
                             "same command without torchrun (spikescope compare a.pt b.pt)\n")


def _api_worker(rank: int, port: int, folder: str) -> None:
    """One of two processes calling the Python API under a gloo process group; saves what it saw."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    model, _ = spikescope.load(spikescope.bundled_checkpoint("baseline"))
    loader = make_loader(load_dataset("fashion-mnist-sample", "test", limit=300), 50)
    result = spikescope.analyze(model, loader, capture=60)  # 60 samples: batch 0 (process 0) and 10 of batch 1

    seen_once = FiringRate()
    if rank == 0:
        seen_once.update("only process 0", torch.ones(2, 3, 4))
    seen_once.all_reduce()

    outcome = {"result": result, "seen_once": seen_once.state_dict()}
    bad = [batch for batch in loader]
    bad[3] = "not a batch"  # batch 3 goes to process 1
    try:
        spikescope.analyze(model, bad)
    except SpikescopeError as error:
        outcome["failure"] = str(error)
    try:
        spikescope.train(spikescope.TrainConfig(data="fashion-mnist-sample", batch_size=63, out=f"{folder}/run"))
    except SpikescopeError as error:
        outcome["batch_size"] = str(error)
    with torch.no_grad():
        model.classifier.bias[0] += rank
    try:
        distributed.check_same_weights(model, "on purpose")
    except RuntimeError as error:
        outcome["diverged"] = str(error)
    with open(os.path.join(folder, f"rank{rank}.pkl"), "wb") as f:
        pickle.dump(outcome, f)
    dist.destroy_process_group()


def test_the_python_api_under_a_process_group_returns_the_single_process_result_in_every_process(tmp_path):
    mp.spawn(_api_worker, args=(free_port(), str(tmp_path)), nprocs=2)
    model, _ = spikescope.load(spikescope.bundled_checkpoint("baseline"))
    alone = spikescope.analyze(model, make_loader(load_dataset("fashion-mnist-sample", "test", limit=300), 50),
                               capture=60)
    for rank in (0, 1):
        outcome = pickle.loads((tmp_path / f"rank{rank}.pkl").read_bytes())
        result = outcome["result"]
        for name in ("layers", "timesteps", "channels", "energy"):
            pd.testing.assert_frame_equal(getattr(result, name), getattr(alone, name), check_exact=False, rtol=1e-12)
        assert result.info["samples_per_process"] == [150, 150] and result.info["accuracy"] == alone.info["accuracy"]
        assert result.captured.keys() == alone.captured.keys()
        assert all(np.array_equal(result.captured[k], alone.captured[k]) for k in alone.captured)  # the first 60
        assert result.captured["block1.lif"].shape[1] == 60
        assert outcome["seen_once"]["only process 0"]["samples"] == 3  # a layer one process never saw still reduces
        assert ("failure" in outcome and "each batch must be" in outcome["failure"]) == (rank == 1)
        assert rank == 1 or outcome["failure"].startswith("process 1 of 2 failed while analyzing its batches")
        assert outcome["batch_size"].startswith("--batch-size 63 (the global batch) does not split evenly among 2")
        assert "training diverged" in outcome["diverged"]
    assert not (tmp_path / "run").exists()


# --- training ------------------------------------------------------------------------------------------------

TRAIN = ["train", "--data", "fashion-mnist-sample", "--limit", 256, "--test-limit", 128, "--batch-size", 64,
         "--arch-kw", "width=4", "--epochs", 2]  # 4 optimizer steps per epoch, 32 images per process per step

# Runs `spikescope.cli.main(args)`; every process then saves the parameters its optimizer holds, and with
# STOP_AT_STEP=k every process exits at its k-th optimizer step (before it changes any weight).
LAUNCHER = r"""
import os, sys
import torch
from spikescope import cli

stop, seen = int(os.environ.get("STOP_AT_STEP", "0")), {"steps": 0, "optimizer": None}
adam_step = torch.optim.Adam.step


def step(self, *args, **kwargs):
    seen["steps"] += 1
    seen["optimizer"] = self
    if seen["steps"] == stop:
        os._exit(3)
    return adam_step(self, *args, **kwargs)


torch.optim.Adam.step = step
code = cli.main(sys.argv[1:])
parameters = [p.detach().clone() for group in seen["optimizer"].param_groups for p in group["params"]]
torch.save(parameters, os.path.join(os.environ["DUMP"], f"rank{os.environ['RANK']}.pt"))
sys.exit(code)
"""


@pytest.fixture(scope="module")
def launcher(tmp_path_factory):
    path = tmp_path_factory.mktemp("launcher") / "launch.py"
    path.write_text(LAUNCHER)
    return path


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, launcher):
    """A 2-process run of 2 epochs trained in one go, with each process's final parameters in rank<r>.pt."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    result = torchrun(launcher, *TRAIN, "--out", folder / "run", env={"DUMP": str(folder)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("checkpoint: ") == 1
    return folder


def test_two_training_processes_end_with_identical_weights_and_rank_0_writes_the_run(uninterrupted):
    ranks = [torch.load(uninterrupted / f"rank{r}.pt") for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) > 0 and all(torch.equal(a, b) for a, b in zip(*ranks))
    checkpoint = read_checkpoint(uninterrupted / "run" / "checkpoint.pt")
    model, _ = spikescope.load(uninterrupted / "run" / "checkpoint.pt")
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), ranks[0]))
    assert [h["epoch"] for h in checkpoint["history"]] == [1, 2] and checkpoint["training_state"]["processes"] == 2
    assert sorted(os.listdir(uninterrupted / "run")) == ["checkpoint.pt", "history.csv"]


def test_a_two_process_run_stopped_in_epoch_2_resumes_under_torchrun_to_the_same_weights_and_extends(
        tmp_path, launcher, uninterrupted):
    stopped = torchrun(launcher, *TRAIN, "--out", tmp_path / "run", env={"DUMP": str(tmp_path), "STOP_AT_STEP": "6"})
    assert stopped.returncode != 0
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    assert [h["epoch"] for h in read_checkpoint(checkpoint)["history"]] == [1]

    resumed = torchrun("-m", "spikescope", "train", "--resume", checkpoint)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    weights = read_checkpoint(checkpoint)["state_dict"]
    expected = read_checkpoint(uninterrupted / "run" / "checkpoint.pt")["state_dict"]
    assert weights.keys() == expected.keys() and all(torch.equal(weights[k], expected[k]) for k in expected)

    extended = torchrun("-m", "spikescope", "train", "--resume", checkpoint, "--epochs", 3)
    assert extended.returncode == 0, extended.stderr[-3000:]
    state = read_checkpoint(checkpoint)
    assert [h["epoch"] for h in state["history"]] == [1, 2, 3] and state["train_config"]["restart_epochs"] == [3]
    assert len(pd.read_csv(tmp_path / "run" / "history.csv")) == 3
