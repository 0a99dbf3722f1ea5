"""The HTML report opened from disk in a real headless Chromium: every figure renders, no JavaScript error."""
import html.parser
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from spikescope.pipeline import analyze_checkpoint, attribute_checkpoint

CHROMIUM = shutil.which("chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian package chromium is not installed "
                                                          "(make test installs it)")


def chromium(*args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                               "--disable-background-networking", "--disable-component-update", "--disable-sync",
                               f"--user-data-dir={profile}", "--virtual-time-budget=20000", *args],
                              capture_output=True, text=True, timeout=180)


class BodyAttributes(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.body: dict[str, str] = {}
        self.plot_divs = 0
        self.svgs = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.body = attrs
        if "js-plotly-plot" in (attrs.get("class") or ""):
            self.plot_divs += 1
        if tag == "svg" and "main-svg" in (attrs.get("class") or ""):
            self.svgs += 1


def rendered(page: str) -> BodyAttributes:
    """The page's DOM after its scripts ran, with no JavaScript error."""
    dom = chromium("--window-size=1200,900", "--dump-dom", page)
    assert dom.returncode == 0, dom.stderr[-2000:]
    parsed = BodyAttributes()
    parsed.feed(dom.stdout)
    assert json.loads(parsed.body["data-js-errors"]) == [] and "Uncaught" not in dom.stderr
    return parsed


def test_report_renders_every_figure_without_javascript_errors(tmp_path):
    _, files = analyze_checkpoint(limit=100, out=tmp_path / "report")
    page = files["report.html"].resolve().as_uri()
    parsed = rendered(page)
    figures = int(parsed.body["data-figures"])
    assert figures == 9  # firing, channels, spectra, orientation, similarity, energy terms beside the ANN twin,
    # energy by part and by operation, spike maps
    assert int(parsed.body["data-rendered"]) == figures and parsed.plot_divs == figures
    assert parsed.svgs >= figures

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "report.png"
    shot = chromium("--window-size=1200,6000", f"--screenshot={screenshot}", page)
    assert shot.returncode == 0 and screenshot.stat().st_size > 50_000


def test_attribution_report_renders_its_figures(tmp_path):
    _, files = attribute_checkpoint(method="saliency", samples=16, out=tmp_path / "attribution")
    page = files["report.html"].resolve().as_uri()
    parsed = rendered(page)
    assert int(parsed.body["data-figures"]) == 2  # attribution per timestep, spike activation maps
    assert int(parsed.body["data-rendered"]) == 2 and parsed.plot_divs == 2
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "attribution.png"
    shot = chromium("--window-size=1200,3200", f"--screenshot={screenshot}", page)
    assert shot.returncode == 0 and screenshot.stat().st_size > 50_000


def test_report_says_so_when_plotly_js_is_missing(tmp_path):
    _, files = analyze_checkpoint(limit=20, out=tmp_path / "report")
    (tmp_path / "report" / "plotly.min.js").unlink()
    dom = chromium("--dump-dom", files["report.html"].resolve().as_uri())
    assert "plotly.js did not load from plotly.min.js" in dom.stdout
