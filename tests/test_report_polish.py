"""Report details a reader trips over: overlapping labels, mixed units and number formats, different defaults."""
import re
from html.parser import HTMLParser

import pytest

from spikescope.pipeline import analyze_checkpoint, evaluate_checkpoint
from spikescope.report import figures


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    return analyze_checkpoint(limit=100, out=tmp_path_factory.mktemp("r") / "r")


class Tables(HTMLParser):
    """Every table of a page as a list of rows of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def table_with(page: str, header: str) -> list[list[str]]:
    parser = Tables()
    parser.feed(page)
    return next(t for t in parser.tables if t and header in t[0])


def column(table: list[list[str]], header: str) -> list[str]:
    index = table[0].index(header)
    return [row[index] for row in table[1:]]


def row_gaps_px(fig) -> list[float]:
    """Pixels between consecutive rows of subplots."""
    plot_height = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
    domains = sorted({tuple(fig.layout[name].domain) for name in fig.layout.to_plotly_json()
                      if name.startswith("yaxis")}, reverse=True)
    return [(upper[0] - lower[1]) * plot_height for upper, lower in zip(domains, domains[1:])]


def test_rows_of_panels_leave_room_for_the_axis_title_and_the_next_rows_panel_titles(analysed):
    similarity = row_gaps_px(figures.similarity(analysed[0]))
    # four rows of panels (three gaps): axis title (~20 px), two title lines (~40 px), air
    assert len(similarity) == 3 and min(similarity) >= 100
    spectra = row_gaps_px(figures.spectra(analysed[0]))
    assert len(spectra) == 1 and min(spectra) >= 80  # axis title, one title line


def test_each_column_has_one_number_format_and_shares_are_percentages_everywhere(analysed):
    page = analysed[1]["report.html"].read_text()
    energy = table_with(page, "MACs")
    for header in ("SOPs (exact)", "SOPs (fr x T x FLOPs)", "MACs", "energy (pJ)"):
        assert all(re.fullmatch(r"\d{1,3}(,\d{3})*", cell) for cell in column(energy, header)), header
    firing = table_with(page, "silent neurons")
    assert all(re.fullmatch(r"\d+\.\d %", cell) for cell in column(firing, "silent neurons"))
    assert all(re.fullmatch(r"0\.\d{4}", cell) for cell in column(firing, "firing rate"))
    spectra = table_with(page, "DC share")
    for header in ("DC share", "low band", "mid band", "high band"):
        assert all(cell.endswith(" %") for cell in column(spectra, header)), header
    assert all(re.fullmatch(r"[+-]0\.\d{3}", cell) for cell in column(spectra, "OI (axis)"))
    assert "silent neurons (%)" in page  # the figure's title uses the same unit as the table
    assert "energy (pJ)" in page and "pJ per image" in page and "uJ per image" not in page


def test_analyze_and_evaluate_default_to_the_same_images(analysed):
    evaluated = evaluate_checkpoint(limit=100)
    assert evaluated["samples"] == analysed[0].info["samples"] == 100
    assert evaluated["accuracy"] == analysed[0].info["accuracy"]
