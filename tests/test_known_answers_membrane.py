"""Membrane statistics at their boundaries: values exactly on bin edges, on the threshold, in the catch-all bins,
and the SD's definition (population: n in the denominator)."""
import math

import numpy as np
import pytest
import torch

from spikescope.metrics.membrane import BINS, COLUMNS, EDGES, NEAR, MembranePotential


def binned(ratios: list[float], fired: list[bool] | None = None, threshold: float = 1.0) -> MembranePotential:
    """A metric fed one timestep of one sample whose neurons sit at `ratios` x threshold."""
    potential = torch.tensor([[ratios]], dtype=torch.float64) * threshold  # [T=1, B=1, N]
    spikes = torch.tensor([[fired or [False] * len(ratios)]], dtype=torch.float32)
    metric = MembranePotential()
    metric.update("l", potential, spikes, threshold)
    return metric


def column_of(ratio: float, fired: bool = False) -> str:
    histogram = binned([ratio], [fired]).states["l"]["histogram"][0]
    assert int(histogram.sum()) == 1
    return COLUMNS[int(histogram.argmax())]


def test_the_edges_are_the_decimals_the_columns_name():
    assert EDGES[0] == -6.0 and EDGES[-1] == 1.0 and len(EDGES) == BINS + 1
    np.testing.assert_array_equal(EDGES, [float(f"{-6 + k / 10:.1f}") for k in range(BINS + 1)])


@pytest.mark.parametrize("k", range(BINS))
def test_a_value_exactly_on_an_edge_opens_the_bin_above_it_and_one_just_below_stays_below(k):
    edge = float(EDGES[k])
    assert column_of(edge) == COLUMNS[k + 1]
    assert column_of(math.nextafter(edge, -math.inf)) == COLUMNS[k]  # COLUMNS[0] is "below"


def test_catch_all_bins_the_threshold_and_the_fired_neurons():
    assert column_of(-6.0) == "-6.00..-5.90" and column_of(-100.0) == "below"
    assert column_of(1.0) == "0.90..1.00"  # on the threshold without firing (spikescope's LIF fires above it)
    assert column_of(1.7) == "0.90..1.00"  # a neuron whose rule let it stay quiet above the threshold
    assert column_of(0.3, fired=True) == "fired" and column_of(-7.0, fired=True) == "fired"


def test_the_near_threshold_share_starts_exactly_at_0_9_and_counts_the_threshold():
    below = math.nextafter(NEAR, 0.0)
    metric = binned([below, NEAR, 1.0, 0.95, 0.5], threshold=0.5)
    assert int(metric.states["l"]["near"][0]) == 3
    assert metric.compute().layers["near_threshold_share"].item() == pytest.approx(3 / 5)


def test_a_ratio_on_an_edge_is_binned_exactly_whatever_the_threshold():
    metric = binned([0.9, -5.9], threshold=0.5)  # u = 0.45 and -2.95: the ratio in float64 is the edge itself
    histogram = metric.states["l"]["histogram"][0].tolist()
    assert histogram[COLUMNS.index("0.90..1.00")] == 1 and histogram[COLUMNS.index("-5.90..-5.80")] == 1


def test_the_membrane_sd_is_the_population_sd_of_the_quiet_neurons():
    result = binned([0.0, 2.0, 0.5], fired=[False, False, True]).compute()  # the fired neuron is left out
    assert result.layers["membrane_mean"].item() == pytest.approx(1.0)
    assert result.layers["membrane_sd"].item() == pytest.approx(1.0, rel=1e-12)  # sample SD would be 1.414
    assert result.timesteps["membrane_sd"].item() == pytest.approx(1.0, rel=1e-12)


def test_the_sd_over_timesteps_pools_every_quiet_neuron_of_every_timestep():
    potential = torch.tensor([[[0.0, 0.0]], [[4.0, 4.0]]], dtype=torch.float64)  # t = 0: 0, 0; t = 1: 4, 4
    metric = MembranePotential()
    metric.update("l", potential, torch.zeros_like(potential), 8.0)  # ratios 0 and 0.5
    result = metric.compute()
    assert result.timesteps["membrane_sd"].tolist() == [0.0, 0.0]
    assert result.layers["membrane_sd"].item() == pytest.approx(0.25, rel=1e-12)  # population SD of 0, 0, .5, .5
