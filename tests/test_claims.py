"""The paper's claims read against hand-made results (docs/metrics.md, "The paper's claims as spikescope
reads them")."""
import numpy as np
import pandas as pd
import pytest

from spikescope.claims import orientation_claim, read_claims, temporal_claim

NAN = float("nan")
CONSISTENT_HEIGHT = "consistent (reading 'vertical' as variation along the height)"
CONSISTENT_STRIPES = "consistent only when 'vertical' means vertical stripes"


def layers(*rows):
    """Per-layer spectrum rows in depth order: `(name, height, axis_OI, wedge_OI)`; height NaN = no 2D map."""
    return pd.DataFrame(rows, columns=["layer", "height", "axis_OI", "wedge_OI"])


def cosines(off_diagonal, T=2):
    """A `T x T` cosine matrix with 1 on the diagonal and `off_diagonal` elsewhere."""
    matrix = np.full((T, T), float(off_diagonal))
    np.fill_diagonal(matrix, 1.0)
    return matrix


def similarity(spike, spectral_ac, T=2):
    return {"spike_cosine": cosines(spike, T), "spectral_cosine_ac": cosines(spectral_ac, T)}


# --- claim 1: orientation from shallow to deep ---------------------------------------------------------------

def test_oi_positive_in_shallow_and_negative_in_deep_layers_is_consistent_reading_vertical_as_along_the_height():
    result = orientation_claim(layers(("conv1", 28, 0.4, 0.3), ("conv2", 14, 0.1, 0.05), ("conv3", 7, -0.2, -0.3)))
    assert result["verdict"] == CONSISTENT_HEIGHT
    assert "+0.400 (conv1) to -0.200 (conv3)" in result["evidence"]
    assert "+0.300 (conv1) to -0.300 (conv3)" in result["evidence"]


def test_the_opposite_sign_flip_is_consistent_only_when_vertical_means_vertical_stripes():
    result = orientation_claim(layers(("conv1", 28, -0.4, -0.3), ("conv2", 14, 0.2, 0.1)))
    assert result["verdict"].startswith(CONSISTENT_STRIPES)


@pytest.mark.parametrize("shallow, deep", [
    ((0.4, 0.3), (0.2, 0.1)),     # no flip: both positive
    ((-0.4, -0.3), (-0.1, -0.2)),  # no flip: both negative
    ((0.4, 0.3), (-0.2, 0.1)),    # only the axis split flips
    ((0.4, -0.3), (-0.2, 0.1)),   # the splits flip in opposite directions
])
def test_no_sign_flip_in_both_splits_is_not_supported(shallow, deep):
    result = orientation_claim(layers(("conv1", 28, *shallow), ("conv2", 14, *deep)))
    assert result["verdict"].startswith("not supported")


def test_fewer_than_two_layers_with_2d_maps_is_not_testable():
    one_map = orientation_claim(layers(("conv1", 28, 0.4, 0.3), ("fc1", NAN, NAN, NAN), ("fc2", NAN, NAN, NAN)))
    assert one_map["verdict"] == "not testable"
    assert "1 layer(s) with 2D spike maps" in one_map["evidence"]
    assert orientation_claim(layers(("fc1", NAN, NAN, NAN), ("fc2", NAN, NAN, NAN)))["verdict"] == "not testable"
    assert orientation_claim(layers())["verdict"] == "not testable"


def test_a_silent_deepest_conv_layer_is_left_out_and_the_deepest_measured_layer_is_compared():
    result = orientation_claim(layers(("conv1", 28, 0.4, 0.3), ("conv2", 14, -0.2, -0.1), ("conv3", 7, NAN, NAN),
                                      ("fc", NAN, NAN, NAN)))
    assert result["verdict"] == CONSISTENT_HEIGHT
    assert "(conv1) to -0.200 (conv2)" in result["evidence"] and "(conv3)" not in result["evidence"]
    assert "no data" in result["evidence"] and result["evidence"].endswith("conv3.")
    assert "fc" not in result["evidence"]  # a layer without 2D maps is not a silent conv layer


def test_a_silent_shallowest_conv_layer_is_left_out_too():
    result = orientation_claim(layers(("conv1", 28, NAN, NAN), ("conv2", 14, -0.3, -0.2), ("conv3", 7, 0.1, 0.2)))
    assert result["verdict"].startswith(CONSISTENT_STRIPES)
    assert "(conv2) to +0.100 (conv3)" in result["evidence"] and "Left out" in result["evidence"]
    assert "conv1" in result["evidence"].split("Left out")[1]


