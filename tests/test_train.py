import subprocess
import sys

import pytest
import torch

from conftest import write_cifar10
from spikescope.checkpoint import read_checkpoint
from spikescope.pipeline import evaluate_checkpoint
from spikescope.train import TrainConfig, train

SMALL = dict(data="fashion-mnist-sample", arch_kwargs={"width": 4}, batch_size=32, test_limit=200)


def test_short_training_learns_and_writes_a_complete_checkpoint(tmp_path):
    path = train(TrainConfig(**SMALL, epochs=2, limit=600, lr=3e-3, out=str(tmp_path)), progress=False)
    checkpoint = read_checkpoint(path)
    assert [h["epoch"] for h in checkpoint["history"]] == [1, 2]
    last = checkpoint["history"][-1]
    assert last["test_accuracy"] > 0.5  # ten classes: chance is 0.1
    assert 0 < last["test_firing_rate"] < 1
    assert checkpoint["train_config"]["seed"] == 0 and checkpoint["T"] == 2
    assert checkpoint["training_state"]["epoch"] == 2
    again = evaluate_checkpoint(path, limit=200)
    assert again["accuracy"] == pytest.approx(last["test_accuracy"])


def test_training_is_deterministic_for_a_seed(tmp_path):
    def weights(seed, folder):
        config = TrainConfig(**SMALL, epochs=1, limit=128, seed=seed, fsta=True, out=str(tmp_path / folder))
        return read_checkpoint(train(config, progress=False))["state_dict"]

    a, b, c = weights(1, "a"), weights(1, "b"), weights(2, "c")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def spikescope(*args):
    return [sys.executable, "-m", "spikescope", *args]


def test_train_help_shows_examples_and_bad_flags_fail_in_one_line(tmp_path):
    help_text = subprocess.run(spikescope("train", "--help"), capture_output=True, text=True).stdout
    assert "examples:" in help_text and "--resume" in help_text
    for flags, message in ((["--epochs", "zero"], "argument --epochs: expected a whole number, got 'zero'"),
                           (["--T", "0"], "argument --T: must be at least 1, got 0"),
                           (["--lr", "-1"], "--lr must be positive"),
                           (["--label-smoothing", "2"], "--label-smoothing must be in [0, 1)"),
                           (["--arch-kw", "width=-1"], "cannot build 'compact_cnn'")):
        result = subprocess.run(spikescope("train", "--data", "fashion-mnist-sample", "--out", str(tmp_path / "r"),
                                           *flags), capture_output=True, text=True)
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
        assert not (tmp_path / "r").exists()


def test_a_moved_run_resumes_into_its_new_folder(tmp_path):
    first = train(TrainConfig(**SMALL, epochs=2, limit=64, out=str(tmp_path / "old")), progress=False)
    checkpoint = read_checkpoint(first)
    checkpoint["history"] = checkpoint["history"][:1]
    checkpoint["training_state"]["epoch"] = 1
    from spikescope.checkpoint import save_checkpoint

    moved = save_checkpoint({k: v for k, v in checkpoint.items() if k not in ("format", "format_version",
                                                                               "spikescope_version")},
                            tmp_path / "new" / "checkpoint.pt")
    (tmp_path / "old" / "checkpoint.pt").unlink()
    resumed = train(TrainConfig(), resume_from=moved, progress=False)
    assert resumed == moved and [h["epoch"] for h in read_checkpoint(resumed)["history"]] == [1, 2]
    assert not (tmp_path / "old" / "checkpoint.pt").exists()


def test_missing_data_ends_training_with_a_one_line_error(tmp_path):
    result = subprocess.run(spikescope("train", "--data", "cifar10", "--data-root", str(tmp_path), "--out",
                                       str(tmp_path / "run")), capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("spikescope: error: CIFAR-10 file data_batch_1 not found")
    assert not (tmp_path / "run").exists()


def test_the_default_architecture_takes_its_input_size_channels_and_classes_from_cifar(tmp_path):
    write_cifar10(tmp_path / "cifar", images_per_batch=4)  # 3x32x32 images, 20 to train on
    result = subprocess.run(spikescope("train", "--data", "cifar10", "--data-root", str(tmp_path / "cifar"),
                                       "--arch-kw", "width=4", "--batch-size", "20", "--out", str(tmp_path / "run")),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    checkpoint = read_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert checkpoint["arch"] == "compact_cnn" and checkpoint["dataset"]["input_shape"] == [3, 32, 32]
    assert {k: checkpoint["arch_kwargs"][k] for k in ("in_channels", "num_classes", "image_size")} == {
        "in_channels": 3, "num_classes": 10, "image_size": 32}
    assert checkpoint["state_dict"]["classifier.weight"].shape == (10, 16 * 8 * 8)  # 4 * width channels at 32 / 4
    assert evaluate_checkpoint(tmp_path / "run" / "checkpoint.pt", data_root=tmp_path / "cifar")["samples"] == 4
