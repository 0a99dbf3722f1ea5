"""Every synaptic module is costed or named: transposed convolutions fed spikes, and modules spikescope cannot cost."""
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import spikescope
from spikescope.models.layers import over_time
from spikescope.neurons import LIF
from spikescope.report.outputs import write_outputs

T = 2


class Decoder(nn.Module):
    """A spiking encoder-decoder: conv, LIF, transposed conv (fed spikes), LIF, and a bilinear readout."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.T = T
        self.down = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.lif1 = LIF()
        self.up = nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1)
        self.lif2 = LIF()
        self.mix = nn.Bilinear(3, 3, 2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.unsqueeze(0).expand(T, *images.shape) * 2
        spikes = self.lif1(over_time(self.down, x))
        out = self.lif2(over_time(self.up, spikes))
        pooled = out.mean(dim=(-2, -1))
        return self.mix(pooled, pooled).mean(0)


def test_a_transposed_convolution_fed_spikes_costs_exactly_its_fan_out_and_an_uncostable_module_is_named(tmp_path):
    model = Decoder().eval()
    images = spikescope.load_dataset("fashion-mnist-sample", "test", limit=16)[:][0]
    fed = []
    model.up.register_forward_hook(lambda m, i, o: fed.append(i[0].detach()))
    with pytest.warns(spikescope.errors.SpikescopeWarning, match=r"cannot cost mix \(Bilinear\): _trilinear"):
        result = spikescope.analyze(model, [images])
    row = result.energy.set_index("layer").loc["up"]
    assert row["kind"] == "transposed conv" and row["input"] == "spikes"
    spikes = fed[0]  # [T*B, 4, 14, 14], binary
    up = model.up
    reached = F.conv_transpose2d(spikes, torch.ones_like(up.weight), None, up.stride, up.padding, up.output_padding)
    assert row["sops_per_image"] == pytest.approx(float(reached.sum()) / 16, rel=1e-12)  # every (spike, weight) pair
    flops = 4 * 14 * 14 * 3 * 9  # C_in x H_in x W_in x C_out x k^2 per timestep
    assert row["sops_approx_per_image"] == pytest.approx(float(spikes.double().mean()) * T * flops, rel=1e-9)
    assert result.info["uncosted"] == [{"module": "mix", "type": "Bilinear", "operator": "_trilinear"}]
    files = write_outputs(result, {"checkpoint": None}, tmp_path / "r")
    summary = json.loads(files["summary.json"].read_text())
    assert summary["energy"]["uncosted_modules"] == [{"module": "mix", "type": "Bilinear", "operator": "_trilinear"}]
    assert "Not costed</b> (missing from the totals): mix (Bilinear): _trilinear" in files[
        "report.html"].read_text()


def test_a_module_with_a_weight_of_its_own_is_costed_by_its_operators_and_an_unknown_operator_on_spikes_is_named():
    class OwnWeight(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.randn(10, 784))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x.flatten(1) @ self.weight.T > 0).float()

    class RunningCount(nn.Module):
        def forward(self, spikes: torch.Tensor) -> torch.Tensor:
            return torch.cumsum(spikes, dim=-1)

    model = nn.Sequential(nn.BatchNorm2d(1), OwnWeight(), RunningCount(), nn.Linear(10, 3))
    with pytest.warns(spikescope.errors.SpikescopeWarning, match=r"cannot cost 2 \(RunningCount\): cumsum"):
        with spikescope.SpikeRecorder(model, T=1) as recorder:
            model(torch.randn(4, 1, 28, 28))
    assert [layer.name for layer in recorder.layers] == ["1"]  # binary output: found as a neuron by the probe
    assert recorder.uncosted == [("2", "cumsum")]
    energy = recorder.compute()["Energy"].layers.set_index("layer")
    assert list(energy.index) == ["1: matmul 1", "3"]  # nothing of the BatchNorm, which folds into weights
    assert energy.loc["1: matmul 1", "macs_per_image"] == 784 * 10  # dense input: one MAC per weight
    assert energy.loc["3", "input"] == "analog" and energy.loc["3", "kind"] == "linear"
