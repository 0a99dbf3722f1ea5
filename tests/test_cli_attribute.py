"""`spikescope attribute` and `analyze --attribution` end to end: what they write and how they refuse bad input."""
import json
import re
from pathlib import Path

import numpy as np
import pytest

from spikescope.pipeline import analyze_checkpoint, attribute_checkpoint
from test_cli_analyze import spikescope

LAYERS = [f"block{i}.lif" for i in range(1, 6)]


def test_attribute_without_arguments_writes_the_report_folder_of_the_bundled_model(in_tmp):
    result = spikescope("attribute", "--samples", "4", "--method", "gradcam", "--target", "label")
    assert result.returncode == 0, result.stderr
    out = in_tmp / "reports" / "compact_cnn_baseline-gradcam"
    assert "spikescope: report folder: reports/compact_cnn_baseline-gradcam" in result.stderr
    assert {p.name for p in out.iterdir()} == {".spikescope-report", "report.html", "plotly.min.js",
                                               "attributions.npz", "attribution.json"}
    arrays = np.load(out / "attributions.npz")
    assert arrays["images"].shape == (4, 1, 28, 28) and arrays["attributions"].shape == (4, 2, 7, 7)
    assert (arrays["targets"] == arrays["labels"]).all() and arrays["predictions"].shape == (4,)
    assert {f"sam:{layer}" for layer in LAYERS} <= set(arrays.files)
    assert arrays["sam:block3.lif"].shape == (4, 2, 14, 14)
    summary = json.loads((out / "attribution.json").read_text())
    assert summary["method"] == "gradcam" and summary["layer"] == "block5.lif" and summary["infidelity"] is None
    assert summary["per_timestep"] and summary["settings"]["captum"] == "LayerGradCam"
    assert "gradcam" in summary["definitions"] and "attributions.npz" in summary["files"]
    page = (out / "report.html").read_text()
    assert "Grad-CAM on a spiking layer" in page and 'id="figure-attribution"' in page and 'id="figure-sam"' in page
    assert '<td class="text">3</td>' in page and not re.search(r'<td class="text">\d+\.0</td>', page)  # classes
    assert "gradcam: 4 images in" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--method", "gradcam", "--layer", "block9.lif"],
     "--layer block9.lif is not a spiking layer of this model; its spiking layers: block1.lif, block2.lif, "
     "block3.lif, block4.lif, block5.lif"),
    (["--target", "12"], "--target 12 is not a class of this model (0..9)"),
    (["--target", "best"], "--target must be pred, label or a class index, got 'best'"),
    (["--samples", "0"], "argument --samples: must be at least 1, got 0"),
    (["--method", "lrp"], "argument --method: invalid choice: 'lrp'"),
    (["--device", "gpu"], "unknown device 'gpu'"),
    (["missing.pt"], "missing.pt"),
])
def test_bad_input_is_one_line_and_exit_code_2(in_tmp, args, message):
    result = spikescope("attribute", "--samples", "2", "--out", "out", *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (in_tmp / "out").exists()


def test_attribute_refuses_a_folder_of_the_users_own_files(in_tmp):
    (in_tmp / "thesis.tex").write_text("mine")
    result = spikescope("attribute", "--out", ".")
    assert result.returncode == 2 and "is a non-empty folder that is not a spikescope report" in result.stderr
    assert (in_tmp / "thesis.tex").read_text() == "mine"


def test_python_api_writes_the_same_folder(tmp_path):
    attribution, files = attribute_checkpoint(method="occlusion", samples=3, out=tmp_path / "a")
    assert attribution.maps.shape == (3, 2, 1, 28, 28) and attribution.infidelity.shape == (3,)
    assert set(files) == {"report.html", "attributions.npz", "attribution.json", "plotly.min.js"}
    assert np.load(files["attributions.npz"])["infidelity"].shape == (3,)


def test_analyze_with_attribution_adds_the_section_the_arrays_and_the_mean_spike_activation_maps(tmp_path):
    result, files = analyze_checkpoint(limit=40, attribution="ig", attribution_samples=3, out=tmp_path / "r")
    assert list(result.sam) == LAYERS and result.sam["block1.lif"].shape == (2, 28, 28)
    assert (result.sam["block5.lif"] >= 0).all() and result.sam["block5.lif"].any()
    assert result.attribution.method == "ig" and result.attribution.maps.shape == (3, 2, 1, 28, 28)
    assert "sam_mean" in result.layers
    arrays = np.load(files["attributions.npz"])
    assert arrays["images"].shape == (3, 1, 28, 28)
    summary = json.loads(Path(files["summary.json"]).read_text())
    assert summary["attribution"]["method"] == "ig" and len(summary["attribution"]["infidelity"]) == 3
    assert "attributions.npz" in summary["files"]
    page = Path(files["report.html"]).read_text()
    assert "<h2>Attribution</h2>" in page and "integrated gradients" in page
    plain, plain_files = analyze_checkpoint(limit=40, out=tmp_path / "plain")
    assert plain.attribution is None and not plain.sam and "attributions.npz" not in plain_files
