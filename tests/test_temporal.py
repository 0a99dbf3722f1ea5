import numpy as np
import pytest
import torch

from spikescope.metrics.temporal import TemporalSimilarity


def test_identical_timesteps_have_similarity_one():
    one_step = (torch.rand(1, 6, 4, 5, 5) < 0.4).float()
    metric = TemporalSimilarity()
    metric.update("layer", one_step.expand(3, -1, -1, -1, -1))
    np.testing.assert_allclose(metric.compute().arrays["spike_cosine"]["layer"], np.ones((3, 3)), rtol=1e-12)


def test_hand_computed_cosines_and_left_out_samples():
    s = torch.tensor([
        [[1, 1, 0, 0], [1, 0, 0, 0]],  # t = 0: sample 0, sample 1
        [[1, 0, 1, 0], [0, 0, 0, 0]],  # t = 1: sample 1 is silent
    ], dtype=torch.float32)
    metric = TemporalSimilarity()
    metric.update("layer", s)
    result = metric.compute()
    matrix = result.arrays["spike_cosine"]["layer"]
    assert matrix[0, 1] == pytest.approx(0.5)  # only sample 0 counts: <s0, s1> = 1, |s0| = |s1| = sqrt 2
    assert matrix[0, 0] == pytest.approx(1.0)
    assert result.arrays["left_out"]["layer"].tolist() == [[0, 1], [1, 1]]
    assert result.layers.loc[0, "similarity_left_out_max"] == 1  # off-diagonal entries only
    assert result.layers.loc[0, "spike_cosine_mean_off_diagonal"] == pytest.approx(0.5)


def test_an_entry_with_every_sample_left_out_is_nan_and_skipped_by_the_mean():
    s = torch.zeros(3, 2, 4)
    s[0, :, 0] = s[1, :, 0] = 1  # t = 2 never fires
    result = TemporalSimilarity()
    result.update("layer", s)
    computed = result.compute()
    assert np.isnan(computed.arrays["spike_cosine"]["layer"][0, 2])
    assert computed.layers.loc[0, "spike_cosine_mean_off_diagonal"] == pytest.approx(1.0)
