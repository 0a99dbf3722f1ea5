"""Known-answer tests of the firing rate, per timestep, per channel and the silent share (docs/metrics.md)."""
import numpy as np
import pytest
import torch

from spikescope.metrics.firing import FiringRate


def compute(spikes, *more):
    metric = FiringRate()
    for x in (spikes, *more):
        metric.update("layer", x)
    return metric.compute()


def late_firing_spikes():
    """`[T=3, B=2, C=2, H=2, W=2]`: 8 neurons; three fire, two of them only at the last timestep.

    channel 0: (0, 0) fires at t=2 in sample 0 only, (0, 1) fires at t=2 in both samples, (1, *) never;
    channel 1: (1, 1) fires at t=0 and t=2 in sample 1, every other neuron never.
    """
    x = torch.zeros(3, 2, 2, 2, 2)
    x[2, 0, 0, 0, 0] = 1
    x[2, :, 0, 0, 1] = 1
    x[0, 1, 1, 1, 1] = 1
    x[2, 1, 1, 1, 1] = 1
    return x


def test_a_neuron_that_fires_only_at_the_last_timestep_is_not_silent():
    row = compute(late_firing_spikes()).layers.iloc[0]
    assert row["neurons"] == 8 and row["samples"] == 2 and row["T"] == 3
    assert row["silent_fraction"] == 5 / 8  # only the five neurons that never fired at any timestep
    assert row["spikes"] == 5
    assert row["firing_rate"] == 5 / (3 * 2 * 8)


def test_per_timestep_rates_come_out_in_timestep_order_with_exact_values():
    steps = compute(late_firing_spikes()).timesteps
    assert steps["t"].tolist() == [0, 1, 2]
    assert steps["firing_rate"].tolist() == [1 / 16, 0.0, 4 / 16]  # spikes at t / (samples x neurons)


def test_per_channel_rates_and_silent_fractions_are_exact():
    arrays = compute(late_firing_spikes()).arrays
    np.testing.assert_array_equal(arrays["channel_firing_rate"]["layer"], [3 / 24, 2 / 24])  # / (T x B x 4)
    np.testing.assert_array_equal(arrays["channel_silent_fraction"]["layer"], [2 / 4, 3 / 4])


def test_a_neuron_that_fires_late_in_a_later_batch_is_not_silent_either():
    first = torch.zeros(3, 1, 1, 2, 2)
    second = torch.zeros(3, 1, 1, 2, 2)
    second[2, 0, 0, 1, 0] = 1  # fires once, at the last timestep of the second batch
    result = compute(first, second)
    assert result.layers.loc[0, "silent_fraction"] == 3 / 4
    np.testing.assert_array_equal(result.arrays["channel_silent_fraction"]["layer"], [3 / 4])
    assert result.timesteps["firing_rate"].tolist() == [0.0, 0.0, 1 / 8]


def test_a_linear_layer_counts_each_neuron_as_its_own_channel():
    x = torch.zeros(2, 2, 3)  # [T, B, N]
    x[1, 0, 2] = 1
    x[1, 1, 2] = 1
    x[0, 1, 0] = 1
    result = compute(x)
    assert result.layers.loc[0, "silent_fraction"] == pytest.approx(1 / 3, abs=1e-15)
    np.testing.assert_array_equal(result.arrays["channel_silent_fraction"]["layer"], [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(result.arrays["channel_firing_rate"]["layer"], [1 / 4, 0.0, 2 / 4])
    assert result.timesteps["firing_rate"].tolist() == [1 / 6, 2 / 6]


def test_spike_counts_count_as_that_many_spikes_and_keep_the_silent_share_within_0_and_1():
    x = torch.zeros(2, 1, 4)  # [T=2, B=1, N=4]: multi-spike neurons emit whole numbers
    x[0, 0, 0] = 2
    x[1, 0, 1] = 3
    x[1, 0, 0] = 1
    result = compute(x)
    row = result.layers.iloc[0]
    assert row["spikes"] == 6
    assert row["firing_rate"] == 6 / (2 * 1 * 4)
    assert row["silent_fraction"] == 2 / 4  # neurons 2 and 3 never fired; counts above 1 do not count twice
    assert 0 <= row["silent_fraction"] <= 1
    assert result.timesteps["firing_rate"].tolist() == [2 / 4, 4 / 4]
    np.testing.assert_array_equal(result.arrays["channel_silent_fraction"]["layer"], [0.0, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(result.arrays["channel_firing_rate"]["layer"], [3 / 2, 3 / 2, 0.0, 0.0])


def test_a_map_full_of_counts_has_no_silent_neuron_and_a_rate_above_one():
    x = torch.full((2, 3, 2, 2, 2), 3.0)
    row = compute(x).layers.iloc[0]
    assert row["silent_fraction"] == 0.0
    assert row["firing_rate"] == pytest.approx(3.0)
