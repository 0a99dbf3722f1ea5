import math

import torch

from spikescope.neurons import LIF


def test_lif_integrates_leaks_fires_above_half_and_hard_resets():
    current = torch.tensor([0.3, 0.3, 0.3, 0.6, 0.1]).view(5, 1)
    spikes = LIF()(current).flatten().tolist()
    # u: 0.3 -> 0.375 -> 0.39375 -> 0.6984 (spike, reset to 0) -> 0.1
    assert spikes == [0.0, 0.0, 0.0, 1.0, 0.0]


def test_lif_output_is_binary_and_keeps_shape():
    current = torch.randn(4, 3, 2, 5, 5)
    spikes = LIF()(current)
    assert spikes.shape == current.shape
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}


def test_surrogate_gradient_is_active_in_eval_mode_with_the_dspike_shape():
    neuron = LIF().eval()
    current = torch.tensor([0.5, 0.0, 1.5]).view(1, 3).requires_grad_()
    neuron(current).sum().backward()
    peak = 1.0 / (2 * math.tanh(0.5))  # b sech^2(0) / (2 tanh(b/2)) with b = 1
    assert math.isclose(current.grad[0, 0].item(), peak, rel_tol=1e-6)
    assert current.grad[0, 1].item() == 0.0  # u = 0 is outside (0, 1)
    assert current.grad[0, 2].item() == 0.0  # u = 1.5 is outside (0, 1)


def test_threshold_is_the_membrane_potential_at_which_the_neuron_fires():
    current = torch.tensor([0.29, 0.31, 0.05]).view(3, 1)
    neuron = LIF(decay=0.0, threshold=0.3)
    assert neuron(current).flatten().tolist() == [0.0, 1.0, 0.0]
    assert LIF(decay=0.0, threshold=2.0)(torch.tensor([1.9, 2.1]).view(2, 1)).flatten().tolist() == [0.0, 1.0]


def test_the_surrogate_window_scales_with_the_threshold():
    current = torch.tensor([2.0, 3.9, 4.1]).view(1, 3).requires_grad_()
    LIF(threshold=2.0)(current).sum().backward()  # window 0 < u < 4, peak at u = 2; d(u / 4)/du = 1/4
    assert math.isclose(current.grad[0, 0].item(), 1.0 / (2 * math.tanh(0.5)) / 4, rel_tol=1e-6)
    assert current.grad[0, 1].item() > 0 and current.grad[0, 2].item() == 0.0


def test_a_lif_pickled_with_the_old_parameter_name_fires_where_it_did():
    import pickle

    old = LIF()
    state = old.__dict__.copy()
    state["v_threshold"] = 1.0  # spikescope 0.1 stored the reference code's v_threshold (fire at u > 0.5)
    del state["threshold"]
    restored = LIF.__new__(LIF)
    restored.__setstate__(state)
    assert restored.threshold == 0.5
    assert pickle.loads(pickle.dumps(restored)).threshold == 0.5
