import pytest
import torch
from torch import nn

from spikescope.fsta import FSTA
from spikescope.energy.models import ENERGY_MODELS
from spikescope.metrics.energy import Energy


def run(module, inputs):
    metric = Energy()
    metric.update("layer", inputs, module)
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
    metric.update("l", one_spike_at((1, 1)), conv)
    assert metric.compute().layers.loc[0, "energy_pj_per_image"] == pytest.approx(ENERGY_MODELS["int8"].e_add * 18)


def test_fsta_always_costs_macs_even_on_binary_input():
    fsta = FSTA(3, T=2)
    row = run(fsta, (torch.rand(2, 1, 3, 6, 6) < 0.5).float())
    T, elements, pixels = 2, 2 * 3 * 6 * 6, 6 * 6
    expected = (2 * elements + T * T * 3 + T * 3  # temporal: mean and max, 2x2 time mixing per channel, channel mean
                + elements + 2 * T * pixels  # spatial: channel sum, temporal scaling and mean over time of that map
                + 13 * 6 * pixels  # DCT bank and fusion conv as one exact linear map: a band of 13 rows x 6 columns
                + pixels + T * pixels + elements)  # spatial gate, the gain, Y = X * gain
    assert row["sops_per_image"] == 0 and row["input"] == "analog"
    assert row["macs_per_image"] == fsta.macs((3, 6, 6)) == expected


def test_a_layer_fed_real_values_on_any_batch_counts_as_analog_on_every_batch():
    conv = nn.Conv2d(1, 1, 3, padding=1)
    metric = Energy()
    metric.update("layer", torch.zeros(1, 1, 1, 3, 3), conv)  # all zeros: looks like spikes
    metric.update("layer", torch.full((1, 1, 1, 3, 3), 0.5), conv)
    row = metric.compute().layers.iloc[0]
    assert row["input"] == "analog" and row["sops_per_image"] == 0
    assert row["macs_per_image"] == 81  # 9 outputs x 9 taps per image


def test_unknown_energy_model_is_refused():
    from spikescope.errors import SpikescopeError

    with pytest.raises(SpikescopeError, match="unknown energy model"):
        Energy("fp64")


def spikes_at(shape, *positions, T=1):
    """`[T, B=1, *shape]` zeros with a spike at each `(c, h, w)` of the first timestep."""
    x = torch.zeros(T, 1, *shape)
    for position in positions:
        x[(0, 0, *position)] = 1
    return x


def test_grouped_conv_sops_count_only_the_output_channels_of_the_spikes_group():
    conv = nn.Conv2d(4, 6, 3, padding=1, groups=2)  # each input channel feeds C_out / groups = 3 output channels
    shape = (4, 5, 5)
    assert run(conv, spikes_at(shape, (0, 0, 0)))["sops_per_image"] == 3 * 4  # corner: 2 x 2 outputs
    assert run(conv, spikes_at(shape, (3, 0, 2)))["sops_per_image"] == 3 * 6  # top edge: 2 x 3 outputs
    assert run(conv, spikes_at(shape, (1, 2, 2)))["sops_per_image"] == 3 * 9  # interior: 3 x 3 outputs
    assert run(conv, spikes_at(shape, (0, 0, 0), (2, 2, 2), (3, 4, 4)))["sops_per_image"] == 12 + 27 + 12


def test_strided_dilated_conv_sops_follow_the_receptive_fields_on_the_padded_grid():
    conv = nn.Conv2d(2, 4, 3, stride=2, padding=2, dilation=2)
    # 5x5 input -> 3x3 output; output row o reads input rows 2o - 2, 2o, 2o + 2:
    # input row 0 feeds outputs 0, 1; row 1 none; row 2 all three; row 3 none; row 4 outputs 1, 2 (same for columns)
    shape = (2, 5, 5)
    assert run(conv, spikes_at(shape, (0, 2, 2)))["sops_per_image"] == 4 * 3 * 3
    assert run(conv, spikes_at(shape, (1, 0, 4)))["sops_per_image"] == 4 * 2 * 2
    assert run(conv, spikes_at(shape, (1, 1, 2)))["sops_per_image"] == 0  # between the dilated taps: reaches nothing
    assert run(conv, spikes_at(shape, (0, 2, 3)))["sops_per_image"] == 0
    assert run(conv, spikes_at(shape, (0, 2, 0), (1, 4, 2)))["sops_per_image"] == 4 * 3 * 2 + 4 * 2 * 3


