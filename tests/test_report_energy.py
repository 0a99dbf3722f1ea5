"""The report's energy section on a real analysis of a Spikformer block: the split by part under both readings of
spike sums, the attention's products, every operation grouped by part, and what could not be costed."""
import re

import pytest
import torch
from torch import nn

import attention_blocks
import spikescope
from spikescope.data import load_dataset, make_loader
from spikescope.neurons import LIF
from spikescope.report.html import render
from spikescope.report.outputs import write_outputs
from test_report_browser import ARTIFACTS, CHROMIUM, chromium, rendered
from test_report_polish import Tables, column

# Known answers of the block (dim 32, 64 tokens, T = 2): Q, K and V (conv1d 32 -> 32) and the MLP's fc1
# (32 -> 64) read the residual sum x + f(x), a spike sum; read dense, each costs C_in x C_out x N x T MACs.
QKV_DENSE_MACS = 3 * 32 * 32 * 64 * 2
FC1_DENSE_MACS = 32 * 64 * 64 * 2


@pytest.fixture(scope="module")
def spikformer(tmp_path_factory):
    result = spikescope.analyze(attention_blocks.spikformer_block(),
                                make_loader(load_dataset("fashion-mnist-sample", "test", limit=16), 8))
    out = tmp_path_factory.mktemp("spikformer") / "report"
    files = write_outputs(result, {"model": "Spikformer block"}, out)
    return result, files["report.html"]


def tables_of(page: str) -> list[list[list[str]]]:
    parser = Tables()
    parser.feed(page)
    return parser.tables


def energy_section(page: str) -> str:
    start = page.index("<h2>Synaptic operations and energy</h2>")
    return page[start:page.index("<h2>", start + 1)]


def count(value: float) -> str:
    return f"{value:,.0f}"


def test_the_split_by_part_equals_the_result_under_both_readings(spikformer):
    result, page = spikformer
    parts_table = tables_of(energy_section(page.read_text()))[0]
    rows = {row[0]: dict(zip(parts_table[0], row)) for row in parts_table[1:]}
    energy = result.energy
    assert list(rows) == [*dict.fromkeys(energy["part"]), "total"]  # in the order the network runs them
    assert {"stem", "attention", "MLP", "residual", "head"} <= set(rows)
    for part, group in energy.groupby("part"):
        assert rows[part]["operations"] == str(len(group))
        for column_name, header in [("sops_per_image", "SOPs (exact)"), ("macs_per_image", "MACs"),
                                    ("sops_approx_per_image", "SOPs (fr x T x FLOPs)"),
                                    ("energy_pj_per_image", "energy (pJ)"),
                                    ("energy_pj_approx_per_image", "energy (pJ), fr x FLOPs"),
                                    ("macs_dense_reading_per_image", "MACs, spike sums dense"),
                                    ("energy_pj_dense_reading_per_image", "energy (pJ), spike sums dense")]:
            assert rows[part][header] == count(group[column_name].sum()), (part, header)
    totals = result.energy_totals()
    assert rows["total"]["energy (pJ)"] == count(totals["energy_pj_per_image"])
    assert rows["total"]["SOPs (exact)"] == count(totals["sops_per_image"])
    assert rows["total"]["SOPs (fr x T x FLOPs)"] == count(totals["sops_approx_per_image"])
    assert rows["total"]["MACs"] == count(totals["macs_per_image"])
    assert rows["total"]["energy (pJ), spike sums dense"] == count(totals["energy_pj_dense_reading_per_image"])
    assert rows["total"]["energy (pJ), fr x FLOPs"] == count(totals["energy_pj_approx_per_image"])
    share = energy.query("part == 'attention'")["energy_pj_per_image"].sum() / totals["energy_pj_per_image"]
    assert rows["attention"]["share of energy"] == f"{100 * share:.1f} %"
    assert rows["attention"]["MACs, spike sums dense"] == count(QKV_DENSE_MACS)
    assert rows["MLP"]["MACs, spike sums dense"] == count(FC1_DENSE_MACS)
    assert rows["attention"]["MACs"] == rows["MLP"]["MACs"] == "0"  # as events, spike sums cost no MAC


def test_the_attention_products_show_operands_sops_and_the_sparsity_of_q_kt(spikformer):
    result, page = spikformer
    products = next(t for t in tables_of(energy_section(page.read_text())) if "zero outputs" in t[0])
    expected = result.energy.query("part == 'attention' and kind not in ['conv', 'linear']")
    assert column(products, "operation") == expected["layer"].tolist() == ["attn: matmul 1", "attn: matmul 2"]
    q_kt = expected.iloc[0]
    assert q_kt["operands"] == "spikes x spikes" and 0 < q_kt["output_sparsity"] < 1
    assert column(products, "zero outputs")[0] == f"{100 * q_kt['output_sparsity']:.1f} %"
    assert column(products, "SOPs (exact)") == [count(v) for v in expected["sops_per_image"]]


def test_every_operation_is_listed_once_under_its_part_folded_for_a_long_table(spikformer):
    result, page = spikformer
    section = energy_section(page.read_text())
    folds = re.findall(r"<details( open)?><summary>(\w+): (\d+) operations?, ([\d,]+) pJ per image</summary>(.*?)"
                       r"</details>", section, flags=re.S)
    assert len(result.energy) > 12 and all(opened == "" for opened, *_ in folds)  # 16 rows: every part folded
    listed = []
    for _, part, operations, pj, body in folds:
        rows = result.energy.query("part == @part")
        names = column(tables_of(body)[0], "operation")
        assert names == rows["layer"].tolist() and int(operations) == len(rows)
        assert pj == count(rows["energy_pj_per_image"].sum())
        listed += names
    assert sorted(listed) == sorted(result.energy["layer"])


class CumulativeReadout(nn.Module):
    """An LIF layer whose spikes are summed over time by `torch.cumsum`, an operator no costing rule knows."""

    T = 2

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.lif, self.fc2 = nn.Linear(784, 32), LIF(), nn.Linear(32, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        spikes = self.lif(self.fc1(images.flatten(1)).expand(self.T, -1, -1) * 3)
        return self.fc2(torch.cumsum(spikes, dim=0)).mean(0)


def test_what_could_not_be_costed_is_named_and_a_short_table_is_shown_whole():
    with pytest.warns(spikescope.errors.SpikescopeWarning, match="cannot cost .*cumsum"):
        result = spikescope.analyze(CumulativeReadout(), make_loader(load_dataset("fashion-mnist-sample", "test",
                                                                                  limit=8), 8))
    section = energy_section(render(result, {}))
    assert "<b>Not costed</b> (missing from the totals): (model) (CumulativeReadout): cumsum." in section
    assert len(result.energy) <= 12 and section.count("<details open>") == result.energy["part"].nunique()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian package chromium is not installed (make test installs it)")
def test_the_spikformer_report_renders_in_a_browser(spikformer):
    _, page = spikformer
    parsed = rendered(page.resolve().as_uri())
    assert int(parsed.body["data-rendered"]) == int(parsed.body["data-figures"]) == parsed.plot_divs
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "spikformer-report.png"
    shot = chromium("--window-size=1200,12000", f"--screenshot={screenshot}", page.resolve().as_uri())
    assert shot.returncode == 0 and screenshot.stat().st_size > 50_000

