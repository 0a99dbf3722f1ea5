"""Modes with known answers: tracking and evaluation during training hand the model back in the modes they
found, every module's own; `analyze` leaves the network in eval(), as docs/metrics.md ("Attribution") says."""
import torch

import spikescope
from spikescope.checkpoint import bundled_checkpoint, load
from spikescope.data import load_dataset, make_loader
from spikescope.tracking import track_layers

BATCHES = make_loader(load_dataset("fashion-mnist-sample", "test", limit=8), 8)


def modes(model: torch.nn.Module) -> dict[str, bool]:
    return {name: module.training for name, module in model.named_modules()}


def bundled() -> torch.nn.Module:
    return load(bundled_checkpoint("baseline"), torch.device("cpu"))[0]


def test_tracking_in_the_middle_of_training_leaves_every_module_training():
    model = bundled().train()
    rows = track_layers(model, BATCHES, epoch=3)
    assert len(rows) == 5 and {row["epoch"] for row in rows} == {3}
    assert all(modes(model).values())


def test_tracking_keeps_a_module_frozen_in_eval_inside_a_training_model():
    model = bundled().train()
    frozen = next(name for name, module in model.named_modules() if isinstance(module, torch.nn.BatchNorm2d))
    model.get_submodule(frozen).eval()  # BatchNorm statistics frozen for fine-tuning
    before = modes(model)
    track_layers(model, BATCHES, epoch=1)
    assert modes(model) == before


def test_evaluation_during_training_keeps_a_frozen_module_frozen_and_the_rest_training():
    from spikescope.train import evaluate

    model = bundled().train()
    frozen = next(name for name, module in model.named_modules() if isinstance(module, torch.nn.BatchNorm2d))
    model.get_submodule(frozen).eval()
    before = modes(model)
    assert evaluate(model, BATCHES)["samples"] == 8
    assert modes(model) == before


def test_tracking_an_evaluated_model_leaves_it_in_eval():
    model = bundled().eval()
    track_layers(model, BATCHES, epoch=0)
    assert not any(modes(model).values())


def test_analyze_leaves_the_network_in_eval_neurons_included():
    model = bundled().train()
    spikescope.analyze(model, BATCHES)
    assert not any(modes(model).values())
