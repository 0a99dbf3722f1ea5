"""The comparison report reads well and carries the warnings: one energy unit, pp against %, intervals only where
they mean something and never outside their range, labels shown literally, titled axes, the terminal summary."""
import base64
import json
import re

import numpy as np
import pytest
import torch

import spikescope
from spikescope.checkpoint import load
from spikescope.compare import compare
from spikescope.data import load_dataset, make_loader
from spikescope.groupstats import summarize
from spikescope.report.comparison import energy_unit, qualifies_accuracy
from spikescope.train import TrainConfig
from test_report_polish import column, table_with

CAVEAT = "its accuracy there is meaningless"
TINY = TrainConfig(data="fashion-mnist-sample", arch_kwargs={"width": 4}, batch_size=32, limit=64, test_limit=32,
                   epochs=1)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The bundled baseline and FSTA models under labels with HTML in them, on gratings (whose labels are not
    Fashion-MNIST's, so both models warn that their accuracy is meaningless)."""
    comparison, files = compare([spikescope.bundled_checkpoint("baseline"), spikescope.bundled_checkpoint("fsta")],
                                labels=["<b>x</b>", "a&b"], data="gratings", limit=20, membrane=True,
                                out=tmp_path_factory.mktemp("pair") / "cmp")
    return comparison, json.loads(files["comparison.json"].read_text()), files["comparison.html"].read_text()


@pytest.fixture(scope="module")
def lemaire_pair(tmp_path_factory):
    """The bundled baseline and FSTA models under lemaire2022, on their own images."""
    comparison, files = compare([spikescope.bundled_checkpoint("baseline"), spikescope.bundled_checkpoint("fsta")],
                                labels=["baseline", "fsta"], limit=20, energy="lemaire2022",
                                out=tmp_path_factory.mktemp("lemaire") / "cmp")
    return comparison, json.loads(files["comparison.json"].read_text()), files["comparison.html"].read_text()


@pytest.fixture(scope="module")
def groups(tmp_path_factory):
    """Two tiny arms of two seeds each, compared as groups."""
    runs = spikescope.train_arms(TINY, ["baseline", "fsta"], seeds=[0, 1], out=tmp_path_factory.mktemp("runs"),
                                 progress=False)
    comparison, files = compare(groups=runs, limit=32, out=tmp_path_factory.mktemp("groups") / "cmp")
    return comparison, json.loads(files["comparison.json"].read_text()), files["comparison.html"].read_text()


def plotly_figures(page: str) -> dict[str, dict]:
    """Every figure of a page as plotly gave it to the browser: `{div id: {"data": [...], "layout": {...}}}`."""
    decoder, found = json.JSONDecoder(), {}
    for match in re.finditer(r'Plotly\.newPlot\(\s*"([^"]+)",\s*', page):
        data, end = decoder.raw_decode(page, match.end())
        layout, _ = decoder.raw_decode(page, end + len(page[end:]) - len(page[end:].lstrip(", \n")))
        found[match.group(1)] = {"data": data, "layout": layout}
    return found


def numbers(value) -> np.ndarray:
    """A plotly array as numbers (plotly writes numpy arrays as base64 `bdata`)."""
    if isinstance(value, dict):
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).astype(float)
    return np.asarray(value, dtype=float)


def strings(value) -> list[str]:
    """Every string inside nested lists and dicts."""
    if isinstance(value, str):
        return [value]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return [s for item in items for s in strings(item)]


def test_every_models_warnings_reach_the_json_and_a_notes_box_at_the_top_of_the_page(pair):
    _, summary, page = pair
    for label in ("<b>x</b>", "a&b"):
        assert any(CAVEAT in w for w in summary["models"][label]["warnings"])
    assert isinstance(summary["warnings"], list)
    assert page.index("<h2>Warnings and notes") < page.index(CAVEAT) < page.index("<h2>Models and data")


def test_accuracy_cells_of_models_whose_accuracy_a_warning_qualifies_are_marked(pair):
    _, _, page = pair
    assert all(cell.endswith("†") for cell in column(table_with(page, "SOPs"), "accuracy"))
    assert "† The accuracy is qualified by a warning" in page


