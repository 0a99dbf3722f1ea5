"""Real SpikingJelly and snnTorch models saved as a state dict or a whole pickle, loaded by `compare` and `attribute`
with analyze's model flags (--arch, --T, --time-first-input, --trust-pickle), and attributed as modules from Python."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

import spikescope
from spikescope.compare import compare
from spikescope.data import load_dataset, make_loader
from spikescope.errors import SpikescopeError
from spikescope.pipeline import attribute_checkpoint
from test_cli_analyze import error_line

sj = pytest.importorskip("spikingjelly.activation_based.neuron",
                         reason="test extra: pip install --no-deps spikingjelly")
from spikingjelly.activation_based import functional, layer, neuron  # noqa: E402

snn = pytest.importorskip("snntorch", reason="test extra: pip install --no-deps snntorch")

T = 4
DATA = ["--data", "fashion-mnist-sample"]


def sj_net(seed: int = 0) -> nn.Module:
    """A SpikingJelly multi-step network ('m' mode, input `[T, B, 1, 28, 28]`)."""
    torch.manual_seed(seed)
    net = nn.Sequential(layer.Conv2d(1, 6, 3, padding=1), neuron.IFNode(v_threshold=0.3), layer.MaxPool2d(2),
                        layer.Flatten(), layer.Linear(6 * 14 * 14, 10), neuron.IFNode(v_threshold=0.3))
    functional.set_step_mode(net, "m")
    return net


class SnnTorchNet(nn.Module):
    """The snnTorch tutorial network: its own loop over T steps, `[T, B, 10]` output spikes."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv, self.lif1 = nn.Conv2d(1, 6, 3, padding=1), snn.Leaky(beta=0.8)
        self.fc, self.lif2 = nn.Linear(6 * 28 * 28, 10), snn.Leaky(beta=0.8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        out = []
        for _ in range(T):
            spk1, mem1 = self.lif1(self.conv(x) * 3, mem1)
            spk2, mem2 = self.lif2(self.fc(spk1.flatten(1)), mem2)
            out.append(spk2)
        return torch.stack(out)


def saved(tmp_path: Path, model: nn.Module, name: str, whole: bool = False) -> Path:
    path = tmp_path / name
    torch.save(model if whole else model.state_dict(), path)
    return path


def run_cli(*args) -> subprocess.CompletedProcess:
    tests = str(Path(__file__).resolve().parent)  # --arch imports this file's factories
    return subprocess.run([sys.executable, "-m", "spikescope", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": tests})


def test_compare_loads_spikingjelly_pickles_with_trust_pickle(tmp_path):
    files = [saved(tmp_path, sj_net(seed), f"sj{seed}.pt", whole=True) for seed in (0, 1)]
    command = ["compare", *files, "--T", T, "--time-first-input", *DATA, "--limit", 8]
    refused = run_cli(*command, "--out", tmp_path / "refused")
    assert refused.returncode == 2 and "--trust-pickle" in error_line(refused.stderr)
    done = run_cli(*command, "--trust-pickle", "--out", tmp_path / "c")
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "c" / "comparison.json").read_text())
    assert summary["samples"] == 8 and set(summary["models"]) == {"sj0", "sj1"}


def test_compare_and_attribute_load_state_dicts_with_arch(tmp_path):
    sj_files = [saved(tmp_path, sj_net(seed), f"sj{seed}.pt") for seed in (0, 1)]
    comparison, _ = compare(sj_files, arch="test_third_party_models:sj_net", T=T, time_first_input=True,
                            data="fashion-mnist-sample", limit=8, out=tmp_path / "c")
    assert [info["model"] for info in comparison.meta.values()] == ["test_third_party_models:sj_net"] * 2
    rates = {label: result.layers["firing_rate"].tolist() for label, result in comparison.results.items()}
    assert rates["sj0"] != rates["sj1"] and all(0 < r < 1 for values in rates.values() for r in values)

    snn_file = saved(tmp_path, SnnTorchNet(), "snn.pt")
    attribution, files = attribute_checkpoint(snn_file, method="sam", samples=4, arch="test_third_party_models:"
                                              "SnnTorchNet", T=T, data="fashion-mnist-sample", out=tmp_path / "a")
    assert files["report.html"].exists() and attribution.layer == "lif1" and attribution.T == T


def test_compare_takes_modules_and_finds_what_their_files_give(tmp_path):
    modules = {"a": sj_net(0), "b": sj_net(1)}
    options = {"T": T, "time_first_input": True, "data": "fashion-mnist-sample", "limit": 8}
    with pytest.raises(SpikescopeError, match="the Sequential module does not say which dataset .*pass --data"):
        compare(modules, **{**options, "data": None}, out=tmp_path / "never")
    with pytest.raises(SpikescopeError, match="b and a are the same module"):
        compare({"a": modules["a"], "b": modules["a"]}, **options, out=tmp_path / "never")
    with pytest.raises(SpikescopeError, match="named by its keys"):
        compare(modules, labels=["x", "y"], **options, out=tmp_path / "never")
    assert not (tmp_path / "never").exists()
    from_modules, files = compare(modules, **options, out=tmp_path / "modules")
    paths = [saved(tmp_path, module, f"{label}.pt") for label, module in modules.items()]
    from_files, _ = compare(paths, arch="test_third_party_models:sj_net", **options, out=tmp_path / "files")
    for label in modules:
        assert from_modules.meta[label]["checkpoint"] == "(module)" and from_modules.meta[label]["source"] == "module"
        pd.testing.assert_frame_equal(from_modules.results[label].layers, from_files.results[label].layers)
        assert from_modules.results[label].energy_totals() == from_files.results[label].energy_totals()
    assert files["comparison.html"].exists()


def test_the_python_api_attributes_a_third_party_module():
    images, _ = next(iter(make_loader(load_dataset("fashion-mnist-sample", "test", limit=4), 4)))
    model = SnnTorchNet().eval()
    result = spikescope.attribute(model, images, method="saliency", T=T, infidelity=False)
    assert result.T == T and result.maps.shape[0] == 4 and result.maps.shape[-2:] == (28, 28)
    assert abs(result.maps).sum() > 0 and set(result.sam) == {"lif1"}
