import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F
from torch import nn

from spikescope.dct import dct_basis_2d, dct_matrix
from spikescope.errors import SpikescopeError
from spikescope.fsta import BRANCHES, FSTA, add_fsta, apply_banded, composed_operator, conv_by_shifts, separable_dct
from spikescope.models import build
from spikescope.neurons import LIF


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def reference_fsta(module: FSTA, x: np.ndarray) -> np.ndarray:
    """docs/metrics.md, "FSTA", written out with numpy loops, independent of the module's tensor code."""
    T, B, C, H, W = x.shape
    k = module.dct_size
    m, n = module.m.item(), module.n.item()
    x_t = x.copy()
    if module.branches != "spatial":
        alpha, beta = module.alpha.item(), module.beta.item()
        mixer = module.time_mixer.weight.detach().numpy()
        for b in range(B):
            z = alpha * x[:, b].mean(axis=(2, 3)) + beta * x[:, b].max(axis=(2, 3))  # [T, C]
            w_t = sigmoid((mixer @ z).mean(axis=1))  # [T]
            x_t[:, b] = x[:, b] * (1 + w_t[:, None, None, None])
    y = np.empty_like(x)
    near, far = k // 2, (k - 1) // 2
    bank = dct_basis_2d(k).numpy()
    for b in range(B):
        x_s = x_t[:, b]
        if module.branches != "temporal":
            summed = x_t[:, b].mean(axis=0).sum(axis=0)  # [H, W]
            padded = np.pad(summed, ((near, far), (near, far)))
            maps = np.stack([scipy.signal.correlate2d(padded, f, mode="valid") for f in bank])
            for conv in (c for c in module.frequency_fusion.modules() if isinstance(c, nn.Conv2d)):
                weight = conv.weight.detach().numpy()  # [out, in, 7, 7]
                maps = np.pad(maps, ((0, 0), (3, 3), (3, 3)))
                maps = np.stack([sum(scipy.signal.correlate2d(maps[i], w[i], mode="valid") for i in range(len(w)))
                                 for w in weight])
                if len(weight) > 1:
                    maps = np.maximum(maps, 0)  # the ReLU between the two convolutions of a reduction
            x_s = x_t[:, b] * (1 + sigmoid(maps[0]))
        y[:, b] = (m * x_t[:, b] + n * x_s) / 2
    return y