class FlatOutput(torch.nn.Module):
    """The bundled model with its logits flattened into one vector: labelled batches cannot be scored."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images).flatten()


def test_the_warnings_that_qualify_accuracy_are_the_label_mismatch_and_the_missing_logits(pair):
    comparison, _, _ = pair
    warnings = comparison.results["a&b"].info["warnings"]
    assert [w for w in warnings if qualifies_accuracy(w)] == [w for w in warnings if CAVEAT in w] != []
    model, _ = load(spikescope.bundled_checkpoint("baseline"), torch.device("cpu"))
    loader = make_loader(load_dataset("fashion-mnist-sample", "test", limit=4), 4)
    unscored = spikescope.analyze(FlatOutput(model), loader)
    assert unscored.info["accuracy"] is None
    assert [qualifies_accuracy(w) for w in unscored.info["warnings"]].count(True) == 1


def test_energy_is_in_one_unit_in_tables_figure_and_terminal(pair):
    comparison, summary, page = pair
    energy = summary["models"]["a&b"]["energy_pj_per_image"]
    assert 1e6 < energy < 1e8  # the bundled models need about 10 µJ per image
    totals = table_with(page, "SOPs")
    assert f"{energy / 1e6:.3f}" in column(totals, "energy (µJ)")
    assert "(pJ)" not in page and "M pJ" not in page
    chart = plotly_figures(page)["energy"]
    assert chart["layout"]["yaxis"]["title"]["text"] == "µJ per image"
    stacked = sum(numbers(trace["y"]) for trace in chart["data"] if trace["type"] == "bar")
    assert stacked[1] == pytest.approx(energy / 1e6, rel=1e-6)
    text = spikescope_summary(comparison)
    assert "energy (µJ)" in text and f"{energy / 1e6:.3f}" in text


def spikescope_summary(comparison) -> str:
    from spikescope.report.comparison import comparison_summary

    return comparison_summary(comparison, comparison.statistics())


def test_energy_unit_is_micro_or_nanojoules_by_the_largest_energy():
    assert energy_unit([9.8e6, 2e5]) == ("µJ", 1e6)
    assert energy_unit([5.2e5, 1e3]) == ("nJ", 1e3)
    assert energy_unit([999_999.0]) == ("nJ", 1e3) and energy_unit([1e6]) == ("µJ", 1e6)


def test_changes_of_accuracy_are_in_percentage_points_and_of_energy_in_percent(pair):
    comparison, summary, page = pair
    change = summary["changes"]["a&b"]["totals"]
    changes = change_table(page)
    accuracy, energy = column(changes, "accuracy")[0], column(changes, "energy (µJ)")[0]
    assert accuracy == f"{100 * change['accuracy']['mean']:+.1f} pp †"
    difference = change["energy_pj_per_image"]["mean"] / 1e6
    assert energy == f"{difference:+.3f} ({change['energy_pj_per_image']['percent']:+.1f} %)"
    assert "pp" not in energy and "%" not in accuracy
    text = spikescope_summary(comparison)
    assert (f"accuracy {100 * change['accuracy']['mean']:+.1f} pp" in text
            and f"energy {change['energy_pj_per_image']['percent']:+.1f} %" in text)


def change_table(page: str) -> list[list[str]]:
    """The table of changes against the reference (the one after the heading 'Change against')."""
    return table_with(page[page.index("<h3>Change against"):], "group")


def test_a_pair_of_models_shows_no_n_and_no_confidence_interval(pair):
    _, _, page = pair
    assert "(n=1)" not in page and "n=1" not in page
    assert "95% CI" not in page and "p = " not in page
    for figure in plotly_figures(page).values():
        assert not any(trace.get("error_y") for trace in figure["data"])


def test_labels_with_html_show_literally_in_every_figure_as_in_the_tables(pair):
    _, _, page = pair
    figures = plotly_figures(page)
    assert {"firing", "energy", "orientation", "similarity", "cka", "membrane", "spectra"} <= set(figures)
    for name, figure in figures.items():
        texts = strings(figure)
        assert not any("<b>x</b>" in t or "a&b" in t for t in texts), name
    legend = [trace.get("name") for trace in figures["firing"]["data"]]
    assert "&lt;b&gt;x&lt;/b&gt;" in legend and "a&amp;b" in legend
    assert column(table_with(page, "SOPs"), "group") == ["<b>x</b>", "a&b"]  # the text shown, tags and all
    assert "<b>x</b>" not in page


def test_spectrum_differences_have_short_titles_axis_titles_and_square_cells(pair):
    comparison, _, page = pair
    layout = plotly_figures(page)["spectra"]["layout"]
    layers = comparison.layer_names()
    assert [a["text"] for a in layout["annotations"]] == layers  # one short title per panel
    axes = sorted(name for name in layout if name.startswith("yaxis"))
    assert len(axes) == len(layers)
    for name in axes:
        x = "x" + name[len("yaxis"):]
        assert layout[name]["scaleanchor"] == x  # one unit of u as long as one unit of v: square cells
        assert layout["xaxis" + name[len("yaxis"):]]["title"]["text"] == "v (horizontal)"
    assert layout["yaxis"]["title"]["text"] == "u (vertical)"
    assert "a&amp;b minus &lt;b&gt;x&lt;/b&gt;" in layout["title"]["text"]


def test_cka_heatmaps_name_the_reference_models_layers_and_the_other_models(pair):
    _, _, page = pair
    layout = plotly_figures(page)["cka"]["layout"]
    assert layout["xaxis"]["title"]["text"] == "layers of a&amp;b"
    assert layout["yaxis"]["title"]["text"] == "layers of &lt;b&gt;x&lt;/b&gt; (reference)"


def test_architecture_column_names_the_width_a_model_was_built_at(pair, groups):
    assert set(column(table_with(groups[2], "architecture"), "architecture")) == {"compact_cnn, width 4"}
    assert set(column(table_with(pair[2], "architecture"), "architecture")) == {"compact_cnn"}  # default width


def test_fsta_column_says_which_fsta_in_one_vocabulary(pair, groups):
    for _, _, page in (pair, groups):
        values = column(table_with(page, "FSTA"), "FSTA")
        assert set(values) <= {"none", "both", "temporal", "spatial"} and {"none", "both"} <= set(values)


def test_terminal_summary_names_data_and_images_and_aligns_long_names(pair):
    comparison, summary, _ = pair
    lines = spikescope_summary(comparison).splitlines()
    assert lines[0].startswith(f"{summary['samples']} images of gratings (test split)")
    rows = [line for line in lines if line.startswith(("<b>x</b>", "a&b"))]
    assert len(rows) == 2 and rows[0].index("(reference)") == rows[1].index("accuracy", 10)
    assert len({row.index(" 1 ") for row in rows}) == 1  # the n column lines up


def test_bounded_intervals_are_clipped_to_their_range_and_mean_and_sd_are_kept():
    values = [0.9, 1.0]  # t(1) = 12.706: the raw interval is 0.95 +- 0.635
    raw, clipped = summarize(values), summarize(values, bounds=(0.0, 1.0))
    assert raw["ci_high"] == pytest.approx(0.95 + 12.7062 * np.std(values, ddof=1) / np.sqrt(2), rel=1e-4)
    assert raw["ci_high"] > 1 and clipped["ci_high"] == 1.0 and clipped["ci_low"] == pytest.approx(raw["ci_low"])
    assert (clipped["mean"], clipped["std"]) == (raw["mean"], raw["std"])
    energy = summarize([1.0, 100.0], bounds=(0.0, np.inf))
    assert energy["ci_low"] == 0.0 and energy["ci_high"] == pytest.approx(50.5 + 12.7062 * 99 / 2, rel=1e-4)


def test_groups_show_n_and_intervals_that_stay_in_range_and_the_energy_chart_has_error_bars(groups):
    _, summary, page = groups
    totals = table_with(page, "SOPs")
    assert column(totals, "models") == ["2", "2"] and "95% CI" in page and "(n=" not in page
    assert all(re.fullmatch(r"[\d.]+ % \[[\d.]+ %, [\d.]+ %\]", cell) for cell in column(totals, "accuracy"))
    for group in summary["groups"].values():
        accuracy = group["totals"]["accuracy"]
        assert 0 <= accuracy["ci_low"] <= accuracy["ci_high"] <= 1
    figures = plotly_figures(page)
    bars = [t for t in figures["energy"]["data"] if t.get("error_y")]
    assert len(bars) == 1 and len(numbers(bars[0]["error_y"]["array"])) == 2
    rates = [trace for trace in figures["firing"]["data"] if trace.get("xaxis", "x") == "x"]  # left: in [0, 1]
    assert len(rates) == 2
    for trace in rates:
        y = numbers(trace["y"])
        assert np.all(y - numbers(trace["error_y"]["arrayminus"]) >= -1e-9)
        assert np.all(y + numbers(trace["error_y"]["array"]) <= 1 + 1e-9)
    assert column(change_table(page), "models compared") == ["2 pairs, by recorded seed"]


TERMS = {"ops": "operations", "addressing": "addressing", "inout": "in/out memory", "params": "parameter memory",
         "potentials": "potential memory"}


def terms_table(page: str) -> list[list[str]]:
    return table_with(page, "SNN / ANN")


def terms_change_table(page: str) -> list[list[str]]:
    return terms_table(page[page.index("<h3>Change of each term against"):])


def test_each_energy_term_the_ann_twin_and_the_ratio_and_their_changes_are_shown_under_lemaire2022(lemaire_pair):
    _, summary, page = lemaire_pair
    metrics = {**{f"energy_{t}_pj_per_image": f"{name} (µJ)" for t, name in TERMS.items()},
               "energy_pj_per_image": "total (µJ)", "ann_energy_pj_per_image": "ANN twin (µJ)"}
    assert terms_table(page)[0] == ["group", *metrics.values(), "SNN / ANN"]
    for row in terms_table(page)[1:]:
        model = summary["models"][row[0]]
        assert row[1:] == [f"{model[m] / 1e6:,.3f}" for m in metrics] + [f"{model['snn_ann_ratio']:.3g}"]
    assert sum(summary["models"]["fsta"][m] for m in list(metrics)[:5]) == pytest.approx(
        summary["models"]["fsta"]["energy_pj_per_image"], rel=1e-12)
    change = summary["changes"]["fsta"]["totals"]
    (row,) = terms_change_table(page)[1:]
    assert row[0] == "fsta"
    for cell, metric in zip(row[1:], [*metrics, "snn_ann_ratio"]):
        mean, percent = change[metric]["mean"], change[metric]["percent"]
        value = f"{mean:+.3g}" if metric == "snn_ann_ratio" else f"{mean / 1e6:+,.3f}"
        assert cell == f"{value} ({percent:+.1f} %)", metric
    figures = plotly_figures(page)
    (bars,) = figures["energy-terms"]["data"]
    assert bars["x"] == [*TERMS.values(), "total", "ANN twin's total"] and bars["name"] == "fsta"
    assert numbers(bars["y"]) == pytest.approx([change[m]["mean"] / 1e6 for m in metrics], rel=1e-9)
    split = figures["energy"]["data"]  # the energy figure stacks the model's terms
    assert [trace["name"] for trace in split] == list(TERMS.values())
    assert sum(numbers(trace["y"]) for trace in split) == pytest.approx(
        [summary["models"][m]["energy_pj_per_image"] / 1e6 for m in ("baseline", "fsta")], rel=1e-9)


def test_a_compute_only_model_shows_the_total_the_ann_twin_and_the_ratio_without_repeating_its_one_term(pair):
    _, summary, page = pair
    assert terms_table(page)[0] == ["group", "total (µJ)", "ANN twin (µJ)", "SNN / ANN"]
    twins = [summary["models"][m]["ann_energy_pj_per_image"] for m in ("<b>x</b>", "a&b")]
    assert column(terms_table(page), "ANN twin (µJ)") == [f"{twin / 1e6:,.3f}" for twin in twins]
    (bars,) = plotly_figures(page)["energy-terms"]["data"]
    assert bars["x"] == ["total", "ANN twin's total"]
    change = summary["changes"]["a&b"]["totals"]
    assert numbers(bars["y"]) == pytest.approx([change[m]["mean"] / 1e6 for m in ("energy_pj_per_image",
                                                                                  "ann_energy_pj_per_image")])
    assert "memory access is not included" in page


def test_groups_show_each_terms_change_with_the_interval_of_the_paired_difference(groups):
    _, summary, page = groups
    change = summary["changes"]["fsta"]["totals"]
    (bars,) = plotly_figures(page)["energy-terms"]["data"]
    metrics = ["energy_pj_per_image", "ann_energy_pj_per_image"]  # fp32: operations are the whole total
    _, unit = energy_unit(g["totals"][m]["mean"] for g in summary["groups"].values() for m in metrics)
    assert numbers(bars["error_y"]["array"]) == pytest.approx(
        [(change[m]["ci_high"] - change[m]["mean"]) / unit for m in metrics], rel=1e-9)
    assert numbers(bars["error_y"]["arrayminus"]) == pytest.approx(
        [(change[m]["mean"] - change[m]["ci_low"]) / unit for m in metrics], rel=1e-9)
    assert "p = " in terms_change_table(page)[1][-1]


def test_pages_name_a_model_with_the_width_it_was_built_at():
    from spikescope.report.tables import model_name
    assert model_name({"model": "resnet20", "arch_kwargs": {"width": 0.25, "T": 2}}) == "resnet20, width 0.25"
    assert model_name({"model": "resnet20", "arch_kwargs": {}}) == "resnet20"
    assert model_name({}) == "?"
