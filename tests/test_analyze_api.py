"""`spikescope.analyze(model, loader)` on the bundled model: the Python API in two lines."""
import numpy as np
import pytest

import spikescope
from spikescope.data import load_dataset, make_loader
from spikescope.train import evaluate


def test_two_line_python_api_returns_tables_and_arrays_that_agree_with_each_other():
    model, _ = spikescope.load(spikescope.bundled_checkpoint("baseline"))
    loader = make_loader(load_dataset("fashion-mnist-sample", "test", limit=300), 100)
    results = spikescope.analyze(model, loader, layers="all", capture=2)

    layers = results.layers.set_index("layer")
    assert list(layers.index) == [f"block{i}.lif" for i in range(1, 6)]
    assert results.info["samples"] == 300 and results.info["T"] == 2
    assert results.info["accuracy"] == pytest.approx(evaluate(model, loader)["accuracy"])
    per_step = results.timesteps.groupby("layer")["firing_rate"].mean()
    for name in layers.index:
        assert layers.loc[name, "firing_rate"] == pytest.approx(per_step[name])  # equal-sized timesteps
        assert results.spectra[name].sum() == pytest.approx(layers.loc[name, "spikes"], rel=1e-5)  # Parseval
        assert results.similarity[name]["spike_cosine"].shape == (2, 2)
        assert results.captured[name].shape[:2] == (2, 2)
        assert 0 <= layers.loc[name, "silent_fraction"] < 1
        channels = results.channels.query("layer == @name")  # equal-sized channels: their mean is the layer's rate
        assert len(channels) > 1 and channels["firing_rate"].mean() == pytest.approx(layers.loc[name, "firing_rate"])
        neurons_per_channel = layers.loc[name, "neurons"] / len(channels)
        assert (channels["silent_fraction"] * neurons_per_channel).sum() == pytest.approx(
            layers.loc[name, "silent_fraction"] * layers.loc[name, "neurons"])
    assert np.allclose(np.diag(results.similarity["block1.lif"]["spike_cosine"]), 1)
    energy = results.energy.set_index("layer")
    assert energy.loc["block1.conv", "input"] == "analog" and energy.loc["block2.conv", "input"] == "spikes"
    assert energy.loc["block2.conv", "input_firing_rate"] == pytest.approx(layers.loc["block1.lif", "firing_rate"])
    assert results.energy_totals()["energy_pj_per_image"] == pytest.approx(
        4.6 * energy["macs_per_image"].sum() + 0.9 * energy["sops_per_image"].sum())


def test_layer_selection_by_regex_through_analyze():
    model, _ = spikescope.load(spikescope.bundled_checkpoint("baseline"))
    loader = make_loader(load_dataset("fashion-mnist-sample", "test", limit=50), 50)
    results = spikescope.analyze(model, loader, layers=r"block[45]\.lif")
    assert list(results.layers["layer"]) == ["block4.lif", "block5.lif"]
    assert len(results.energy) == 6  # energy always covers every synaptic layer


def test_an_empty_loader_is_a_clear_error():
    from spikescope.errors import SpikescopeError

    model, _ = spikescope.load(spikescope.bundled_checkpoint("baseline"))
    with pytest.raises(SpikescopeError, match="yielded no batch"):
        spikescope.analyze(model, [])


def test_the_bundled_model_uses_the_same_images_with_or_without_its_path():
    from spikescope.pipeline import analyze_file, evaluate_checkpoint

    path = spikescope.bundled_checkpoint("baseline")
    (unnamed, a), (named, b) = analyze_file(limit=60, capture=0), analyze_file(path, limit=60, capture=0)
    assert a["dataset_name"] == b["dataset_name"] == "fashion-mnist-sample"
    assert unnamed.info["accuracy"] == named.info["accuracy"]
    assert evaluate_checkpoint(limit=60) == evaluate_checkpoint(path, limit=60)