@pytest.mark.parametrize("conv, shape, dense_per_step", [
    # C_out x H_out x W_out x (C_in / groups) x k^2, padding taps included
    (nn.Conv2d(4, 6, 3, padding=1, groups=2), (4, 5, 5), 6 * 5 * 5 * 2 * 9),
    (nn.Conv2d(2, 4, 3, stride=2, padding=2, dilation=2), (2, 5, 5), 4 * 3 * 3 * 2 * 9),
    (nn.Conv2d(3, 6, (2, 3), stride=(1, 2), groups=3), (3, 4, 7), 6 * 3 * 3 * 1 * 6),
    (nn.Conv1d(4, 8, 3, groups=4), (4, 10), 8 * 8 * 1 * 3),
])
def test_dense_macs_of_analog_input_are_T_times_the_flops_convention(conv, shape, dense_per_step):
    T, B = 3, 2
    metric = Energy()
    metric.update("layer", torch.rand(T, B, *shape) + 0.1, conv)
    row = metric.compute().layers.iloc[0]
    assert row["input"] == "analog" and row["sops_per_image"] == 0
    assert row["macs_per_image"] == T * dense_per_step


def test_paper_style_sops_are_input_firing_rate_times_T_times_flops_for_grouped_strided_convs():
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)  # 6x6 input -> 3x3 output
    T, B = 2, 2
    x = torch.zeros(T, B, 4, 6, 6)
    x[0, 0, 0, :2, :] = 1  # 12 spikes
    x[1, 1, 3, 5, :3] = 1  # 3 spikes
    x[1, 0, 2, 2, 2] = 1  # 1 spike
    row = run(conv, x)
    flops = 6 * 3 * 3 * 2 * 9
    fr_in = 16 / (T * B * 4 * 6 * 6)
    assert row["input_firing_rate"] == pytest.approx(fr_in)
    # output o reads input rows 2o - 1 .. 2o + 1, so rows (and columns) 0..5 reach 1, 2, 1, 2, 1, 1 outputs (sum 8)
    assert row["sops_per_image"] == 3 * ((1 + 2) * 8 + 1 * (1 + 2 + 1) + 1 * 1) / B
    assert row["sops_approx_per_image"] == pytest.approx(fr_in * T * flops)  # B images, reported per image
    assert row["sops_per_image"] < row["sops_approx_per_image"]  # the exact count skips border and padding taps


def test_transposed_conv_sops_count_the_outputs_each_spike_scatters_into_after_cropping():
    deconv = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1)  # 4x4 -> 8x8
    # input i lands on outputs 2i - 1, 2i, 2i + 1; padding crops output -1, so row/column 0 reaches two outputs
    shape = (2, 4, 4)
    assert run(deconv, spikes_at(shape, (0, 1, 1)))["sops_per_image"] == 3 * 3 * 3  # interior: C_out x k^2
    assert run(deconv, spikes_at(shape, (1, 0, 0)))["sops_per_image"] == 3 * 2 * 2  # top-left corner
    assert run(deconv, spikes_at(shape, (0, 0, 2)))["sops_per_image"] == 3 * 2 * 3  # top edge
    assert run(deconv, spikes_at(shape, (1, 3, 3)))["sops_per_image"] == 3 * 3 * 3  # output_padding keeps 2i + 1
    row = run(deconv, spikes_at(shape, (0, 1, 1), (1, 0, 0)))
    assert row["kind"] == "transposed conv" and row["sops_per_image"] == 27 + 12


