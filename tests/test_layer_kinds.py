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
from torch import nn

import snn_zoo
import spikescope
from spikescope.data import load_dataset, make_loader
from spikescope.timelayout import Layout

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
    assert summary["claims"][1]["verdict"].endswith("frequency content not testable (no layer with 2D spike maps)")
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


class BatchFirstLIF(nn.Module):
    """A hand-written neuron on batch-first sequences `[B, T, N]`, as audio (SHD) code often has."""

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        membrane, spikes = torch.zeros_like(current[:, 0]), []
        for t in range(current.shape[1]):
            membrane = 0.5 * membrane + current[:, t]
            spikes.append((membrane > 1).float())
            membrane = membrane * (1 - spikes[-1])
        return torch.stack(spikes, dim=1)


class BatchFirstSNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(12, 8)
        self.lif = BatchFirstLIF()

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        return self.lif(self.fc(sequences))


def test_an_undeclared_batch_first_neuron_is_asked_about_not_read_as_one_step_per_forward():
    generator = torch.Generator().manual_seed(0)
    ramp = torch.arange(1, 6, dtype=torch.float32).view(1, 5, 1)  # T = 5, drive growing with t
    batches = [torch.rand(4, 5, 12, generator=generator) * ramp for _ in range(3)]
    model = BatchFirstSNN()
    with pytest.raises(spikescope.errors.SpikescopeError, match=r"batch-first sequence \[B, T, \.\.\.\] with T=5, or "
                                                                r"one timestep per forward pass\? pass batch_first"):
        spikescope.analyze(model, batches, T=5)
    result = spikescope.analyze(model, batches, T=5, batch_first=True)
    with torch.no_grad():
        own = torch.cat([model(x) for x in batches]).double().mean(dim=(0, 2))
    assert result.layers.loc[0, "layout"] == "batch-first [B, T, ...]" and result.layers.loc[0, "samples"] == 12
    assert result.timesteps["firing_rate"].tolist() == pytest.approx(own.tolist(), rel=1e-12)


class BiasFreeRecurrent(nn.Module):
    """A recurrent single-step network: the recurrent weights see the previous step's spikes (zeros at t = 0)."""

    T = 4

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc, self.rec = nn.Linear(10, 16), nn.Linear(16, 16, bias=False)
        self.fire = snn_zoo.FoldedHeaviside()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spikes, outputs = torch.zeros(x.shape[0], 16), []
        for _ in range(self.T):
            spikes = self.fire(self.fc(x) + self.rec(spikes))
            outputs.append(spikes)
        return torch.stack(outputs)


def test_a_recurrent_layer_fed_zeros_at_the_first_step_does_not_stop_the_analysis():
    result = spikescope.analyze(BiasFreeRecurrent(), [torch.rand(5, 10) * 2 for _ in range(2)])
    assert list(result.layers["layer"]) == ["fire"] and result.layers.loc[0, "layout"] == Layout.PER_CALL.value
    energy = result.energy.set_index("layer")
    assert energy.loc["rec", "input"] == "spikes" and energy.loc["fc", "input"] == "analog"


def test_an_encoder_that_runs_once_before_the_time_loop_is_costed_once():
    class Encoded(BiasFreeRecurrent):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = nn.Linear(10, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(self.encoder(x))

    energy = spikescope.analyze(Encoded(), [torch.rand(5, 10)]).energy.set_index("layer")
    assert energy.loc["encoder", "macs_per_image"] == 10 * 10  # once, not T times
    assert energy.loc["fc", "macs_per_image"] == 4 * 10 * 16  # every timestep


def test_a_first_batch_of_one_sample_that_shapes_cannot_read_is_a_clear_error():
    model = snn_zoo.FoldedSNN(steps=2)
    model.conv = nn.Conv2d(1, 1, 3, padding=1)  # one channel: [T*1, 1, H, W] also reads as [T, B=1, H, W]
    with pytest.raises(spikescope.errors.SpikescopeError, match="from a first batch of one sample"):
        spikescope.analyze(model, [SAMPLE[:1][0], SAMPLE[1:4][0]], T=2, fold="time-major")
    result = spikescope.analyze(model, [SAMPLE[1:4][0], SAMPLE[:1][0]], T=2, fold="time-major")
    assert result.layers.loc[0, "samples"] == 4 and len(result.spectra["fire"]) == 2


def test_named_layers_must_run_and_integer_spikes_are_spikes():
    class IntegerFire(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x > 0).to(torch.uint8)

    class WithSpare(nn.Module):
        T = 1

        def __init__(self) -> None:
            super().__init__()
            self.fc, self.fire, self.spare = nn.Linear(8, 8), IntegerFire(), IntegerFire()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fire(self.fc(x))

    result = spikescope.analyze(WithSpare(), [torch.randn(6, 8)])  # found by the probe: 0/1 in uint8
    assert list(result.layers["layer"]) == ["fire"] and result.layers.loc[0, "output"] == "spikes"
    with pytest.raises(spikescope.errors.SpikescopeError, match="layer spare was named but did not run"):
        spikescope.analyze(WithSpare(), [torch.randn(6, 8)], layers=["fire", "spare"])


def test_claims_leave_analog_layers_out_and_say_what_a_network_without_maps_cannot_show(tmp_path):
    model, _ = spikescope.load(spikescope.bundled_checkpoint("baseline"))
    result = spikescope.analyze(model, make_loader(SAMPLE, 30), layers=["block1.conv", "block1.lif", "block3.lif"])
    from spikescope.claims import read_claims

    orientation, temporal = read_claims(result.layers, result.similarity)
    assert "block1.conv" not in orientation["evidence"] and "(block1.lif)" in orientation["evidence"]
    assert "block1.conv" not in temporal["evidence"]
    mlp = spikescope.analyze(snn_zoo.mlp_snn(), make_loader(SAMPLE, 30))
    temporal = read_claims(mlp.layers, mlp.similarity)[1]
    assert temporal["verdict"].endswith("frequency content not testable (no layer with 2D spike maps)")