def equations_in_torch(module: FSTA, x: torch.Tensor) -> torch.Tensor:
    """docs/metrics.md, "FSTA", as the equations read, in torch so that autograd gives reference gradients: every
    2D DCT filter and the fusion convolution as plain convolutions, both branches computed, then fused."""
    x_t = x_s = x
    if module.branches != "spatial":
        descriptor = module.alpha * x.mean(dim=(3, 4)) + module.beta * x.amax(dim=(3, 4))  # [T, B, C]
        w_t = torch.sigmoid(torch.einsum("st,tbc->sbc", module.time_mixer.weight, descriptor).mean(dim=2))  # [T, B]
        x_t = x_s = x * (1 + w_t[:, :, None, None, None])
    if module.branches != "temporal":
        k = module.dct_size
        summed = x_t.mean(dim=0).sum(dim=1, keepdim=True)  # [B, 1, H, W]
        padded = F.pad(summed, (k // 2, (k - 1) // 2, k // 2, (k - 1) // 2))
        rows = module.dct_rows  # dct_basis_2d's filters, from the module's rows
        bank = torch.einsum("uh,vw->uvhw", rows, rows).reshape(k * k, 1, k, k)
        coefficients = F.conv2d(padded, bank)  # [B, k*k, H, W]
        x_s = x_t * (1 + torch.sigmoid(module.frequency_fusion(coefficients)))
    return (module.m * x_t + module.n * x_s) / 2


def moved_parameters(module: FSTA) -> FSTA:
    """`module` with every parameter moved off its initial value, so that equal starting values (alpha = beta)
    cannot hide two swapped terms."""
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    return module


@pytest.mark.parametrize("branches", BRANCHES)
@pytest.mark.parametrize("dct_size, reduction", [(3, 1), (7, 1), (8, 1), (7, 16)])
@pytest.mark.parametrize("shape", [(3, 2, 4, 9, 11), (3, 1, 2, 2, 300)])  # the DCT and fusion composed; kept apart
def test_fsta_matches_the_design_equations(dct_size, reduction, branches, shape):
    torch.manual_seed(0)
    module = FSTA(None, T=3, dct_size=dct_size, reduction=reduction, branches=branches).double()
    x = torch.randn(*shape, dtype=torch.float64)
    np.testing.assert_allclose(module(x).detach().numpy(), reference_fsta(module, x.numpy()), atol=1e-10)
    single = module.float()(x.float()).detach().numpy()  # float32, as models run
    np.testing.assert_allclose(single, reference_fsta(module.double(), x.numpy()), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("branches", BRANCHES)
@pytest.mark.parametrize("dct_size, reduction", [(3, 1), (7, 1), (8, 1), (7, 16)])
@pytest.mark.parametrize("shape", [(3, 2, 4, 9, 11), (3, 2, 5), (3, 1, 2, 2, 300)])  # maps, linear input, a wide map
def test_outputs_and_all_gradients_equal_the_equations_written_out(branches, dct_size, reduction, shape):
    torch.manual_seed(0)
    module = moved_parameters(FSTA(None, T=3, dct_size=dct_size, reduction=reduction, branches=branches).double())
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    grad_y = torch.randn(*shape, dtype=torch.float64)
    expected = equations_in_torch(module, x if x.dim() == 5 else x[..., None, None]).reshape(shape)
    y = module(x)
    torch.testing.assert_close(y, expected, rtol=1e-10, atol=1e-12)
    with torch.no_grad():
        torch.testing.assert_close(module(x), expected, rtol=1e-10, atol=1e-12)  # inference takes amax
    inputs = [x, *module.parameters()]
    expected_grads = torch.autograd.grad(expected, inputs, grad_y)
    for grad, expected_grad in zip(torch.autograd.grad(y, inputs, grad_y), expected_grads):
        torch.testing.assert_close(grad, expected_grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("branches", BRANCHES)
@pytest.mark.parametrize("dct_size", [3, 7, 8])
def test_in_float32_output_and_input_gradient_stay_within_1e_5_of_the_equations(branches, dct_size):
    """Parameter gradients are sums over every element, whose float32 rounding depends on the order of the sum
    (either order can be off by more than 1e-5 where the terms cancel); the test above checks them in float64."""
    torch.manual_seed(0)
    module = moved_parameters(FSTA(None, T=3, dct_size=dct_size, branches=branches).double())
    x = torch.randn(3, 2, 4, 9, 11, dtype=torch.float64, requires_grad=True)
    grad_y = torch.randn_like(x)
    expected = equations_in_torch(module, x)
    (expected_grad,) = torch.autograd.grad(expected, x, grad_y)
    single = x.detach().float().requires_grad_()
    y = module.float()(single)
    (grad,) = torch.autograd.grad(y, single, grad_y.float())
    assert (y.double() - expected).abs().max() <= 1e-5 * expected.abs().max()
    assert (grad.double() - expected_grad).abs().max() <= 1e-5 * expected_grad.abs().max()


@pytest.mark.parametrize("branches", BRANCHES)
def test_second_derivatives_equal_the_equations_written_out(branches):
    torch.manual_seed(0)
    module = moved_parameters(FSTA(None, T=2, branches=branches).double())
    x = torch.randn(2, 2, 3, 6, 7, dtype=torch.float64, requires_grad=True)
    weights = torch.randn_like(x)
    second = []
    for y in (module(x), equations_in_torch(module, x)):
        (grad,) = torch.autograd.grad((y * weights).sum(), x, create_graph=True)
        second.append(torch.autograd.grad((grad ** 2).sum(), [x, *module.parameters()]))
    for got, expected in zip(*second):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_the_maximum_gives_its_gradient_to_one_position_of_a_map_with_ties():
    module = FSTA(1, T=2, branches="temporal")
    x = torch.ones(2, 3, 1, 3, 3, requires_grad=True)  # every position of every map is a maximum
    module(x).sum().backward()
    grad = x.grad.flatten(-2)
    differs = (grad - grad.median(dim=-1, keepdim=True).values).abs() > 1e-6
    assert differs.sum(dim=-1).eq(1).all()


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 8, 14, 32])
@pytest.mark.parametrize("dct_size", [3, 7, 8])
def test_output_shape_equals_input_shape_for_maps_from_1x1_to_32x32(size, dct_size):
    x = torch.randn(2, 3, 5, size, size)
    assert FSTA(5, T=2, dct_size=dct_size)(x).shape == x.shape


def test_linear_layer_input_is_treated_as_1x1_maps():
    x = torch.randn(2, 3, 17)
    assert FSTA(17, T=2)(x).shape == x.shape


def test_gain_is_near_one_at_initialisation():
    torch.manual_seed(0)
    x = torch.randn(2, 16, 32, 14, 14)  # BatchNorm output: zero mean, unit variance
    y = FSTA(32, T=2)(x)
    gain = (y * x).sum() / (x * x).sum()  # least-squares scale of y on x
    assert 0.8 < gain.item() < 1.25
    assert (y / x).min() > 0.5 and (y / x).max() < 1.6  # every factor lies in the module's [0.55, 1.6] range


@pytest.mark.parametrize("reduction", [1, 16])
@pytest.mark.parametrize("branches", ["both", "temporal", "spatial"])
def test_every_learnable_parameter_receives_a_gradient(reduction, branches):
    torch.manual_seed(0)
    module = FSTA(8, T=4, reduction=reduction, branches=branches)
    x = torch.randn(4, 2, 8, 10, 10)
    (module(x) * torch.randn_like(x)).sum().backward()
    for name, parameter in module.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_dct_is_a_nonpersistent_buffer_built_from_the_formula():
    module = FSTA(4, T=2)
    assert "dct_rows" in dict(module.named_buffers())
    assert not any("dct" in key for key in module.state_dict())
    assert torch.equal(module.dct_rows, dct_matrix(7, dtype=torch.float32))
    assert module.double().dct_rows.dtype == torch.float64


@pytest.mark.parametrize("k", [3, 7, 8])
def test_two_1d_passes_equal_the_2d_dct_bank(k):
    maps = torch.randn(3, 1, 9, 12, dtype=torch.float64)
    near, far = k // 2, (k - 1) // 2
    bank = F.conv2d(F.pad(maps, (near, far, near, far)), dct_basis_2d(k, dtype=torch.float64).unsqueeze(1))
    torch.testing.assert_close(separable_dct(maps, dct_matrix(k)), bank, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("out_channels, in_channels, kernel, padding", [(1, 49, 7, 3), (3, 49, 7, 3), (1, 3, 7, 3),
                                                                        (2, 4, 3, 0), (1, 5, 5, 1)])
def test_a_convolution_by_shifted_1x1_products_equals_the_convolution(out_channels, in_channels, kernel, padding):
    x = torch.randn(2, in_channels, 8, 11, dtype=torch.float64)
    weight = torch.randn(out_channels, in_channels, kernel, kernel, dtype=torch.float64)
    torch.testing.assert_close(conv_by_shifts(x, weight, padding), F.conv2d(x, weight, padding=padding),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k", [3, 7, 8])
@pytest.mark.parametrize("out_channels", [1, 3])
@pytest.mark.parametrize("height, width", [(1, 1), (2, 3), (9, 12), (14, 5)])
def test_the_composed_operator_equals_the_dct_bank_then_the_zero_padded_fusion_convolution(k, out_channels, height,
                                                                                             width):
    maps = torch.randn(2, 1, height, width, dtype=torch.float64)
    weight = torch.randn(out_channels, k * k, 7, 7, dtype=torch.float64)
    expected = F.conv2d(separable_dct(maps, dct_matrix(k)), weight, padding=3)
    operator = composed_operator(weight, dct_matrix(k), height, width, padding=3)
    torch.testing.assert_close(apply_banded(maps[:, 0], operator, top=3 + k // 2), expected, rtol=1e-12, atol=1e-12)


def test_macs_count_the_composed_operator_on_small_maps_and_the_separable_order_on_wide_ones():
    T, channels = 2, 3
    module = FSTA(channels, T=T)
    for height, width in [(6, 6), (2, 300)]:
        elements, pixels = T * channels * height * width, height * width
        rest = (2 * elements + T * T * channels + T * channels  # temporal: mean and max, time mixing, channel mean
                + elements + 2 * T * pixels  # spatial: channel sum, temporal scaling and mean over time
                + pixels + T * pixels + elements)  # spatial gate, the gain, Y = X * gain
        composed = pixels * 13 * width  # every output reads 7 + 7 - 1 rows of the map
        separable = 7 * 7 * height * (width + 6) + 7 ** 3 * pixels + 49 * 49 * pixels + 49 * pixels
        assert module.fusion_macs(height, width) == (composed, separable)
        assert module.macs((channels, height, width)) == rest + min(composed, separable)
    assert module.fusion_macs(6, 6)[0] < module.fusion_macs(6, 6)[1]
    assert module.fusion_macs(2, 300)[0] > module.fusion_macs(2, 300)[1]


def test_temporal_only_rescales_each_timestep_by_one_factor():
    x = torch.randn(3, 2, 4, 6, 6)
    ratio = FSTA(4, T=3, branches="temporal")(x) / x
    assert torch.allclose(ratio, ratio[:, :, :1, :1, :1].expand_as(ratio), atol=1e-6)
    assert not torch.allclose(ratio[0], ratio[1])


def test_spatial_only_applies_one_map_to_all_timesteps_and_channels():
    x = torch.randn(3, 2, 4, 6, 6)
    ratio = FSTA(4, T=3, branches="spatial")(x) / x
    assert torch.allclose(ratio, ratio[:1, :, :1].expand_as(ratio), atol=1e-6)


def test_wrong_time_or_channel_count_is_a_clear_error():
    with pytest.raises(SpikescopeError, match="T=2"):
        FSTA(4, T=2)(torch.randn(3, 1, 4, 5, 5))
    with pytest.raises(SpikescopeError, match="4 channels"):
        FSTA(4, T=2)(torch.randn(2, 1, 3, 5, 5))


def test_add_fsta_puts_one_module_in_front_of_every_neuron_of_any_time_first_model():
    model = nn.Sequential(nn.Linear(6, 8), LIF(), nn.Linear(8, 3), LIF())
    before = set(model.state_dict())
    add_fsta(model, T=2)
    assert sum(isinstance(m, FSTA) for m in model.modules()) == 2
    assert before <= set(model.state_dict())  # existing keys keep their names
    x = torch.randn(2, 5, 6)
    reference = model[3](model[3].fsta(model[2](model[1](model[1].fsta(model[0](x))))))
    assert torch.equal(model(x), reference)


def test_add_fsta_refuses_a_model_without_spiking_layers():
    with pytest.raises(SpikescopeError, match="no spiking layer"):
        add_fsta(nn.Sequential(nn.Linear(2, 2)), T=2)


def test_models_built_with_fsta_have_it_in_front_of_every_lif():
    model = build("compact_cnn", fsta=True)
    neurons = [m for m in model.modules() if isinstance(m, LIF)]
    assert len(neurons) == 5 and all(isinstance(n.fsta, FSTA) for n in neurons)
