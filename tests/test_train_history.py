"""Training writes its history next to the checkpoint, and a finished run can be extended with more epochs."""
import dataclasses

import pandas as pd
import pytest
import torch

from spikescope.checkpoint import read_checkpoint, save_checkpoint
from spikescope.errors import SpikescopeError
from spikescope.train import TrainConfig, cosine_lr, train

SMALL = TrainConfig(data="fashion-mnist-sample", arch_kwargs={"width": 4}, batch_size=32, limit=96, test_limit=64)


def test_history_csv_holds_what_the_checkpoint_holds(tmp_path):
    path = train(dataclasses.replace(SMALL, epochs=2, out=str(tmp_path)), progress=False)
    history = pd.read_csv(tmp_path / "history.csv")
    stored = pd.DataFrame(read_checkpoint(path)["history"])
    assert list(history["epoch"]) == [1, 2]
    pd.testing.assert_frame_equal(history, stored, check_dtype=False)


def test_a_finished_run_extended_by_resume_equals_a_run_planned_with_that_restart(tmp_path):
    first = train(dataclasses.replace(SMALL, epochs=1, out=str(tmp_path / "extended")), progress=False)
    with pytest.raises(SpikescopeError, match="has finished its 1 epochs; pass --epochs N with N > 1"):
        train(resume_from=first, progress=False)
    extended = read_checkpoint(train(resume_from=first, epochs=2, progress=False))
    assert [h["epoch"] for h in extended["history"]] == [1, 2]
    assert extended["train_config"]["epochs"] == 2 and extended["train_config"]["restart_epochs"] == [2]
    assert list(pd.read_csv(tmp_path / "extended" / "history.csv")["epoch"]) == [1, 2]
    planned = read_checkpoint(train(dataclasses.replace(SMALL, epochs=2, restart_epochs=[2],
                                                        out=str(tmp_path / "planned")), progress=False))
    for key, value in planned["state_dict"].items():
        assert torch.equal(extended["state_dict"][key], value), key
    single_cycle = read_checkpoint(train(dataclasses.replace(SMALL, epochs=2, out=str(tmp_path / "one")),
                                         progress=False))
    assert not all(torch.equal(single_cycle["state_dict"][k], v) for k, v in planned["state_dict"].items())


def test_an_unfinished_run_is_resumed_before_it_can_be_extended(tmp_path):
    path = train(dataclasses.replace(SMALL, epochs=2, out=str(tmp_path)), progress=False)
    checkpoint = read_checkpoint(path)
    checkpoint["history"] = checkpoint["history"][:1]
    checkpoint["training_state"]["epoch"] = 1
    save_checkpoint({k: v for k, v in checkpoint.items() if k not in ("format", "format_version",
                                                                       "spikescope_version")}, path)
    with pytest.raises(SpikescopeError, match="stopped at epoch 1 of 2: resume it to the end first"):
        train(resume_from=path, epochs=3, progress=False)


def test_the_learning_rate_is_a_cosine_from_the_peak_to_zero_over_each_cycle():
    assert cosine_lr(0.1, 0, 100) == 0.1
    assert cosine_lr(0.1, 50, 100) == pytest.approx(0.05)
    assert cosine_lr(0.1, 100, 100) == pytest.approx(0.0, abs=1e-18)
    assert cosine_lr(0.1, 25, 100) == pytest.approx(0.1 * (1 + 2 ** -0.5) / 2)


def test_training_never_overwrites_another_run_or_a_file(tmp_path):
    first = train(dataclasses.replace(SMALL, epochs=1, out=str(tmp_path / "run")), progress=False)
    before = first.read_bytes()
    with pytest.raises(SpikescopeError, match="already holds a run .*continue it with --resume"):
        train(dataclasses.replace(SMALL, epochs=1, seed=1, out=str(tmp_path / "run")), progress=False)
    assert first.read_bytes() == before
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SpikescopeError, match="is an existing file"):
        train(dataclasses.replace(SMALL, out=str(tmp_path / "notes.txt")), progress=False)
    with pytest.raises(SpikescopeError, match="cannot be created"):
        train(dataclasses.replace(SMALL, out=str(tmp_path / "notes.txt" / "run")), progress=False)


def test_resuming_brings_history_csv_in_line_with_the_checkpoint_even_when_nothing_is_left_to_train(tmp_path):
    path = train(dataclasses.replace(SMALL, epochs=1, out=str(tmp_path)), progress=False)
    (tmp_path / "history.csv").write_text("epoch\n")  # as a kill between the two writes of the last epoch leaves it
    (tmp_path / ".checkpoint.pt.x1y2z3.tmp").write_bytes(b"half")  # as a kill inside the checkpoint write leaves it
    with pytest.raises(SpikescopeError, match="has finished its 1 epochs"):
        train(resume_from=path, progress=False)
    assert list(pd.read_csv(tmp_path / "history.csv")["epoch"]) == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "history.csv"]


def test_resume_names_the_training_flags_it_ignores(tmp_path):
    import subprocess
    import sys

    path = train(dataclasses.replace(SMALL, epochs=1, out=str(tmp_path)), progress=False)
    result = subprocess.run([sys.executable, "-m", "spikescope", "train", "--resume", str(path), "--epochs", "2",
                             "--lr", "0.5", "--out", str(tmp_path / "elsewhere")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert ("spikescope: warning: --resume continues the run with its own settings; ignored: --lr, --out"
            in result.stderr)
    assert not (tmp_path / "elsewhere").exists()


def test_the_cli_trains_one_fsta_branch_as_asked(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "spikescope", "train", "--data", "fashion-mnist-sample", "--limit",
                             "64", "--test-limit", "32", "--arch-kw", "width=4", "--fsta", "temporal", "--out",
                             str(tmp_path / "run")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    checkpoint = read_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert checkpoint["arch_kwargs"]["fsta"] == "temporal"
    keys = checkpoint["state_dict"].keys()
    assert any(".fsta.time_mixer." in k for k in keys) and not any("frequency_fusion" in k for k in keys)
