import pytest
import torch
import torch.nn.functional as F

from spikescope.errors import SpikescopeError
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
