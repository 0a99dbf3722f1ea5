"""Real SpikingJelly and snnTorch networks recorded by spikescope (installed with the test extra)."""
import pytest
import torch
from torch import nn

import spikescope
from spikescope.data import load_dataset, make_loader
from spikescope.metrics.firing import FiringRate
from spikescope.record import SpikeRecorder
from spikescope.timelayout import Layout

sj = pytest.importorskip("spikingjelly.activation_based.neuron",
                         reason="test extra: pip install --no-deps spikingjelly")
from spikingjelly.activation_based import functional, layer, neuron  # noqa: E402

snn = pytest.importorskip("snntorch", reason="test extra: pip install --no-deps snntorch")

T = 4
IMAGES = [images for images, _ in make_loader(load_dataset("fashion-mnist-sample", "test", limit=48), 16)]


def spikingjelly_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        layer.Conv2d(1, 6, 3, padding=1), layer.BatchNorm2d(6), neuron.LIFNode(tau=2.0, v_threshold=0.2),
        layer.MaxPool2d(2),
        layer.Conv2d(6, 8, 3, padding=1), layer.BatchNorm2d(8), neuron.LIFNode(tau=2.0, v_threshold=0.2),
        layer.Flatten(), layer.Linear(8 * 14 * 14, 10), neuron.LIFNode(tau=2.0, v_threshold=0.2),
    ).eval()


def own_rates(outputs: dict[str, list[torch.Tensor]]) -> dict[str, float]:
    return {name: torch.cat([o.flatten() for o in out]).double().mean().item() for name, out in outputs.items()}


def collect_neuron_outputs(model, neuron_type):
    outputs, handles = {}, []
    for name, module in model.named_modules():
        if isinstance(module, neuron_type):
            handles.append(module.register_forward_hook(
                lambda m, i, o, name=name: outputs.setdefault(name, []).append(o[0] if isinstance(o, tuple) else o)))
    return outputs, handles


def test_spikingjelly_multi_step_network():
    net = spikingjelly_net()
    functional.set_step_mode(net, "m")
    with torch.no_grad(), SpikeRecorder(net, metrics=[FiringRate()]) as recorder:
        for x in IMAGES:
            functional.reset_net(net)
            net(x.unsqueeze(0).repeat(T, 1, 1, 1, 1))
    assert recorder.T == T  # read from the multi-step neurons' output
    assert [(layer.name, layer.found_by, layer.layout) for layer in recorder.layers] == [
        (name, "SpikingJelly neuron", Layout.TIME_FIRST) for name in ("2", "6", "9")]
    outputs, handles = collect_neuron_outputs(net, neuron.LIFNode)
    with torch.no_grad():
        for x in IMAGES:
            functional.reset_net(net)
            net(x.unsqueeze(0).repeat(T, 1, 1, 1, 1))
    rates = recorder.compute()["FiringRate"].layers.set_index("layer")["firing_rate"]
    for name, expected in own_rates(outputs).items():
        assert rates[name] == pytest.approx(expected, rel=1e-9)
    assert 0 < rates.min() and rates.max() < 1


def test_spikingjelly_single_step_network_stepped_by_the_user():
    net = spikingjelly_net()
    functional.set_step_mode(net, "s")
    outputs, handles = collect_neuron_outputs(net, neuron.LIFNode)
    with torch.no_grad(), SpikeRecorder(net, metrics=[FiringRate()], T=T) as recorder:
        for x in IMAGES:
            functional.reset_net(net)
            for _ in range(T):
                net(x)
    assert [(layer.found_by, layer.layout) for layer in recorder.layers] == [
        ("SpikingJelly neuron", Layout.PER_FORWARD)] * 3
    result = recorder.compute()["FiringRate"]
    rates = result.layers.set_index("layer")["firing_rate"]
    for name, expected in own_rates(outputs).items():
        assert rates[name] == pytest.approx(expected, rel=1e-9)
    first_layer = torch.stack([torch.stack(outputs["2"][i * T:(i + 1) * T]) for i in range(len(IMAGES))])
    per_step = result.timesteps.query("layer == '2'")["firing_rate"].tolist()
    assert per_step == pytest.approx(first_layer.double().mean(dim=(0, 2, 3, 4, 5)).tolist(), rel=1e-9)


class SnnTorchNet(nn.Module):
    """The snnTorch tutorial pattern: neurons called once per step inside the model's own loop."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 6, 3, padding=1)
        self.lif1 = snn.Leaky(beta=0.8)
        self.fc = nn.Linear(6 * 28 * 28, 10)
        self.lif2 = snn.Leaky(beta=0.8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        spikes1, spikes2 = [], []
        for _ in range(T):
            spk1, mem1 = self.lif1(self.conv(x) * 3, mem1)
            spk2, mem2 = self.lif2(self.fc(spk1.flatten(1)), mem2)
            spikes1.append(spk1)
            spikes2.append(spk2)
        return torch.stack(spikes2), torch.stack(spikes1)


def test_snntorch_network_with_a_per_step_loop():
    net = SnnTorchNet().eval()
    returned = {"lif1": [], "lif2": []}
    with torch.no_grad(), SpikeRecorder(net, metrics=[FiringRate()], T=T) as recorder:
        for x in IMAGES:
            spk2, spk1 = net(x)
            returned["lif1"].append(spk1)
            returned["lif2"].append(spk2)
    assert [(layer.name, layer.found_by, layer.layout) for layer in recorder.layers] == [
        ("lif1", "snnTorch neuron", Layout.PER_CALL), ("lif2", "snnTorch neuron", Layout.PER_CALL)]
    rates = recorder.compute()["FiringRate"].layers.set_index("layer")["firing_rate"]
    for name, expected in own_rates(returned).items():
        assert rates[name] == pytest.approx(expected, rel=1e-9)


def test_analyze_resets_spikingjelly_state_between_batches_and_counts_energy():
    net = spikingjelly_net()
    functional.set_step_mode(net, "m")
    loader = [(x.unsqueeze(0).repeat(T, 1, 1, 1, 1), torch.zeros(len(x), dtype=torch.long)) for x in IMAGES]
    result = spikescope.analyze(net, loader, run=lambda model, x: model(x).mean(0))
    assert list(result.layers["layer"]) == ["2", "6", "9"]
    assert list(result.energy["layer"]) == ["0", "4", "8"]
    assert list(result.energy["input"]) == ["analog", "spikes", "spikes"]
    again = spikescope.analyze(net, loader[::-1], run=lambda model, x: model(x).mean(0))
    assert again.layers["firing_rate"].tolist() == pytest.approx(result.layers["firing_rate"].tolist(), rel=1e-9)


def test_spikingjelly_dropout_and_delay_pass_spikes_along_and_are_not_neurons():
    torch.manual_seed(0)
    net = nn.Sequential(
        layer.Conv2d(1, 6, 3, padding=1), layer.BatchNorm2d(6), neuron.LIFNode(tau=2.0, v_threshold=0.2),
        layer.Dropout(0.5), layer.Flatten(), layer.Linear(6 * 28 * 28, 10), neuron.LIFNode(tau=2.0, v_threshold=0.2),
        layer.Delay(1),
    ).eval()
    functional.set_step_mode(net, "m")
    result = spikescope.analyze(net, [(x, torch.zeros(len(x), dtype=torch.long)) for x in IMAGES],
                                run=spikescope.repeated_input(T))
    assert list(result.layers["layer"]) == ["2", "6"]