def test_grouped_transposed_conv_reaches_only_its_groups_output_channels():
    deconv = nn.ConvTranspose2d(4, 6, 3, padding=1, groups=2)  # 4x4 -> 4x4, each input feeds 3 output channels
    shape = (4, 4, 4)
    assert run(deconv, spikes_at(shape, (0, 1, 2)))["sops_per_image"] == 3 * 9
    assert run(deconv, spikes_at(shape, (3, 0, 0)))["sops_per_image"] == 3 * 4


def test_transposed_conv_flops_are_input_positions_times_the_whole_kernel():
    deconv = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1)
    T = 2
    flops = 2 * 4 * 4 * 3 * 9  # C_in x H_in x W_in x (C_out / groups) x k^2 per timestep
    analog = run(deconv, torch.rand(T, 1, 2, 4, 4) + 0.1)
    assert analog["input"] == "analog" and analog["macs_per_image"] == T * flops
    spikes = spikes_at((2, 4, 4), (0, 1, 1), (1, 2, 3), T=T)
    row = run(deconv, spikes)
    assert row["sops_approx_per_image"] == pytest.approx(2 / (T * 32) * T * flops)
    grouped = nn.ConvTranspose2d(4, 6, 3, padding=1, groups=2)
    assert run(grouped, torch.rand(1, 1, 4, 4, 4) + 0.1)["macs_per_image"] == 4 * 4 * 4 * 3 * 9


@pytest.mark.parametrize("preset, multiply_pj, add_pj", [("fp32", 3.7, 0.9), ("fp16", 1.1, 0.4), ("int8", 0.2, 0.03)])
def test_energy_presets_are_horowitz_2014_45nm_a_mac_is_a_multiply_plus_an_add_and_an_ac_an_add(
        preset, multiply_pj, add_pj):
    linear = nn.Linear(5, 7)
    metric = Energy(preset)
    metric.update("analog", torch.full((2, 1, 5), 0.5), linear)  # T x 5 x 7 = 70 MACs
    metric.update("spiking", torch.tensor([[[1.0, 1, 0, 0, 1]], [[0, 0, 0, 1, 0]]]), linear)  # 4 x 7
    rows = metric.compute().layers.set_index("layer")
    assert rows.loc["analog", "macs_per_image"] == 70 and rows.loc["spiking", "sops_per_image"] == 28
    assert rows.loc["analog", "energy_pj_per_image"] == pytest.approx(70 * (multiply_pj + add_pj), rel=1e-12)
    assert rows.loc["spiking", "energy_pj_per_image"] == pytest.approx(28 * add_pj, rel=1e-12)


def test_published_energy_per_mac_is_4_6_1_5_and_0_23_pj_and_per_ac_0_9_0_4_and_0_03_pj():
    linear = nn.Linear(10, 10)  # 100 MACs for one analog timestep, 100 ACs for ten spikes
    for preset, mac_pj, ac_pj in (("fp32", 4.6, 0.9), ("fp16", 1.5, 0.4), ("int8", 0.23, 0.03)):
        metric = Energy(preset)
        metric.update("analog", torch.full((1, 1, 10), 0.5), linear)
        metric.update("spiking", torch.ones(1, 1, 10), linear)
        energy = metric.compute().layers.set_index("layer")["energy_pj_per_image"]
        assert energy["analog"] == pytest.approx(100 * mac_pj, rel=1e-12), preset
        assert energy["spiking"] == pytest.approx(100 * ac_pj, rel=1e-12), preset


def test_dense_operations_are_the_flops_of_every_timestep_whatever_the_input():
    conv = nn.Conv2d(2, 3, 3, padding=1)
    spikes = (torch.rand(4, 1, 2, 5, 5, generator=torch.Generator().manual_seed(0)) < 0.2).float()  # T=4, B=1
    row = run(conv, spikes)
    flops = 3 * 5 * 5 * 2 * 9  # C_out x H x W x C_in x k^2, padding taps included
    assert row["dense_ops_per_image"] == 4 * flops and row["macs_per_image"] == 0
    assert run(conv, torch.rand(4, 1, 2, 5, 5) + 0.1)["dense_ops_per_image"] == 4 * flops
