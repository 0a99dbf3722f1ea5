"""benchmarks/practice.py: spikescope and today's practice (OutputMonitor + numpy / scipy) compute the same numbers."""
import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

import spikescope
from conftest import needs_fashion_mnist
from spikescope.data import load_dataset, make_loader

pytest.importorskip("spikingjelly")
pytest.importorskip("scipy")


@pytest.fixture(scope="module")
def practice():
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "practice.py"
    spec = importlib.util.spec_from_file_location("practice_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.fixture(scope="module")
def statistics(practice):
    """(b) and (c) on the first 64 test images."""
    model, _ = spikescope.load(spikescope.bundled_checkpoint("baseline"))
    loader = make_loader(load_dataset("fashion-mnist", "test", limit=64), 32)
    return practice.spikescope_statistics(model, loader), practice.practice_statistics(model.eval(), loader)


@needs_fashion_mnist
def test_analyze_and_the_output_monitor_practice_agree_on_64_images(practice, statistics):
    checks = practice.compare(*statistics)
    assert [label for label, _, _, agree in checks if not agree] == []
    assert len(checks) == len(practice.CHECKS)


@needs_fashion_mnist
def test_the_check_fails_on_a_difference_beyond_float32_rounding_or_a_missing_layer(practice, statistics):
    ours, theirs = statistics
    power = {layer: p.copy() for layer, p in theirs.power.items()}
    power["block3.lif"][1, 2, 3] *= 1 + 1e-4
    cosine = {layer: c for layer, c in theirs.spike_cosine.items() if layer != "block5.lif"}
    checks = practice.compare(ours, dataclasses.replace(theirs, power=power, spike_cosine=cosine))
    assert [label for label, _, _, agree in checks if not agree] == ["DCT power per timestep",
                                                                     "spike cosine between timesteps"]


@pytest.mark.parametrize("geometry", [dict(kernel_size=3, padding=1), dict(kernel_size=3, stride=2),
                                      dict(kernel_size=(3, 2), stride=(2, 1), padding=(2, 0), dilation=(2, 1)),
                                      dict(kernel_size=3, padding=1, groups=2)])
def test_conv_fan_out_is_the_number_of_weights_each_input_meets(practice, geometry):
    conv = torch.nn.Conv2d(2, 4, bias=False, **geometry)
    inputs = torch.zeros(1, 2, 7, 9, requires_grad=True)
    torch.nn.functional.conv2d(inputs, torch.ones_like(conv.weight), None, conv.stride, conv.padding,
                               conv.dilation, conv.groups).sum().backward()  # d(sum)/d(input) counts the taps
    assert (practice.conv_fan_out(conv, 7, 9) == inputs.grad[0, 0].numpy()).all()
