"""What the attribution views say: class names and misclassifications in the titles, all-zero maps labelled,
integrated gradients' completeness error, and a warning before a report too large to open comfortably."""
import json
import warnings

import numpy as np
import pytest
import torch

from spikescope.attribution import attribute
from spikescope.attribution_cost import LARGE_REPORT_BYTES
from spikescope.captum_adapter import SpikingFunction, repeat_over_time
from spikescope.captum_methods import INFIDELITY_NOISE, INFIDELITY_SAMPLES
from spikescope.checkpoint import bundled_checkpoint, load
from spikescope.data import load_dataset, make_loader
from spikescope.errors import SpikescopeWarning
from spikescope.report.attribution import attribution_figure, attribution_section, sam_figure
from spikescope.report.outputs import write_attribution_outputs

SAMPLE = load_dataset("fashion-mnist-sample", "test", limit=300)
IMAGES, LABELS = next(iter(make_loader(SAMPLE, 300)))


@pytest.fixture(scope="module")
def bundled():
    model, _ = load(bundled_checkpoint("baseline"), torch.device("cpu"))
    return model


def titles(figure) -> list[str]:
    return [annotation.text for annotation in figure.layout.annotations]


def test_titles_name_the_predicted_and_labelled_classes_and_mark_a_misclassification(bundled):
    """The bundled model calls image 0 (a T-shirt/top) a Shirt and image 1 (a Dress) a Dress."""
    result = attribute(bundled, IMAGES[:2], "sam", labels=LABELS[:2], classes=SAMPLE.classes)
    assert list(result.predictions) == [6, 3] and list(result.labels) == [0, 3]
    shown = titles(attribution_figure(result))
    wrong = next(t for t in shown if t.startswith("image 0"))
    right = next(t for t in shown if t.startswith("image 1"))
    assert "predicted Shirt" in wrong and "✗ label T-shirt/top" in wrong and "#c62828" in wrong
    assert "predicted Dress" in right and "label Dress ✓" in right and "✗" not in right
    page = attribution_section(result)
    assert "(1 misclassified, marked ✗)" in page and "6 Shirt" in page and "0 T-shirt/top" in page


def test_an_all_zero_spike_activation_map_says_no_spikes_in_its_own_tile():
    sam = {"conv1": np.ones((2, 3, 4, 4)), "conv2": np.ones((2, 3, 2, 2))}
    sam["conv2"][0, 1] = 0.0  # conv2 silent at t = 1 in image 0 only
    figure = sam_figure(sam, ["image 0", "image 1"])
    notes = [a for a in figure.layout.annotations if a.text == "no spikes"]
    silent = [trace for trace in figure.data if not np.any(trace.z)]
    assert len(notes) == len(silent) == 1
    assert (notes[0].xref, notes[0].yref) == (f"{silent[0].xaxis} domain", f"{silent[0].yaxis} domain")
    assert silent[0].xaxis == figure.get_subplot(2, 2).yaxis.anchor  # row 2 (conv2), column 2 (t = 1)
    assert [figure.get_subplot(row, 1).yaxis.title.text for row in (1, 2)] == ["conv1", "conv2"]  # row labels
    assert [a.text for a in figure.layout.annotations if a.text.startswith("t =")] == ["t = 0", "t = 1", "t = 2"]
    first, second = figure.layout.updatemenus[0].buttons  # the menu's image 1 has spikes everywhere
    assert ["no spikes" in str(a) for a in (first.args[1]["annotations"], second.args[1]["annotations"])] == [True,
                                                                                                             False]
    assert np.all([np.any(z) for z in second.args[0]["z"]]) and len(second.args[0]["z"]) == len(figure.data)


