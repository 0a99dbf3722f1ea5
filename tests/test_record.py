import gc

import pytest
import torch
from torch import nn

from snn_zoo import FoldedSNN, PlainSNN
from spikescope.data import load_dataset, make_loader
from spikescope.errors import SpikescopeError, SpikescopeWarning
from spikescope.metrics.energy import Energy
from spikescope.metrics.firing import FiringRate
from spikescope.metrics.spectrum import Spectrum
from spikescope.metrics.temporal import TemporalSimilarity
from spikescope.models import build
from spikescope.record import SpikeRecorder
from spikescope.timelayout import Layout

IMAGES = load_dataset("fashion-mnist-sample", "test", limit=64)


def batches(batch_size=16):
    return [images for images, _ in make_loader(IMAGES, batch_size)]


def hook_counts(model):
    return [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.modules()]


def test_no_hook_remains_after_the_block_even_when_it_raises():
    model = build("compact_cnn", width=4, fsta=True)
    before = hook_counts(model)
    with SpikeRecorder(model) as recorder:
        model(batches()[0])
        assert recorder.hook_count() > 0
    assert hook_counts(model) == before
    with pytest.raises(RuntimeError, match="boom"):
        with SpikeRecorder(model):
            model(batches()[0])
            raise RuntimeError("boom")
    assert hook_counts(model) == before


def test_spikescope_lif_layers_are_found_by_class_in_depth_order():
    model = build("compact_cnn", width=4, fsta=True)
    with SpikeRecorder(model) as recorder:
        model(batches()[0])
    assert [layer.name for layer in recorder.layers] == [f"block{i}.lif" for i in range(1, 6)]
    assert {(layer.found_by, layer.layout) for layer in recorder.layers} == {("spikescope LIF", Layout.TIME_FIRST)}


def independent_rates(model, images, neuron_type):
    """Firing rate per layer from the neurons' own outputs, collected without spikescope."""
    outputs = {}
    handles = [m.register_forward_hook(lambda mod, i, o, name=name: outputs.setdefault(name, []).append(o))
               for name, m in model.named_modules() if isinstance(m, neuron_type)]
    with torch.no_grad():
        for x in images:
            model(x)
    for h in handles:
        h.remove()
    return {name: torch.cat([o.flatten() for o in out]).double().mean().item() for name, out in outputs.items()}


def test_a_plain_module_neuron_is_found_by_its_binary_output_and_containers_are_not_counted():
    from snn_zoo import ReferenceStyleLIF

    torch.manual_seed(0)
    model = PlainSNN().eval()
    with torch.no_grad(), SpikeRecorder(model, metrics=[FiringRate()]) as recorder:
        for x in batches():
            model(x)
    assert [(layer.name, layer.found_by) for layer in recorder.layers] == [
        ("stage1.1", "binary output on the first batch"), ("stage2.1", "binary output on the first batch")]
    rates = recorder.compute()["FiringRate"].layers.set_index("layer")["firing_rate"]
    expected = independent_rates(model, batches(), ReferenceStyleLIF)
    assert rates["stage1.1"] == pytest.approx(expected["stage1.1"], rel=1e-9)
    assert rates["stage2.1"] == pytest.approx(expected["stage2.1"], rel=1e-9)


def test_time_folded_into_the_batch_is_unfolded_with_T_and_the_fold_order_the_user_gives():
    model = FoldedSNN(steps=2)
    with pytest.raises(SpikescopeError, match="cannot know the fold order: pass fold='time-major'"):
        with torch.no_grad(), SpikeRecorder(model, metrics=[FiringRate()], T=2):
            model(batches()[0])
    with torch.no_grad(), SpikeRecorder(model, metrics=[FiringRate()], T=2, fold="time-major") as recorder:
        x = batches()[0]
        model(x)
    assert recorder.layers[0].layout is Layout.FOLDED
    steps = recorder.compute()["FiringRate"].timesteps
    with torch.no_grad():
        conv = model.conv(x)
        expected = [(conv > 0.3).double().mean().item(), (model.conv(2 * x) > 0.3).double().mean().item()]
    assert steps["firing_rate"].tolist() == pytest.approx(expected, rel=1e-9)


def test_layers_by_name_and_by_regex_and_clear_errors_for_unknown_names():
    model = build("compact_cnn", width=4)
    with SpikeRecorder(model, layers=["block2.lif", "block4.lif"]) as recorder:
        model(batches()[0])
    assert [layer.name for layer in recorder.layers] == ["block2.lif", "block4.lif"]
    with SpikeRecorder(model, layers=r"block[13]\.lif") as recorder:
        model(batches()[0])
    assert [layer.name for layer in recorder.layers] == ["block1.lif", "block3.lif"]
    with pytest.raises(SpikescopeError, match="no module named 'block9.lif'; spiking layers found: block1.lif"):
        SpikeRecorder(model, layers=["block9.lif"]).open()
    with pytest.raises(SpikescopeError, match="no spiking layer matches 'fc.*'; available: block1.lif, block2.lif"):
        with SpikeRecorder(model, layers="fc.*"):
            model(batches()[0])
    assert hook_counts(model) == hook_counts(build("compact_cnn", width=4))


def test_a_network_without_spiking_layers_is_a_clear_error():
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with pytest.raises(SpikescopeError, match="no spiking layer found"):
        with SpikeRecorder(model, T=2):
            model(batches()[0])


