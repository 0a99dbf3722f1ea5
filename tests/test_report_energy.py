"""The report's energy section on a real analysis of a Spikformer block: the split by part under both readings of
spike sums, the attention's products, every operation grouped by part, and what could not be costed; on the bundled
model under a compute-only and a memory-aware model: the model named, every row's terms beside its ANN twin's, and
the totals per term."""
import re

import pytest
import torch
from torch import nn

import attention_blocks
import spikescope
from spikescope.data import load_dataset, make_loader
from spikescope.neurons import LIF
from spikescope.pipeline import analyze_checkpoint
from spikescope.report.html import render
from spikescope.report.outputs import write_outputs
from test_comparison_report import numbers, plotly_figures
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
    parts_table = next(t for t in tables_of(energy_section(page.read_text())) if t[0][0] == "part")
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



# Known answers of the bundled CNN: its ANN twin runs 16,401,280 MACs per image (the conv layers and the classifier
# once, densely) and nothing else, so under fp32 it costs 4.6 pJ per MAC.
BUNDLED_ANN_MACS = 16_401_280
TERM_NAMES = ["operations", "addressing", "in/out memory", "parameter memory", "potential memory"]
TERMS = ["ops", "addressing", "inout", "params", "potentials"]


@pytest.fixture(scope="module", params=["fp32", "lemaire2022"])
def bundled(request, tmp_path_factory):
    result, files = analyze_checkpoint(limit=20, energy=request.param,
                                       out=tmp_path_factory.mktemp(request.param) / "report")
    return request.param, result, energy_section(files["report.html"].read_text())


def test_the_section_names_the_energy_model_and_what_it_includes(bundled):
    model, result, section = bundled
    assert result.info["energy_model_description"] in section
    if model == "fp32":
        assert "memory access is not included" in section and "Compute energy" not in section
    else:
        assert "addressing and memory" in section and "memory access is not included" not in section
        assert "paper-style and dense readings price operations only" in section


def test_the_terms_figure_stacks_each_rows_terms_beside_its_ann_twin_and_the_total(bundled):
    model, result, section = bundled
    traces = plotly_figures(section)["energy-terms"]["data"]
    per_row = [t for t in traces if t.get("xaxis", "x") == "x"]
    total = [t for t in traces if t.get("xaxis") == "x2"]
    names = TERM_NAMES[:1] if model == "fp32" else TERM_NAMES  # compute only: one term
    assert [t["name"] for t in per_row] == [t["name"] for t in total] == names
    rows = result.energy.reset_index(drop=True)
    assert per_row[0]["x"] == [[layer for layer in rows["layer"] for _ in "SA"], ["SNN", "ANN"] * len(rows)]
    for trace, term in zip(per_row, TERMS):
        values = numbers(trace["y"])
        assert values[0::2] == pytest.approx(rows[f"energy_{term}_pj_per_image"].to_numpy(), rel=1e-12)
        assert values[1::2] == pytest.approx(rows[f"ann_energy_{term}_pj_per_image"].to_numpy(), rel=1e-12)
    stacked = sum(numbers(t["y"]) for t in per_row)
    assert stacked[0::2] == pytest.approx(rows["energy_pj_per_image"].to_numpy(), rel=1e-9)
    assert stacked[1::2] == pytest.approx(rows["ann_energy_pj_per_image"].to_numpy(), rel=1e-9)
    totals = result.energy_totals()
    assert sum(numbers(t["y"]) for t in total) == pytest.approx(
        [totals["energy_pj_per_image"], totals["ann_energy_pj_per_image"]], rel=1e-9)
    neurons = rows.index[rows["kind"] == "neuron"]
    if model == "fp32":
        assert len(neurons) == 0
        assert totals["ann_energy_pj_per_image"] == pytest.approx(4.6 * BUNDLED_ANN_MACS, rel=1e-9)
    else:  # each spiking layer's own updates: potentials written and read, twin (a ReLU) free
        assert len(neurons) == 5 and all(stacked[2 * i] > 0 == stacked[2 * i + 1] for i in neurons)


def test_the_totals_table_gives_snn_and_ann_twin_per_term_and_their_ratio(bundled):
    model, result, section = bundled
    totals = result.energy_totals()
    rows = next(t for t in tables_of(section) if t[0] == ["term", "SNN (pJ)", "ANN twin (pJ)", "SNN / ANN"])
    terms = [] if model == "fp32" else TERMS  # compute only: the total alone (its one term would repeat it)
    assert [row[0] for row in rows[1:]] == [*(TERM_NAMES if terms else []), "total"]
    for row, term in zip(rows[1:], [*terms, None]):
        infix = f"{term}_" if term else ""
        snn, ann = totals[f"energy_{infix}pj_per_image"], totals[f"ann_energy_{infix}pj_per_image"]
        assert row[1:] == [count(snn), count(ann), f"{snn / ann:.3g}" if ann else "–"], term
    assert rows[-1][3] == f"{totals['snn_ann_ratio']:.3g}"
    if model == "fp32":
        assert rows[-1][2] == count(4.6 * BUNDLED_ANN_MACS)
    else:
        assert rows[TERMS.index("potentials") + 1][2:] == ["0", "–"]  # the twin has no potentials