@pytest.mark.parametrize("axis_oi, wedge_oi", [(NAN, -0.2), (-0.2, NAN)])
def test_a_layer_with_orientation_energy_in_one_split_only_counts_as_silent(axis_oi, wedge_oi):
    result = orientation_claim(layers(("conv1", 28, 0.4, 0.3), ("conv2", 14, axis_oi, wedge_oi),
                                      ("conv3", 7, -0.1, -0.1)))
    assert result["verdict"] == CONSISTENT_HEIGHT
    assert "(conv3)" in result["evidence"] and result["evidence"].endswith("conv2.")


def test_two_conv_layers_of_which_one_is_silent_are_no_data_not_a_verdict():
    result = orientation_claim(layers(("conv1", 28, 0.4, 0.3), ("conv2", 14, NAN, NAN)))
    assert result["verdict"] == "no data"
    assert "2 layers have 2D spike maps but only 1 carry orientation energy" in result["evidence"]
    assert "conv2" in result["evidence"]


# --- claim 2: similarity across timesteps --------------------------------------------------------------------

def test_high_spike_and_spectral_cosines_everywhere_are_consistent():
    result = temporal_claim({"lif1": similarity(0.95, 0.97, T=3), "lif2": similarity(0.91, 0.99, T=3)})
    assert result["verdict"].startswith("consistent")
    assert "lif1 0.970" in result["evidence"] and "lif1 0.950" in result["evidence"]


def test_a_cosine_of_exactly_the_threshold_counts_as_barely_differs():
    assert temporal_claim({"lif1": similarity(0.9, 0.9)})["verdict"].startswith("consistent")


def test_a_spectral_cosine_below_0_9_in_any_layer_is_not_supported():
    result = temporal_claim({"lif1": similarity(0.95, 0.97), "lif2": similarity(0.95, 0.89)})
    assert result["verdict"] == "not supported: frequency content differs across timesteps in lif2"


def test_low_spike_cosine_with_high_spectral_cosine_is_partly():
    result = temporal_claim({"lif1": similarity(0.95, 0.97), "lif2": similarity(0.6, 0.95)})
    assert result["verdict"].startswith("partly")
    assert "lif2" in result["verdict"] and "lif1" not in result["verdict"]


def test_the_lowest_off_diagonal_entry_decides_not_the_mean():
    matrix = cosines(0.99, T=3)
    matrix[0, 2] = matrix[2, 0] = 0.8  # timesteps 0 and 2 differ (the mean off-diagonal entry is still 0.93)
    result = temporal_claim({"lif1": {"spike_cosine": cosines(0.99, T=3), "spectral_cosine_ac": matrix}})
    assert result["verdict"].startswith("not supported")


def test_a_layer_that_never_fired_is_no_data_and_never_evidence_for_the_claim():
    silent = {"spike_cosine": cosines(NAN), "spectral_cosine_ac": cosines(NAN)}
    result = temporal_claim({"lif1": silent})
    assert result["verdict"] == "no data"
    assert "lif1" in result["evidence"]


def test_a_silent_layer_among_measured_ones_is_listed_as_no_data_and_left_out_of_the_verdict():
    silent = {"spike_cosine": cosines(NAN), "spectral_cosine_ac": cosines(NAN)}
    result = temporal_claim({"lif1": similarity(0.95, 0.97), "lif2": silent, "lif3": similarity(0.5, 0.96)})
    assert result["verdict"].startswith("partly") and "lif3" in result["verdict"]
    assert result["evidence"].endswith("No data (no spikes at two timesteps): lif2.")
    assert "lif2 " not in result["evidence"].split("No data")[0]


def test_a_layer_silent_at_one_timestep_pair_is_judged_on_the_pairs_it_fired_at():
    spike = cosines(0.95, T=3)
    spike[1, 2] = spike[2, 1] = NAN  # no sample fired at both t=1 and t=2
    result = temporal_claim({"lif1": {"spike_cosine": spike, "spectral_cosine_ac": cosines(0.97, T=3)}})
    assert result["verdict"].startswith("consistent")
    assert "lif1 0.950" in result["evidence"]


def test_one_timestep_is_not_testable():
    result = temporal_claim({"lif1": similarity(NAN, NAN, T=1), "lif2": similarity(NAN, NAN, T=1)})
    assert result["verdict"] == "not testable"


def test_read_claims_returns_claim_1_then_claim_2():
    claims = read_claims(layers(("conv1", 28, 0.4, 0.3), ("conv2", 14, -0.2, -0.1)),
                         {"conv1": similarity(0.95, 0.97)})
    assert [c["claim"] for c in claims] == ["shallow layers learn vertical variations, deeper layers horizontal ones",
                                            "feature learning barely differs across timesteps"]
    assert claims[0]["verdict"] == CONSISTENT_HEIGHT and claims[1]["verdict"].startswith("consistent")
    assert all(c["rule"] for c in claims)
