"""The project stands on its own: the definitions it cites are in the repository, under the names cited."""
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
METRICS = ROOT / "docs" / "metrics.md"
CITATION = re.compile(r'docs/metrics\.md, "([^"]+)"')


def project_files() -> list[Path]:
    return [p for folder in ("spikescope", "tests", "benchmarks", "docs") for p in (ROOT / folder).rglob("*")
            if p.suffix in (".py", ".md", ".html")] + [ROOT / "README.md"]


def test_every_citation_of_docs_metrics_names_one_of_its_sections():
    headings = {line.lstrip("#").strip() for line in METRICS.read_text().splitlines() if line.startswith("#")}
    cited = {(path.name, " ".join(name.replace("#", " ").split())) for path in project_files()
             for name in CITATION.findall(path.read_text())}  # a citation may wrap onto a comment's next line
    assert cited, "the code cites docs/metrics.md by section"
    assert [(file, name) for file, name in sorted(cited) if name not in headings] == []


def test_no_file_cites_documents_outside_the_repository():
    outside = [path.relative_to(ROOT) for path in project_files() if path != Path(__file__).resolve()
               and re.search(r"design\.md|\.\./shared", path.read_text())]
    assert outside == []


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="not a git checkout")
def test_generated_reports_are_ignored_and_study_reports_are_not():
    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0

    assert ignored("reports/demo/report.html") and ignored("reports/compact_cnn_baseline/layers.csv")
    assert not ignored("reports/README.md") and not ignored("reports/spatial/report.html")
    assert not ignored("reports/fsta/summary.json") and not ignored("reports/temporal/layers.csv")
    assert not ignored("reports/frequency/README.md") and ignored("reports/compact_cnn_baseline-frequency/effects.csv")
