import pytest

from conftest import needs_fashion_mnist
from spikescope.checkpoint import bundled_checkpoint, load
from spikescope.fsta import FSTA
from spikescope.pipeline import evaluate_checkpoint


@pytest.mark.parametrize("name", ["baseline", "fsta"])
def test_bundled_model_is_small_loads_and_was_trained_on_fashion_mnist_at_T2(name):
    path = bundled_checkpoint(name)
    assert path.stat().st_size < 2 * 1024 * 1024
    model, checkpoint = load(path)
    assert checkpoint["T"] == 2 and checkpoint["dataset"]["name"] == "fashion-mnist"
    assert any(isinstance(m, FSTA) for m in model.modules()) == (name == "fsta")
    assert checkpoint["history"][-1]["test_accuracy"] >= 0.88


@pytest.mark.parametrize("name", ["baseline", "fsta"])
def test_bundled_model_classifies_the_bundled_sample(name):
    result = evaluate_checkpoint(bundled_checkpoint(name), data="fashion-mnist-sample")
    assert result["accuracy"] >= 0.85 and 0 < result["firing_rate"] < 0.5


@needs_fashion_mnist
@pytest.mark.parametrize("name", ["baseline", "fsta"])
def test_bundled_model_reaches_88_percent_on_the_full_fashion_mnist_test_set(name):
    result = evaluate_checkpoint(bundled_checkpoint(name), data="fashion-mnist")
    assert result["samples"] == 10000 and result["accuracy"] >= 0.88
