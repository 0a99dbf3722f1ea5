"""`spikescope analyze` end to end: what it accepts, what it writes, and how it refuses bad input."""
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import snn_zoo
from conftest import CreatesAFile, write_cifar10
from spikescope.checkpoint import bundled_checkpoint
from spikescope.cli import build_parser

TESTS = Path(__file__).parent
OUTPUTS = {"report.html", "plotly.min.js", "layers.csv", "timesteps.csv", "energy.csv", "spectra.npz",
           "similarity.npz", "summary.json"}


def spikescope(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    return subprocess.run([sys.executable, "-m", "spikescope", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd)


def error_line(stderr: str) -> str:
    """The one "spikescope: error:" line of a refused command's stderr ("spikescope analyze: error:" from the
    argument parser; progress bars may come before it); fails on a traceback or a second error line."""
    errors = [line for line in stderr.splitlines() if re.match(r"spikescope( [\w-]+)?: error: ", line)]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    return errors[0]


def test_analyze_without_arguments_reports_the_bundled_model_on_the_bundled_sample(in_tmp):
    result = spikescope("analyze", "--limit", "200", "--png")
    assert result.returncode == 0, result.stderr
    out = in_tmp / "reports" / "compact_cnn_baseline"
    assert OUTPUTS <= {p.name for p in out.iterdir()}
    assert {p.name for p in (out / "figures").iterdir()} == {
        "firing_rate.png", "channel_firing_rate.png", "orientation_by_depth.png", "spectra.png", "similarity.png"}
    layers = pd.read_csv(out / "layers.csv")
    assert list(layers["layer"]) == [f"block{i}.lif" for i in range(1, 6)]
    assert len(pd.read_csv(out / "timesteps.csv")) == 10
    summary = json.loads((out / "summary.json").read_text())
    assert summary["samples"] == 200 and summary["T"] == 2 and summary["accuracy"] > 0.8
    assert "firing_rate" in summary["definitions"] and summary["units"]["energy_pj_per_image"] == "picojoules"
    assert summary["energy"]["total_per_image"]["energy_pj_per_image"] > 0
    spectra = np.load(out / "spectra.npz")
    assert spectra["block1.lif"].shape == (2, 28, 28)
    assert np.load(out / "similarity.npz")["block3.lif:spike_cosine"].shape == (2, 2)
    assert "block5.lif" in result.stdout
    assert f"report: {Path('reports/compact_cnn_baseline/report.html')}" in result.stdout


def test_help_shows_examples():
    result = spikescope("analyze", "--help")
    assert result.returncode == 0 and "examples:" in result.stdout and "--trust-pickle" in result.stdout


def test_a_plain_state_dict_of_a_spikingjelly_network_with_arch_and_T(tmp_path):
    pytest.importorskip("spikingjelly")
    torch.save(snn_zoo.spikingjelly_classifier().state_dict(), tmp_path / "weights.pt")
    result = spikescope("analyze", tmp_path / "weights.pt", "--arch", "snn_zoo:spikingjelly_classifier", "--T", 3,
                        "--time-first-input", "--data", "fashion-mnist-sample", "--limit", 50, "--out", tmp_path / "r")
    assert result.returncode == 0, result.stderr
    layers = pd.read_csv(tmp_path / "r" / "layers.csv", dtype={"layer": str})
    assert list(layers["layer"]) == ["2"] and list(layers["found_by"]) == ["SpikingJelly neuron"]
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["T"] == 3


def test_a_state_dict_without_arch_says_what_to_pass(tmp_path):
    torch.save(snn_zoo.PlainSNN().state_dict(), tmp_path / "weights.pt")
    result = spikescope("analyze", tmp_path / "weights.pt", "--out", tmp_path / "r")
    assert result.returncode == 2 and "pass --arch" in result.stderr and not (tmp_path / "r").exists()


def test_a_whole_pickled_model_needs_trust_pickle_and_then_works_with_a_warning(tmp_path):
    torch.save(snn_zoo.PlainSNN(), tmp_path / "model.pt")
    refused = spikescope("analyze", tmp_path / "model.pt", "--data", "fashion-mnist-sample", "--out", tmp_path / "r")
    assert refused.returncode == 2 and "--trust-pickle" in refused.stderr and not (tmp_path / "r").exists()
    trusted = spikescope("analyze", tmp_path / "model.pt", "--trust-pickle", "--data", "fashion-mnist-sample",
                         "--limit", 40, "--out", tmp_path / "r")
    assert trusted.returncode == 0, trusted.stderr
    assert "warning: --trust-pickle: unpickling" in trusted.stderr
    assert list(pd.read_csv(tmp_path / "r" / "layers.csv")["layer"]) == ["stage1.1", "stage2.1"]


def test_a_pickle_that_would_create_a_file_is_refused_and_the_file_never_appears(tmp_path):
    victim = tmp_path / "created-by-unpickling"
    with open(tmp_path / "evil.pt", "wb") as f:
        torch.save({"model": CreatesAFile(victim)}, f, pickle_module=pickle)
    assert not victim.exists()
    result = spikescope("analyze", tmp_path / "evil.pt", "--out", tmp_path / "r")
    assert result.returncode == 2 and "--trust-pickle" in result.stderr
    assert not victim.exists() and not (tmp_path / "r").exists()


def bad_inputs(tmp_path):
    good = bundled_checkpoint("baseline").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(good[: len(good) // 3])
    (tmp_path / "text.pt").write_text("not a checkpoint")
    wrong = torch.load(bundled_checkpoint("baseline"), weights_only=True)
    wrong["state_dict"].pop("block3.bn.weight")
    torch.save(wrong, tmp_path / "wrong_keys.pt")
    torch.save(snn_zoo.linear_classifier().state_dict(), tmp_path / "ann.pt")
    torch.save(snn_zoo.plain_snn().state_dict(), tmp_path / "plain.pt")
    write_cifar10(tmp_path / "cifar-10-batches-py")
    return {
        "missing file": (["analyze", tmp_path / "nope.pt"], "checkpoint not found"),
        "not a checkpoint": (["analyze", tmp_path / "text.pt"], "text.pt is not a PyTorch checkpoint: it looks like a "
                                                                "text file"),
        "truncated": (["analyze", tmp_path / "truncated.pt"], "truncated.pt is truncated or corrupt: not a complete "
                                                              "PyTorch checkpoint"),
        "wrong keys": (["analyze", tmp_path / "wrong_keys.pt"], "1 missing (e.g. block3.bn.weight)"),
        "unknown layer": (["analyze", "--layers", "block1.lif,conv9"], "no module named 'conv9'; spiking layers "
                                                                     "found: block1.lif, block2.lif"),
        "no layer matches": (["analyze", "--layers", "fc.*", "--limit", 10], "available: block1.lif"),
        "no spiking layer": (["analyze", tmp_path / "ann.pt", "--arch", "snn_zoo:linear_classifier", "--T", 2,
                              "--data", "fashion-mnist-sample"], "no spiking layer found"),
        "data missing": (["analyze", "--data", "fashion-mnist", "--data-root", tmp_path], "not found in"),
        "data of the wrong shape": (["analyze", tmp_path / "plain.pt", "--arch", "snn_zoo:plain_snn", "--data",
                                     "cifar10", "--data-root", tmp_path], "cannot run on cifar10 images"),
        "cuda missing": (["analyze", "--device", "cuda"], "no CUDA GPU"),
        "no layer named": (["analyze", "--layers", ","], "--layers ',' names no layer"),
        "device gpu": (["analyze", "--device", "gpu"], "unknown device 'gpu'; devices available here: cpu"),
        "device mps": (["analyze", "--device", "mps"], "--device mps: spikescope keeps its statistics in float64, "
                                                       "which Apple's MPS backend does not support"),
        "cifar default root": (["analyze", tmp_path / "plain.pt", "--arch", "snn_zoo:plain_snn", "--data", "cifar100"],
                               f"CIFAR-100 file test not found in {Path('data').absolute()}, the default data root"),
    }


def test_every_bad_input_ends_in_one_line_exit_code_2_and_no_output(tmp_path):
    for case, (args, message) in bad_inputs(tmp_path).items():
        if case == "cuda missing" and torch.cuda.is_available():
            continue
        result = spikescope(*args, "--out", tmp_path / "out")
        assert result.returncode == 2, (case, result.stderr)
        line = error_line(result.stderr)
        assert line.startswith("spikescope: error: ") and message in line, (case, result.stderr)
        assert len(line) < 400 and "PytorchStreamReader" not in result.stderr, (case, result.stderr)
        assert not (tmp_path / "out").exists(), case


@pytest.mark.parametrize("command", [["train", "--data", "fashion-mnist-sample"], ["evaluate"], ["analyze"]])
def test_every_command_names_the_devices_that_work_when_given_one_that_does_not(tmp_path, command):
    out = [] if command[0] == "evaluate" else ["--out", tmp_path / "x"]
    result = spikescope(*command, "--device", "gpu", *out)
    assert result.returncode == 2
    assert "unknown device 'gpu'; devices available here: cpu" in error_line(result.stderr)


def test_a_limit_beyond_the_dataset_says_how_many_images_were_used(tmp_path):
    result = spikescope("analyze", "--limit", 5000, "--out", tmp_path / "r")
    assert result.returncode == 0, result.stderr
    assert ("spikescope: note: the first 5,000 images of fashion-mnist-sample were asked for, but it has "
            "1,000; all 1,000 are used" in result.stderr)
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["samples"] == 1000


@pytest.mark.parametrize("command, flag, value", [
    ("analyze", "--limit", "0"), ("analyze", "--batch-size", "0"), ("analyze", "--T", "0"),
    ("analyze", "--attribution-samples", "0"), ("evaluate", "--limit", "-3"), ("attribute", "--samples", "0"),
    ("attribute", "--T", "0"), ("compare", "--limit", "0"), ("train", "--epochs", "0"), ("train", "--test-limit", "0"),
    ("train", "--track", "-1"), ("train-arms", "--seeds", "0"), ("train-arms", "--compare-limit", "0"),
    ("train-arms", "--limit", "0"), ("train-arms", "--batch-size", "0")])
def test_every_count_flag_is_refused_while_parsing_in_a_line_that_names_it(capsys, command, flag, value):
    with pytest.raises(SystemExit) as exit_:
        build_parser()[0].parse_args([command, flag, value])
    minimum = 0 if flag == "--track" else 1
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (f"spikescope {command}: error: argument {flag}: must be at least {minimum}, "
                                       f"got {value} (see --help)\n")


def test_data_with_other_labels_than_the_model_was_trained_on_warns_that_accuracy_is_meaningless(tmp_path):
    result = spikescope("analyze", bundled_checkpoint("baseline"), "--data", "gratings", "--limit", 50, "--out",
                        tmp_path / "r")
    assert result.returncode == 0, result.stderr
    message = "gratings has other labels (3 classes) than fashion-mnist, which the model was trained on"
    assert f"spikescope: warning: {message}" in result.stderr
    assert any(message in w for w in json.loads((tmp_path / "r" / "summary.json").read_text())["warnings"])
    same = spikescope("analyze", bundled_checkpoint("baseline"), "--data", "fashion-mnist-sample", "--limit", 50,
                      "--out", tmp_path / "r2")
    assert same.returncode == 0 and "warning" not in same.stderr, same.stderr


def test_the_cli_leaves_pythons_warning_display_as_it_found_it(tmp_path):
    import warnings

    from spikescope.cli import main

    before = warnings.showwarning
    assert main(["analyze", "--limit", "10", "--out", str(tmp_path / "r")]) == 0
    assert warnings.showwarning is before
