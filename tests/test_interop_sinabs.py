"""Real sinabs networks recorded by spikescope: its [B, T, ...] layout, its batch-major fold, spike counts, state."""
import pytest
import torch
from torch import nn

import spikescope
from spikescope.detect import reset_neuron_states
from spikescope.metrics.firing import FiringRate
from spikescope.record import SpikeRecorder
from spikescope.timelayout import Layout

sl = pytest.importorskip("sinabs.layers", reason="test extra: pip install --no-deps sinabs nir nirtorch pbr h5py")
from sinabs.activation import SingleSpike  # noqa: E402

T, B = 4, 6


def rising_input(batches: int = 3) -> list[torch.Tensor]:
    """`[B, T, 1, 8, 8]` batches whose drive grows with the timestep, so per-timestep rates differ."""
    generator = torch.Generator().manual_seed(0)
    ramp = torch.arange(1, T + 1, dtype=torch.float32).view(1, T, 1, 1, 1)
    return [torch.rand(B, T, 1, 8, 8, generator=generator) * ramp * 0.6 for _ in range(batches)]


def squeeze_net(multi_spike: bool = False) -> nn.Module:
    """sinabs' usual pattern: plain convolutions and squeeze neurons on `[B*T, ...]` folded batch-major.

    `multi_spike` keeps sinabs' default spike function, `MultiSpike`, which emits spike counts.
    """
    options = {} if multi_spike else {"spike_fn": SingleSpike}
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), sl.IAFSqueeze(batch_size=B, **options),
                         nn.Conv2d(4, 4, 3, padding=1), sl.IAFSqueeze(batch_size=B, **options),
                         nn.Flatten(), nn.Linear(4 * 64, 5)).eval()


class TimeFirstWrapper(nn.Module):
    """Takes `[T, B, ...]` and feeds the sinabs network the batch-major fold it expects."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.T = T
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.transpose(0, 1).flatten(0, 1))


def own_rates(model: nn.Module, inputs: list[torch.Tensor], to_b_t) -> dict[str, torch.Tensor]:
    """Per-timestep firing rates from the neurons' own outputs, `[B, T, ...]`-ordered by `to_b_t`."""
    outputs: dict[str, list[torch.Tensor]] = {}
    handles = [m.register_forward_hook(lambda mod, i, o, name=name: outputs.setdefault(name, []).append(o))
               for name, m in model.named_modules() if isinstance(m, sl.StatefulLayer)]
    with torch.no_grad():
        for x in inputs:
            reset_neuron_states(model)
            model(x)
    for handle in handles:
        handle.remove()
    return {name: torch.cat([to_b_t(o) for o in out]).double().transpose(0, 1).flatten(1).mean(dim=1)
            for name, out in outputs.items()}


def recorded_rates(model: nn.Module, inputs: list[torch.Tensor], **options) -> tuple[SpikeRecorder, dict]:
    with torch.no_grad(), SpikeRecorder(model, metrics=[FiringRate()], **options) as recorder:
        for x in inputs:
            reset_neuron_states(model)
            model(x)
    steps = recorder.compute()["FiringRate"].timesteps
    return recorder, {layer: torch.tensor(rows["firing_rate"].tolist(), dtype=torch.float64)
                      for layer, rows in steps.groupby("layer")}


def test_squeeze_layers_are_read_batch_major_with_T_from_the_layer():
    net = squeeze_net()
    inputs = [x.flatten(0, 1) for x in rising_input()]
    recorder, rates = recorded_rates(net, inputs)
    assert recorder.T == T  # from the layers' own batch_size
    assert [(i.name, i.found_by, i.layout, i.output) for i in recorder.layers] == [
        (name, "sinabs neuron", Layout.FOLDED_BATCH_MAJOR, "spikes") for name in ("1", "3")]
    expected = own_rates(net, inputs, lambda o: o.unflatten(0, (B, T)))
    for name, per_step in expected.items():
        assert rates[name].tolist() == pytest.approx(per_step.tolist(), rel=1e-12)
    assert rates["1"][0] < rates["1"][-1]  # the input's ramp shows, in the right order


def test_a_squeeze_network_wrapped_time_first_keeps_its_timesteps_in_order():
    net = squeeze_net()
    inputs = [x.transpose(0, 1).contiguous() for x in rising_input()]  # [T, B, ...]
    _, rates = recorded_rates(TimeFirstWrapper(net), inputs)
    expected = own_rates(net, [x.transpose(0, 1).flatten(0, 1) for x in inputs], lambda o: o.unflatten(0, (B, T)))
    for name, per_step in expected.items():
        assert rates[f"net.{name}"].tolist() == pytest.approx(per_step.tolist(), rel=1e-12)


