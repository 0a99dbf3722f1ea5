import pytest
import torch
from torch import nn

from spikescope.fsta import FSTA
from spikescope.metrics.energy import ENERGY_PRESETS_PJ, Energy
from spikescope.synapses import synapse_cost


def run(module, inputs):
    metric = Energy()
    metric.update("layer", inputs, synapse_cost(module))
    return metric.compute().layers.iloc[0]


def one_spike_at(*positions, size=3):
    x = torch.zeros(1, 1, 1, size, size)  # [T, B, C, H, W]
    for h, w in positions:
        x[0, 0, 0, h, w] = 1
    return x


def test_hand_counted_conv_sops():
    conv = nn.Conv2d(1, 2, 3, padding=1)
    # a corner spike reaches 2x2 output positions, the centre one 3x3; each in 2 output channels
    assert run(conv, one_spike_at((0, 0)))["sops_per_image"] == 8
    assert run(conv, one_spike_at((1, 1)))["sops_per_image"] == 18
    assert run(conv, one_spike_at((0, 0), (1, 1)))["sops_per_image"] == 26
    strided = nn.Conv2d(1, 1, 3, stride=2, padding=1)
    # a 4x4 input gives 2x2 outputs at rows/cols 0 and 2 of the padded grid: input (1, 1) feeds all four
    assert run(strided, one_spike_at((1, 1), size=4))["sops_per_image"] == 4
    assert run(strided, one_spike_at((3, 3), size=4))["sops_per_image"] == 1


def test_linear_sops_are_spikes_times_out_features_and_approx_follows_the_paper_formula():
    row = run(nn.Linear(5, 7), torch.tensor([[[1.0, 0, 1, 0, 0]], [[0, 0, 0, 0, 1.0]]]))  # T=2, B=1
    assert row["sops_per_image"] == 3 * 7
    assert row["input_firing_rate"] == pytest.approx(3 / 10)
    assert row["sops_approx_per_image"] == pytest.approx(0.3 * 2 * 35)  # fr x T x FLOPs


def test_analog_input_costs_dense_macs_and_energy_uses_the_preset():
    conv = nn.Conv2d(1, 2, 3, padding=1)
    row = run(conv, torch.rand(2, 1, 1, 3, 3) + 0.1)
    dense_per_step = 2 * 3 * 3 * 9  # C_out x H_out x W_out x k^2, padding taps included (the FLOPs convention)
    assert row["input"] == "analog" and row["sops_per_image"] == 0
    assert row["macs_per_image"] == 2 * dense_per_step
    assert row["energy_pj_per_image"] == pytest.approx(4.6 * 2 * dense_per_step)
    metric = Energy("int8")
    metric.update("l", one_spike_at((1, 1)), synapse_cost(conv))
    assert metric.compute().layers.loc[0, "energy_pj_per_image"] == pytest.approx(ENERGY_PRESETS_PJ["int8"]["ac"] * 18)


def test_fsta_always_costs_macs_even_on_binary_input():
    fsta = FSTA(3, T=2)
    row = run(fsta, (torch.rand(2, 1, 3, 6, 6) < 0.5).float())
    elements, pixels = 2 * 3 * 6 * 6, 6 * 6
    expected = (2 * elements + 2 * 2 * 3 + elements  # temporal: descriptors, 2x2 time mixing per channel, gate
                + elements + 49 * 49 * pixels + 49 * 49 * pixels + elements  # spatial: sums, DCT bank, fusion, gate
                + 2 * elements)  # fusion m X_t + n X_s
    assert row["sops_per_image"] == 0 and row["input"] == "analog"
    assert row["macs_per_image"] == fsta.macs((3, 6, 6)) == expected


def test_a_layer_fed_real_values_on_any_batch_counts_as_analog_on_every_batch():
    conv = nn.Conv2d(1, 1, 3, padding=1)
    metric = Energy()
    metric.update("layer", torch.zeros(1, 1, 1, 3, 3), synapse_cost(conv))  # all zeros: looks like spikes
    metric.update("layer", torch.full((1, 1, 1, 3, 3), 0.5), synapse_cost(conv))
    row = metric.compute().layers.iloc[0]
    assert row["input"] == "analog" and row["sops_per_image"] == 0
    assert row["macs_per_image"] == 81  # 9 outputs x 9 taps per image


def test_unknown_preset_is_refused():
    from spikescope.errors import SpikescopeError

    with pytest.raises(SpikescopeError, match="unknown energy preset"):
        Energy("fp64")