def test_unknown_T_is_a_clear_error():
    model = FoldedSNN()
    with pytest.raises(SpikescopeError, match="T is unknown"):
        with SpikeRecorder(model):
            model(batches()[0])


def test_capture_keeps_the_first_samples_bit_exact():
    model = build("compact_cnn", width=4)
    seen = []
    model.block3.lif.register_forward_hook(lambda m, i, o: seen.append(o.detach()))
    with torch.no_grad(), SpikeRecorder(model, capture=5) as recorder:
        for x in batches(4):
            model(x)
    captured = recorder.capture.spikes("block3.lif")
    assert captured.shape == (2, 5, 16, 14, 14) and captured.dtype.name == "uint8"
    expected = torch.cat(seen, dim=1)[:, :5]
    assert torch.equal(torch.from_numpy(captured).float(), expected)


def test_batch_size_one_is_unambiguous_for_convolutions():
    model = build("compact_cnn", width=4)
    with torch.no_grad(), SpikeRecorder(model) as recorder:
        model(batches(1)[0])
    assert {layer.layout for layer in recorder.layers} == {Layout.TIME_FIRST}
    assert recorder.compute()["Energy"].layers.set_index("layer").loc["block1.conv", "input"] == "analog"


def test_a_single_step_plain_neuron_silent_at_some_steps_is_still_recorded_per_call():
    class StepNeuron(nn.Module):  # fires only at the middle call of each sequence
        def __init__(self):
            super().__init__()
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            return (x > 0).float() if self.calls % 3 == 2 else torch.zeros_like(x)

    class Looping(nn.Module):
        def __init__(self):
            super().__init__()
            self.neuron = StepNeuron()

        def forward(self, x):
            return torch.stack([self.neuron(x) for _ in range(3)])

    model = Looping()
    with SpikeRecorder(model, metrics=[FiringRate()], T=3) as recorder:
        for _ in range(2):
            model(torch.randn(4, 10))
    assert [(layer.name, layer.layout) for layer in recorder.layers] == [("neuron", Layout.PER_CALL)]
    steps = recorder.compute()["FiringRate"].timesteps["firing_rate"].tolist()
    assert steps[0] == 0 and steps[2] == 0 and steps[1] > 0.2


def test_an_exception_inside_a_forward_pass_does_not_corrupt_the_next_ones():
    from snn_zoo import SnnLikeLoop

    model = SnnLikeLoop(T=3, fail_at_step=None)
    with SpikeRecorder(model, metrics=[FiringRate()], T=3) as recorder:
        model(torch.randn(4, 10))
        model.fail_at_step = 1
        with pytest.raises(RuntimeError, match="step 1"):
            model(torch.randn(4, 10))
        model.fail_at_step = None
        with pytest.warns(SpikescopeWarning, match="a forward pass ended early; its partial spikes were dropped"):
            model(torch.randn(4, 10))
    assert recorder.compute()["FiringRate"].layers.loc[0, "samples"] == 8
    assert "a forward pass ended early" in " ".join(recorder.warnings)


def test_a_recorder_records_one_run():
    model = build("compact_cnn", width=4)
    recorder = SpikeRecorder(model)
    with recorder:
        model(batches()[0])
    with pytest.raises(SpikescopeError, match="create a new one"):
        recorder.open()
    with pytest.raises(SpikescopeError, match="nothing was recorded"):
        SpikeRecorder(model).compute()


def test_state_memory_does_not_grow_with_the_number_of_batches():
    model = build("compact_cnn", width=4).eval()
    x = batches(4)[0]

    def run(n):
        with torch.no_grad(), SpikeRecorder(model) as recorder:
            for _ in range(n):
                model(x)
            gc.collect()
            tensors = sum(type(o) is torch.Tensor for o in gc.get_objects())
            return sum(m.nbytes() for m in recorder.metrics), tensors

    assert run(20) == run(200)


def merged_equals_whole(metric_type, model):
    data = batches(8)
    recorders = []
    for part in (data, data[:4], data[4:]):
        with torch.no_grad(), SpikeRecorder(model, metrics=[metric_type()]) as recorder:
            for x in part:
                model(x)
        recorders.append(recorder.metrics[0])
    whole, first, second = recorders
    merged = metric_type()
    merged.load_state_dict(first.state_dict())
    merged.merge(second)
    assert list(merged.states) == list(whole.states)
    for layer, states in whole.states.items():
        assert set(merged.states[layer]) == set(states)
        for name, value in states.items():
            other = merged.states[layer][name]
            if name in metric_type.float_sums:
                torch.testing.assert_close(other, value, rtol=1e-12, atol=0)  # float64 sums, reordered
            else:
                assert torch.equal(other, value), (layer, name)  # counts and maxima: bit-exact
    if not metric_type.float_sums:
        assert merged.compute().layers.equals(whole.compute().layers)


@pytest.mark.parametrize("metric_type", [FiringRate, Spectrum, TemporalSimilarity, Energy])
def test_merging_the_states_of_two_halves_equals_the_state_of_the_whole(metric_type):
    merged_equals_whole(metric_type, build("compact_cnn", width=4).eval())


def test_a_different_input_size_in_a_later_batch_is_a_one_line_error():
    model = build("compact_cnn", width=4, image_size=28).eval()
    with pytest.raises(SpikescopeError, match="must stay the same for a whole run"):
        with torch.no_grad(), SpikeRecorder(model, metrics=[FiringRate()]):
            model(batches()[0])
            model.classifier = nn.Linear(16 * 4 * 4, 10)
            model(torch.zeros(4, 1, 16, 16))
