import pytest
import torch
import torch.nn.functional as F

from spikescope import TrainConfig, load, train
from spikescope.errors import SpikescopeError
from spikescope.fsta import FSTA
from spikescope.models import available, build
from spikescope.neurons import LIF


def spike_shapes(model, x):
    shapes = []
    handles = [m.register_forward_hook(lambda mod, i, o: shapes.append(tuple(o.shape)))
               for m in model.modules() if isinstance(m, LIF)]
    model(x)
    for h in handles:
        h.remove()
    return shapes


def test_compact_cnn_has_100k_to_300k_parameters_and_spiking_layers_at_three_resolutions():
    model = build("compact_cnn", T=2)
    assert 100_000 <= sum(p.numel() for p in model.parameters()) <= 300_000
    shapes = spike_shapes(model, torch.randn(3, 1, 28, 28))
    assert [s[-1] for s in shapes] == [28, 28, 14, 14, 7]
    assert all(s[:2] == (2, 3) for s in shapes)  # time-first [T, B, ...]
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_models_accept_time_first_input_and_reject_wrong_shapes():
    model = build("compact_cnn", T=3)
    assert model(torch.randn(3, 2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match=r"\[3, B, C, H, W\]"):
        model(torch.randn(2, 2, 1, 28, 28))


@pytest.mark.parametrize("name, classes, parameters, neurons",
                         [("resnet20", 10, 11_247_946, 19), ("resnet19", 100, 12_615_396, 17)])
def test_resnets_match_the_reference_code_parameter_and_neuron_counts(name, classes, parameters, neurons):
    model = build(name, num_classes=classes)
    assert sum(p.numel() for p in model.parameters()) == parameters
    assert sum(isinstance(m, LIF) for m in model.modules()) == neurons


@pytest.mark.parametrize("name", ["resnet20", "resnet19"])
@pytest.mark.parametrize("fsta", [False, True])
def test_resnets_train_for_a_few_steps_on_any_input_channels_and_classes(name, fsta):
    torch.manual_seed(0)
    model = build(name, in_channels=2, num_classes=7, T=2, fsta=fsta)
    images, labels = torch.randn(2, 2, 16, 16), torch.tensor([3, 6])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(3):
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert model(images).shape == (2, 7)
    assert losses[-1] < losses[0]


def test_registry_lists_the_zoo_and_rejects_unknown_names_and_kwargs():
    assert {"compact_cnn", "resnet19", "resnet20"} <= set(available())
    with pytest.raises(SpikescopeError, match="unknown architecture 'vgg'"):
        build("vgg")
    with pytest.raises(SpikescopeError, match="cannot build 'compact_cnn'"):
        build("compact_cnn", depth=3)


def conv_channels(model) -> list[int]:
    return [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]


@pytest.mark.parametrize("name, full", [("resnet20", [64] * 7 + [128] * 4 + [256] * 4 + [512] * 4),
                                        ("resnet19", [128] * 7 + [256] * 6 + [512] * 4)])
@pytest.mark.parametrize("width", [0.25, 0.125])
def test_resnet_width_scales_every_channel_count_and_keeps_depth_and_fsta_positions(name, full, width):
    narrow, wide = build(name, width=width, fsta=True), build(name, fsta=True)
    assert conv_channels(narrow) == [round(c * width) for c in full]
    assert conv_channels(wide) == full
    assert narrow.classifier.in_features == round(full[-1] * width)
    for kind in (LIF, FSTA):
        names = [[n for n, m in model.named_modules() if isinstance(m, kind)] for model in (narrow, wide)]
        assert names[0] == names[1] and names[0]


def test_resnet_width_rounds_to_whole_channels_and_refuses_non_positive_widths():
    assert conv_channels(build("resnet20", width=0.3))[:3] == [19, 19, 19]  # 64 x 0.3 = 19.2
    assert conv_channels(build("resnet20", width=0.001))[0] == 1
    for width in (0, -0.5):
        with pytest.raises(SpikescopeError, match="width must be a positive multiplier"):
            build("resnet20", width=width)


@pytest.mark.parametrize("size, maps", [(28, [28, 28, 28, 14, 14, 14, 14, 7, 7, 7, 7, 4, 4, 4, 4, 2, 2, 2, 2]),
                                        (32, [32, 32, 32, 16, 16, 16, 16, 8, 8, 8, 8, 4, 4, 4, 4, 2, 2, 2, 2])])
def test_resnet20_takes_28_px_images_its_pooled_shortcut_rounding_odd_maps_up_like_the_strided_conv(size, maps):
    model = build("resnet20", in_channels=1, T=2, width=0.125)
    assert [s[-1] for s in spike_shapes(model, torch.randn(2, 1, size, size))] == maps


def test_resnet20_pooled_shortcut_averages_the_pixels_a_window_covers_and_is_the_reference_pool_on_even_maps():
    shortcut = build("resnet20", width=0.125).blocks[2].shortcut[0]  # the first stride-2 block's pooling
    odd = torch.arange(49.0).reshape(1, 1, 7, 7)
    pooled = shortcut(odd)
    assert pooled.shape[-2:] == (4, 4)
    assert pooled[0, 0, 3, 3] == 48.0 and pooled[0, 0, 0, 3] == (6.0 + 13.0) / 2  # edge windows: their pixels only
    even = torch.randn(2, 3, 8, 8)
    assert torch.equal(shortcut(even), torch.nn.AvgPool2d(2)(even))


def test_a_narrow_resnet_checkpoint_records_its_width_and_loads_as_the_narrow_network(tmp_path):
    path = train(TrainConfig(data="fashion-mnist-sample", arch="resnet20", arch_kwargs={"width": 0.125}, epochs=1,
                             batch_size=32, limit=64, test_limit=32, out=str(tmp_path)), progress=False)
    model, meta = load(path)
    assert meta["arch_kwargs"]["width"] == 0.125
    assert conv_channels(model) == conv_channels(build("resnet20", in_channels=1, width=0.125))