def test_batch_first_layers_fed_b_t_inputs():
    torch.manual_seed(0)
    net = nn.Sequential(sl.FlattenTime(), nn.Conv2d(1, 4, 3, padding=1), sl.UnflattenTime(batch_size=B),
                        sl.LIF(tau_mem=3.0, spike_fn=SingleSpike)).eval()
    inputs = rising_input()
    recorder, rates = recorded_rates(net, inputs)  # T is read off the [B, T, ...] output
    assert [(i.name, i.layout) for i in recorder.layers] == [("3", Layout.BATCH_FIRST)]
    expected = own_rates(net, inputs, lambda o: o)
    assert rates["3"].tolist() == pytest.approx(expected["3"].tolist(), rel=1e-12)


def test_multi_spike_outputs_are_spike_counts_and_synaptic_operations_count_every_spike():
    net = squeeze_net(multi_spike=True)
    inputs = [x.flatten(0, 1) * 4 for x in rising_input(2)]
    counts = {}
    net[3].register_forward_hook(lambda m, i, o: counts.setdefault("3", []).append(o))
    result = spikescope.analyze(net, inputs, T=T)
    layers = result.layers.set_index("layer")
    assert set(layers["output"]) == {"spike counts"} and max(float(c.max()) for c in counts["3"]) > 1
    assert layers.loc["3", "firing_rate"] == pytest.approx(
        torch.cat(counts["3"]).double().mean().item(), rel=1e-12)  # mean count per neuron and timestep
    assert 0 <= layers.loc["3", "silent_fraction"] <= 1
    readout = result.energy.set_index("layer").loc["5"]
    assert readout["input"] == "spike sums"  # whole numbers: each count k is k events
    expected_sops = sum(float(c.sum()) for c in counts["3"]) * 5 / (len(inputs) * B)  # every count x 5 outputs
    assert readout["sops_per_image"] == pytest.approx(expected_sops, rel=1e-12)


def test_sinabs_state_is_reset_between_batches():
    net = squeeze_net()
    inputs = [x.flatten(0, 1) for x in rising_input()]
    forward = spikescope.analyze(net, inputs, T=T).layers["firing_rate"].tolist()
    backward = spikescope.analyze(net, inputs[::-1], T=T).layers["firing_rate"].tolist()
    assert backward == pytest.approx(forward, rel=1e-12)
    alone = [spikescope.analyze(net, [batch], T=T).layers["spikes"].to_numpy() for batch in inputs]
    assert (sum(alone) == spikescope.analyze(net, inputs, T=T).layers["spikes"].to_numpy()).all()


def test_sum_pooling_passes_spikes_along_and_is_not_a_neuron():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), sl.IAFSqueeze(batch_size=B, spike_fn=SingleSpike),
                        sl.SumPool2d(2), nn.Conv2d(4, 4, 3, padding=1)).eval()
    recorder, _ = recorded_rates(net, [x.flatten(0, 1) * 0.2 for x in rising_input(1)])
    assert [i.name for i in recorder.layers] == ["1"]


def test_a_T_that_contradicts_the_layers_own_timesteps_is_an_error_not_a_reinterpretation():
    net = squeeze_net()
    with pytest.raises(spikescope.errors.SpikescopeError, match=r"layer 1 \(IAFSqueeze\) runs 4 timesteps .* but "
                                                                r"T=3 was given"):
        recorded_rates(net, [x.flatten(0, 1) for x in rising_input(1)], T=3)


def test_batch_first_layers_are_read_as_declared_even_when_the_batch_size_equals_T():
    torch.manual_seed(0)
    net = nn.Sequential(sl.FlattenTime(), nn.Conv2d(1, 4, 3, padding=1), sl.UnflattenTime(batch_size=T),
                        sl.LIF(tau_mem=3.0, spike_fn=SingleSpike)).eval()
    inputs = [x[:T] for x in rising_input()]  # B == T == 4
    recorder, rates = recorded_rates(net, inputs)
    assert [(i.name, i.layout) for i in recorder.layers] == [("3", Layout.BATCH_FIRST)]
    assert rates["3"].tolist() == pytest.approx(own_rates(net, inputs, lambda o: o)["3"].tolist(), rel=1e-12)


def test_sum_pooling_of_spikes_feeds_the_next_layer_spike_counts_costed_per_spike():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), sl.IAFSqueeze(batch_size=B, spike_fn=SingleSpike),
                        sl.SumPool2d(2), nn.Conv2d(4, 4, 3, padding=1)).eval()
    inputs = [x.flatten(0, 1) for x in rising_input(1)]
    pooled = []
    net[2].register_forward_hook(lambda m, i, o: pooled.append(o))
    row = spikescope.analyze(net, inputs, T=T).energy.set_index("layer").loc["3"]
    assert row["input"] == "spike sums" and row["macs_per_image"] == 0
    counts = pooled[0]  # [B*T, 4, 4, 4] spike counts; each reaches 4 output channels x its 3x3 neighbourhood
    reached = torch.nn.functional.conv2d(counts, torch.ones(1, 4, 3, 3), padding=1).sum() * 4
    assert row["sops_per_image"] == pytest.approx(float(reached) / B, rel=1e-12)
