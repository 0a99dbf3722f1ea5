import os
import pickle
import subprocess
import sys

import pytest
import torch

from conftest import CreatesAFile
from spikescope.checkpoint import load, read_checkpoint, save_checkpoint
from spikescope.errors import SpikescopeError
from spikescope.models import build


def tiny_checkpoint(**overrides):
    torch.manual_seed(0)
    kwargs = {"width": 4, "T": 2, "fsta": True}
    model = build("compact_cnn", **kwargs)
    return {"arch": "compact_cnn", "arch_kwargs": kwargs, "T": 2,
            "dataset": {"name": "fashion-mnist", "mean": [0.286], "std": [0.353], "num_classes": 10,
                        "input_shape": [1, 28, 28]},
            "train_config": {}, "history": [], "state_dict": model.state_dict(), **overrides}, model


def test_saved_model_loads_with_the_same_outputs(tmp_path):
    checkpoint, model = tiny_checkpoint()
    save_checkpoint(checkpoint, tmp_path / "model.pt")
    loaded, meta = load(tmp_path / "model.pt")
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(loaded(x), model.eval()(x))
    assert meta["format"] == "spikescope-checkpoint" and meta["format_version"] == 1
    assert meta["T"] == 2 and meta["dataset"]["name"] == "fashion-mnist" and "spikescope_version" in meta


def test_a_failed_save_leaves_the_previous_file_untouched_and_no_temporary_file(tmp_path):
    checkpoint, _ = tiny_checkpoint()
    target = tmp_path / "model.pt"
    save_checkpoint(checkpoint, target)
    before = target.read_bytes()
    with pytest.raises(Exception):
        save_checkpoint({**checkpoint, "history": [lambda: None]}, target)  # lambdas cannot be pickled
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.pt"]


@pytest.fixture
def saved(tmp_path):
    checkpoint, _ = tiny_checkpoint()
    return save_checkpoint(checkpoint, tmp_path / "good.pt")


def test_truncated_checkpoint_is_named_as_such(saved, tmp_path):
    cut = tmp_path / "cut.pt"
    cut.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    with pytest.raises(SpikescopeError, match="truncated"):
        read_checkpoint(cut)


def test_random_bytes_are_not_a_checkpoint(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(os.urandom(3000))
    with pytest.raises(SpikescopeError, match="is not a PyTorch checkpoint"):
        read_checkpoint(path)


def test_plain_state_dict_is_not_a_spikescope_checkpoint(tmp_path):
    torch.save(build("compact_cnn", width=4).state_dict(), tmp_path / "weights.pt")
    with pytest.raises(SpikescopeError, match="not a spikescope checkpoint"):
        read_checkpoint(tmp_path / "weights.pt")


def test_unknown_architecture_is_named(tmp_path):
    checkpoint, _ = tiny_checkpoint(arch="transformer9000")
    save_checkpoint(checkpoint, tmp_path / "x.pt")
    with pytest.raises(SpikescopeError, match="unknown architecture 'transformer9000'"):
        load(tmp_path / "x.pt")


def test_mismatched_keys_and_shapes_are_named(tmp_path):
    checkpoint, _ = tiny_checkpoint()
    del checkpoint["state_dict"]["block1.conv.weight"]
    save_checkpoint(checkpoint, tmp_path / "missing.pt")
    with pytest.raises(SpikescopeError, match="1 missing .*block1.conv.weight"):
        load(tmp_path / "missing.pt")
    checkpoint, _ = tiny_checkpoint()
    checkpoint["state_dict"]["block1.conv.weight"] = torch.zeros(1)
    save_checkpoint(checkpoint, tmp_path / "shape.pt")
    with pytest.raises(SpikescopeError, match="block1.conv.weight has shape"):
        load(tmp_path / "shape.pt")


def test_newer_format_is_refused_with_advice(tmp_path):
    checkpoint, _ = tiny_checkpoint()
    save_checkpoint(checkpoint, tmp_path / "x.pt")
    payload = torch.load(tmp_path / "x.pt", weights_only=True)
    torch.save({**payload, "format_version": 99}, tmp_path / "x.pt")
    with pytest.raises(SpikescopeError, match="upgrade spikescope"):
        read_checkpoint(tmp_path / "x.pt")


def test_pickled_objects_are_refused_and_never_run(tmp_path):
    victim = tmp_path / "created-by-unpickling"
    with open(tmp_path / "evil.pt", "wb") as f:
        torch.save({"format": "spikescope-checkpoint", "x": CreatesAFile(victim)}, f, pickle_module=pickle)
    assert not victim.exists()
    with pytest.raises(SpikescopeError, match="pickled Python objects"):
        read_checkpoint(tmp_path / "evil.pt")
    assert not victim.exists()


@pytest.mark.parametrize("content, message", [
    (None, "checkpoint not found"),
    (b"\x00" * 10, "not a"),
    (b"PK\x03\x04garbage", "not a"),
])
def test_cli_reports_bad_checkpoints_in_one_line_with_exit_code_2(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    if content is not None:
        path.write_bytes(content)
    result = subprocess.run([sys.executable, "-m", "spikescope", "evaluate", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_folder_given_as_the_checkpoint_names_the_file_to_pass(tmp_path):
    run = tmp_path / "runs" / "x"
    run.mkdir(parents=True)
    with pytest.raises(SpikescopeError, match=r"x is a folder; pass the checkpoint file inside it \(it holds no .pt"):
        load(run)
    (run / "model_best.pth").write_bytes(b"")
    with pytest.raises(SpikescopeError, match=f"x is a folder; pass the checkpoint file inside it, such as "
                                              f"{run / 'model_best.pth'}$"):
        read_checkpoint(run)
    (run / "checkpoint.pt").write_bytes(b"")
    result = subprocess.run([sys.executable, "-m", "spikescope", "evaluate", str(run)], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == (f"spikescope: error: {run} is a folder; pass the checkpoint file inside it, such as "
                             f"{run / 'checkpoint.pt'}\n")