def test_integrated_gradients_report_the_convergence_delta_computed_directly(bundled, tmp_path):
    """Captum's delta is sum(attributions) - (f(x) - f(baseline)), f the target logit; recomputed here from two
    forward passes of the model."""
    images = IMAGES[:3]
    result = attribute(bundled, images, "ig", T=2, time_first_input=True, n_steps=8, infidelity=False,
                       classes=SAMPLE.classes)
    function = SpikingFunction(bundled, T=2, time_first_input=True)
    with torch.no_grad():
        inputs = repeat_over_time(images, 2)
        targets = torch.as_tensor(result.targets)[:, None]
        difference = (function(inputs).gather(1, targets) - function(torch.zeros_like(inputs)).gather(1, targets))[:, 0]
    total = result.maps.reshape(3, -1).sum(axis=1)
    completeness = result.info["completeness"]
    np.testing.assert_allclose(completeness["output_difference"], difference.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(completeness["convergence_delta"], total - difference.numpy(), rtol=1e-4, atol=1e-3)
    assert np.all(np.abs(completeness["convergence_delta"]) > 0.1)  # surrogate gradients: far from complete

    files = write_attribution_outputs(result, {"model": "compact_cnn"}, tmp_path / "report")
    saved = json.loads(files["attribution.json"].read_text())
    assert "completeness" not in saved["settings"]  # a top-level key, not a setting
    np.testing.assert_allclose(saved["completeness"]["convergence_delta"], completeness["convergence_delta"],
                               rtol=1e-6)
    np.testing.assert_allclose(saved["completeness"]["covered_share"], total / difference.numpy(), rtol=1e-4)
    share = np.median(total / difference.numpy())
    assert saved["completeness"]["covered_share_median"] == pytest.approx(share, rel=1e-4)
    assert saved["completeness"]["covered_share_min"] == pytest.approx(np.min(total / difference.numpy()), rel=1e-4)
    assert saved["infidelity_reference"] is None  # infidelity=False
    np.testing.assert_allclose(np.load(files["attributions.npz"])["convergence_delta"],
                               completeness["convergence_delta"])
    page = files["report.html"].read_text()
    assert f"Integrated gradients sum to {100 * share:.0f} % of f(x) − f(baseline)" in page
    assert "not a decomposition" in page


def test_images_equal_to_the_baseline_give_no_share_of_a_zero_difference_and_no_nan(bundled):
    """All-zero images and the baseline 0: f(x) - f(baseline) is exactly 0 on every image, so no share exists."""
    with pytest.warns(SpikescopeWarning, match="every attribution is zero"):
        result = attribute(bundled, torch.zeros(2, 1, 28, 28), "ig", T=2, time_first_input=True, n_steps=4,
                           infidelity=False)
    assert np.all(np.asarray(result.info["completeness"]["output_difference"]) == 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        section = attribution_section(result)
    assert "f(x) − f(baseline) is 0 on every image" in section and "nan" not in section.lower()
    assert "not a decomposition" in section


def test_infidelity_is_read_against_the_mean_squared_logit_change_of_its_own_perturbations(bundled, tmp_path):
    """The reference is the infidelity of an all-zero attribution: the mean of (f(x) - f(x - I))^2 over the same
    perturbations I (drawn from a generator seeded 0, each image repeated INFIDELITY_SAMPLES times), recomputed
    here; a best-scaled attribution never scores more."""
    images = IMAGES[:2]
    result = attribute(bundled, images, "saliency", T=2)
    function = SpikingFunction(bundled, T=2)
    noise = torch.randn((2 * INFIDELITY_SAMPLES, *images.shape[1:]),
                        generator=torch.Generator().manual_seed(0)) * INFIDELITY_NOISE
    repeated = images.repeat_interleave(INFIDELITY_SAMPLES, dim=0)
    targets = torch.as_tensor(result.targets).repeat_interleave(INFIDELITY_SAMPLES)[:, None]
    with torch.no_grad():
        drop = function(repeated).gather(1, targets) - function(repeated - noise).gather(1, targets)
    np.testing.assert_allclose(result.infidelity_reference, (drop.view(2, -1) ** 2).mean(1).numpy(), rtol=1e-4)
    assert np.all(result.infidelity <= result.infidelity_reference)
    files = write_attribution_outputs(result, {"model": "compact_cnn"}, tmp_path / "report")
    saved = json.loads(files["attribution.json"].read_text())
    np.testing.assert_allclose(saved["infidelity_reference"], result.infidelity_reference, rtol=1e-6)
    assert saved["completeness"] is None  # saliency
    assert "infidelity_reference [K]" in saved["files"]["attributions.npz"]
    page = attribution_section(result)
    share = np.median(result.infidelity / result.infidelity_reference)
    assert f"leaves {100 * share:.0f} % of the squared logit change unexplained" in page and "lower is more" in page


def size_warnings(model, count: int):
    """The attribution (SAM) of the first `count` images, and the size warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = attribute(model, IMAGES[:count], "sam", T=2, time_first_input=True)
    return result, [str(w.message) for w in caught if issubclass(w.category, SpikescopeWarning)
                    and "MB" in str(w.message)]


def test_a_report_larger_than_the_threshold_is_announced_before_the_work_and_a_small_one_is_not(bundled, tmp_path):
    """SAM on block5.lif of the bundled model: per image the input (784 values), the map (2 x 7 x 7) and every
    layer's SAM (2 x (28^2 + 28^2 + 14^2 + 14^2 + 7^2)): 4,900 values, 7 bytes each in the report folder. 300
    images: 10.3 MB, over the 8 MB threshold (233 images stay under); 16 images: 0.55 MB, and so they write."""
    assert LARGE_REPORT_BYTES == 8e6
    small, said = size_warnings(bundled, 16)
    assert said == []
    files = write_attribution_outputs(small, {"model": "compact_cnn"}, tmp_path / "report")
    written = files["report.html"].stat().st_size + files["attributions.npz"].stat().st_size
    assert 0.8 < written / (16 * 4900 * 7) < 1.25
    _, [message] = size_warnings(bundled, 300)
    assert message == ("attributing 300 images writes a report of about 10 MB, which a browser opens slowly: "
                       "attribute fewer images (--samples; in analyze, --attribution-samples); 233 stay under 8 MB")
