"""`spikescope attribute` and `analyze --attribution` end to end: what they write and how they refuse bad input."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import snn_zoo
from spikescope.pipeline import analyze_checkpoint, attribute_checkpoint
from test_cli_analyze import error_line, spikescope

LAYERS = [f"block{i}.lif" for i in range(1, 6)]


class QuietClassifier(nn.Module):
    """A classifier whose one neuron is of no framework and silent on its first call (`snn_zoo.QuietUntilWoken`):
    a recorder finds it only when it is named."""

    def __init__(self, T: int = 2) -> None:
        super().__init__()
        self.T = T
        self.conv = snn_zoo.Folded(nn.Conv2d(1, 4, 3, padding=1))
        self.neuron = snn_zoo.QuietUntilWoken()
        self.head = nn.Linear(4 * 28 * 28, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        spikes = self.neuron(self.conv(images.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)))
        return self.head(spikes.flatten(2)).mean(0)


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
    assert result.returncode == 2 and message in error_line(result.stderr), result.stderr
    assert not (in_tmp / "out").exists()


def test_a_neuron_found_only_when_named_is_attributed_with_layers(tmp_path):
    torch.save(QuietClassifier().state_dict(), tmp_path / "quiet.pt")
    model = ["attribute", tmp_path / "quiet.pt", "--arch", "test_cli_attribute:QuietClassifier", "--T", 2,
             "--method", "sam", "--samples", 2, "--data", "fashion-mnist-sample"]
    refused = spikescope(*model, "--out", tmp_path / "refused")
    assert refused.returncode == 2 and "no spiking layer found" in error_line(refused.stderr)
    assert "pass --layers neuron" in refused.stderr  # the advice the recorder gives, which attribute now takes
    result = spikescope(*model, "--layers", "neuron", "--out", tmp_path / "r")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "r" / "attribution.json").read_text())
    assert summary["layer"] == "neuron" and summary["settings"]["spiking_layers"] == ["neuron"]
    assert np.load(tmp_path / "r" / "attributions.npz")["attributions"].shape == (2, 2, 28, 28)


def test_a_whole_pickled_model_is_attributed_with_trust_pickle_and_a_warning_naming_the_file(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(snn_zoo.PlainSNN(), path)
    model = ["attribute", path, "--method", "sam", "--samples", 2, "--data", "fashion-mnist-sample"]
    refused = spikescope(*model, "--out", tmp_path / "refused")
    assert refused.returncode == 2 and "--trust-pickle" in error_line(refused.stderr)
    trusted = spikescope(*model, "--trust-pickle", "--out", tmp_path / "r")
    assert trusted.returncode == 0, trusted.stderr
    assert f"spikescope: warning: --trust-pickle: unpickling runs code from {path}" in trusted.stderr.splitlines()


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


def test_integrated_gradients_say_in_the_terminal_which_share_of_the_logit_difference_they_cover(tmp_path):
    result = spikescope("attribute", "--method", "ig", "--samples", "3", "--out", tmp_path / "ig")
    assert result.returncode == 0, result.stderr
    completeness = json.loads((tmp_path / "ig" / "attribution.json").read_text())["completeness"]
    share = np.array(completeness["attribution_sum"]) / np.array(completeness["output_difference"])
    line = next(line for line in result.stdout.splitlines() if line.startswith("integrated gradients cover"))
    assert line.startswith(f"integrated gradients cover {100 * np.median(share):.0f} % of f(x) - f(baseline) "
                           f"({100 * share.min():.0f}-{100 * share.max():.0f} %"), line


def test_analyze_warns_of_a_large_attribution_before_the_analysis_runs(tmp_path):
    """60 images of a 16-step model's 28 x 28 spike maps make an 11 MB report: the warning comes from the
    attribution's probe, before the analysis, which here refuses at its first batch (one image cannot tell the
    time layout apart), so a user warned stops before the long work, not after it."""
    torch.save(QuietClassifier(T=16).state_dict(), tmp_path / "quiet.pt")
    result = spikescope("analyze", tmp_path / "quiet.pt", "--arch", "test_cli_attribute:QuietClassifier",
                        "--arch-kw", "T=16", "--T", 16, "--layers", "neuron", "--data", "fashion-mnist-sample",
                        "--attribution", "sam", "--attribution-samples", 60, "--limit", 60, "--batch-size", 1,
                        "--out", tmp_path / "r")
    assert result.returncode == 2 and "cannot tell the time layout of layer neuron" in error_line(result.stderr)
    assert re.search(r"warning: attributing 60 images writes a report of about 1\d MB", result.stderr), result.stderr
