"""Paired training resumes without retraining finished runs; tracks of an interrupted run equal an uninterrupted one."""
import dataclasses
import json
import signal
import subprocess
import sys

import pandas as pd
import pytest
import torch

import spikescope
from spikescope.arms import run_folder
from spikescope.checkpoint import read_checkpoint, save_checkpoint
from spikescope.data import load_dataset
from spikescope.errors import SpikescopeError
from spikescope.train import TrainConfig
from test_data import write_idx
from test_kill_resume import LAUNCHER, STEPS_PER_EPOCH, TRAIN_ARGS

TINY = TrainConfig(data="fashion-mnist-sample", arch_kwargs={"width": 4}, batch_size=32, limit=64, test_limit=32,
                   epochs=2)


def test_the_paired_runner_keeps_finished_runs_and_resumes_unfinished_ones(tmp_path):
    arms = ["baseline", "fsta-temporal"]
    first = spikescope.train_arms(TINY, arms, seeds=[0, 1], out=tmp_path, progress=False)
    assert [p.parent.name for p in first["fsta-temporal"]] == ["seed0", "seed1"]
    finished = {p: p.read_bytes() for paths in first.values() for p in paths}
    unfinished = run_folder(tmp_path, "baseline", 1) / "checkpoint.pt"
    state = read_checkpoint(unfinished)  # as if the study had stopped after epoch 1 of this run
    state["history"], state["training_state"]["epoch"] = state["history"][:1], 1
    save_checkpoint({k: v for k, v in state.items() if k not in ("format", "format_version", "spikescope_version")},
                    unfinished)
    again = spikescope.train_arms(TINY, arms, seeds=[0, 1], out=tmp_path, progress=False)
    assert again == first
    for path, data in finished.items():
        if path != unfinished:
            assert path.read_bytes() == data, path  # kept as they were: not retrained
    resumed = read_checkpoint(unfinished)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2] and resumed["training_state"]["epoch"] == 2
    assert unfinished.read_bytes() != finished[unfinished]  # epoch 2 was trained again
    with pytest.raises(SpikescopeError, match="holds a run with other settings \\(lr\\)"):
        spikescope.train_arms(dataclasses.replace(TINY, lr=0.5), arms, seeds=[0], out=tmp_path, progress=False)


def test_paired_arms_share_the_initial_weights_of_every_layer_but_fsta(tmp_path):
    paths = spikescope.train_arms(dataclasses.replace(TINY, epochs=1), ["baseline", "fsta"], seeds=[3],
                                  out=tmp_path, progress=False)
    configs = [read_checkpoint(p[0])["train_config"] for p in paths.values()]
    assert configs[0]["seed"] == configs[1]["seed"] == 3 and (configs[0]["fsta"], configs[1]["fsta"]) == (False, "both")
    initial = {arm: spikescope.initial_model(TrainConfig(**{**config, "out": "x"})).state_dict()
               for arm, config in zip(paths, configs)}
    shared = [k for k in initial["baseline"] if k in initial["fsta"]]
    assert shared and all(torch.equal(initial["baseline"][k], initial["fsta"][k]) for k in shared)


def test_tracks_of_a_run_killed_mid_epoch_and_resumed_equal_those_of_an_uninterrupted_run(tmp_path):
    args = [*TRAIN_ARGS, "--track", "16"]
    whole = subprocess.run([sys.executable, "-m", "spikescope", *args, "--out", str(tmp_path / "whole")],
                           capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr[-2000:]
    killed = subprocess.run([sys.executable, "-c", LAUNCHER, "step", str(STEPS_PER_EPOCH + 5), *args, "--out",
                             str(tmp_path / "killed")], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert sorted(pd.read_csv(tmp_path / "killed" / "tracks.csv")["epoch"].unique()) == [0, 1]
    resumed = subprocess.run([sys.executable, "-m", "spikescope", "train", "--resume",
                              str(tmp_path / "killed" / "checkpoint.pt")], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    expected = pd.read_csv(tmp_path / "whole" / "tracks.csv")
    assert sorted(expected["epoch"].unique()) == [0, 1, 2, 3] and set(expected["layer"]) == {
        f"block{i}.lif" for i in range(1, 6)}
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "killed" / "tracks.csv"), expected, check_exact=True)
    stored = pd.DataFrame(read_checkpoint(tmp_path / "whole" / "checkpoint.pt")["tracks"])
    pd.testing.assert_frame_equal(stored, expected, check_dtype=False)


def train_arms_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "spikescope", "train-arms", "--data", "fashion-mnist-sample",
                           "--limit", "64", "--test-limit", "32", "--epochs", "1", "--arch-kw", "width=4",
                           *map(str, args)], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("args, message", [
    (["--arms", "baseline", "--seeds", "1"], "--arms baseline --seeds 1 trains one model: nothing to compare"),
    (["--arms", "baseline,baseline"], "--arms names baseline twice; name each arm once"),
    (["--compare-limit", "0"], "argument --compare-limit: must be at least 1, got 0"),
    (["--lr", "0"], "--lr must be positive"),
])
def test_train_arms_refuses_what_cannot_be_compared_before_any_training(tmp_path, args, message):
    result = train_arms_cli(*args, "--out", tmp_path / "arms")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "arms").exists()  # nothing was trained


def test_train_arms_checks_the_comparison_folder_before_any_training(tmp_path):
    (tmp_path / "arms" / "comparison").mkdir(parents=True)
    (tmp_path / "arms" / "comparison" / "notes.txt").write_text("mine")
    result = train_arms_cli("--out", tmp_path / "arms")
    assert result.returncode == 2 and "comparison is a non-empty folder that is not a spikescope report" in (
        result.stderr), result.stderr
    assert sorted(p.name for p in (tmp_path / "arms").iterdir()) == ["comparison"]  # no run was started


def test_the_library_refuses_a_repeated_arm(tmp_path):
    with pytest.raises(SpikescopeError, match="--arms names fsta twice"):
        spikescope.train_arms(TINY, ["fsta", "baseline", "fsta"], seeds=[0], out=tmp_path / "arms", progress=False)
    assert not (tmp_path / "arms").exists()


def test_train_arms_compares_on_the_data_under_its_data_root(tmp_path):
    sample = load_dataset("fashion-mnist-sample", "test")
    root = tmp_path / "data"  # a Fashion-MNIST of its own: 200 training images and 20 test images
    root.mkdir()
    for split, part in (("train", slice(0, 200)), ("t10k", slice(200, 220))):
        write_idx(root / f"{split}-images-idx3-ubyte.gz", sample.images[part, 0].numpy())
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", sample.labels[part].numpy())
    result = subprocess.run([sys.executable, "-m", "spikescope", "train-arms", "--data", "fashion-mnist",
                             "--data-root", root, "--limit", "64", "--epochs", "1", "--arch-kw", "width=4",
                             "--seeds", "1", "--compare-limit", "50", "--out", tmp_path / "arms"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "arms" / "comparison" / "comparison.json").read_text())
    assert summary["samples"] == 20  # the 20 test images under --data-root, not the installed dataset's 50
