"""Networks and layers beyond conv spiking layers: fully connected only, analog layers named by the user,
neurons silent on the probing batch."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import snn_zoo
import spikescope
from spikescope.data import load_dataset, make_loader

TESTS = Path(__file__).parent
SAMPLE = load_dataset("fashion-mnist-sample", "test", limit=60)


def spikescope_cli(*args):
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    return subprocess.run([sys.executable, "-m", "spikescope", *map(str, args)], capture_output=True, text=True,
                          env=env)


def test_a_network_without_2d_spike_maps_gets_a_full_report(tmp_path):
    torch.save(snn_zoo.mlp_snn().state_dict(), tmp_path / "mlp.pt")
    result = spikescope_cli("analyze", tmp_path / "mlp.pt", "--arch", "snn_zoo:mlp_snn", "--T", 2, "--data",
                            "fashion-mnist-sample", "--limit", 60, "--png", "--out", tmp_path / "r")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "r"
    layers = pd.read_csv(out / "layers.csv")
    assert list(layers["layer"]) == ["lif1", "lif2"] and layers["firing_rate"].between(0, 1).all()
    assert layers["axis_OI"].isna().all() and layers["height"].isna().all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["claims"][0]["verdict"] == "not testable"
    assert summary["energy"]["total_per_image"]["sops_per_image"] > 0
    assert summary["similarity"]["lif1"]["spike_cosine"][0][0] == pytest.approx(1)
    report = (out / "report.html").read_text()
    assert "No analysed layer emits 2D spike maps" in report and 'id="figure-spectra"' not in report
    assert {p.name for p in (out / "figures").iterdir()} == {"firing_rate.png", "channel_firing_rate.png",
                                                             "similarity.png"}
    assert len(np.load(out / "spectra.npz").files) == 0


def test_a_linear_layer_named_explicitly_is_analysed_as_analog(tmp_path):
    result = spikescope_cli("analyze", "--layers", "classifier", "--limit", 40, "--png", "--out", tmp_path / "r")
    assert result.returncode == 0, result.stderr
    assert "warning: layer classifier (Linear) was named explicitly but its output is not spikes" in result.stderr
    layers = pd.read_csv(tmp_path / "r" / "layers.csv")
    assert layers.loc[0, "output"] == "analog"
    assert layers[["firing_rate", "silent_fraction", "spikes"]].isna().all(axis=None)
    assert layers.loc[0, "spike_cosine_mean_off_diagonal"] > 0.5  # similarity of the logits over time
    assert len(pd.read_csv(tmp_path / "r" / "channels.csv")) == 0


def test_a_convolution_named_explicitly_gets_spectra_but_no_firing_rate():
    model, _ = spikescope.load(spikescope.bundled_checkpoint("baseline"))
    with pytest.warns(spikescope.errors.SpikescopeWarning, match="block3.conv .* reported as analog"):
        result = spikescope.analyze(model, make_loader(SAMPLE, 30), layers=["block3.conv", "block3.lif"], capture=2)
    layers = result.layers.set_index("layer")
    assert layers.loc["block3.conv", "output"] == "analog" and layers.loc["block3.lif", "output"] == "spikes"
    assert np.isnan(layers.loc["block3.conv", "firing_rate"]) and np.isnan(layers.loc["block3.conv", "silent_fraction"])
    assert 0 <= layers.loc["block3.lif", "silent_fraction"] < 1
    assert -1 <= layers.loc["block3.conv", "axis_OI"] <= 1
    conv_power = result.spectra["block3.conv"].sum()
    assert conv_power > 0 and layers.loc["block3.conv", "parseval_error"] < 1e-5  # Parseval on real values
    assert result.timesteps.query("layer == 'block3.conv'")["firing_rate"].isna().all()
    assert "block3.conv" not in result.captured and "block3.conv" not in set(result.channels["layer"])
    assert any("block3.conv" in w for w in result.info["warnings"])


def test_a_custom_neuron_silent_on_the_probing_batch_is_named_with_the_way_to_include_it():
    model = snn_zoo.QuietSNN()
    with pytest.warns(spikescope.errors.SpikescopeWarning, match="module neuron .* output only zeros on the first "
                                                                 "batch.*--layers neuron"):
        with pytest.raises(spikescope.errors.SpikescopeError, match="no spiking layer found"):
            spikescope.analyze(model, make_loader(SAMPLE, 30))
    result = spikescope.analyze(snn_zoo.QuietSNN(), make_loader(SAMPLE, 30), layers=["neuron"])
    assert result.layers.loc[0, "output"] == "spikes" and result.layers.loc[0, "samples"] == 60
