"""What the studies (analyses/) need to run on another network: its runs and reports in their own folders, its
layers labelled by their place in the residual structure, and its energy priced under every energy model."""
import sys
from pathlib import Path

import pytest

import spikescope
from spikescope.energy.models import ENERGY_MODELS
from spikescope.models import build
from spikescope.train import TrainConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analyses"))
from _priced import energy_by_model, energy_change_rows  # noqa: E402
from _recipe import arguments, recipe, report_folder, runs_folder  # noqa: E402
from _report import layer_roles, with_roles  # noqa: E402


def test_another_network_gets_its_own_runs_and_report_folders_and_the_default_keeps_its_own():
    default = arguments("").parse_args(["--runs", "r", "--reports", "out"])
    assert runs_folder(default, recipe(default)) == Path("r/fashion-mnist-compact_cnn-T2")
    assert report_folder(default, "spatial") == Path("out/spatial")
    narrow = arguments("").parse_args(["--runs", "r", "--reports", "out", "--arch", "resnet20", "--arch-kw",
                                       "width=0.25", "--lr", "0.005", "--limit", "20000", "--epochs", "2"])
    config = recipe(narrow, T=4)
    assert (config.arch_kwargs, config.lr, config.limit, config.epochs, config.T) == ({"width": 0.25}, 0.005, 20000,
                                                                                       2, 4)
    assert runs_folder(narrow, config) == Path("r/fashion-mnist-resnet20-width0.25-T4")
    assert report_folder(narrow, "fsta") == Path("out/fsta/resnet20-width0.25")


def test_residual_layers_are_labelled_stem_inner_or_block_output_in_depth_order():
    roles = layer_roles(build("resnet20", width=0.125, fsta=True))
    assert list(roles.values()) == ["stem"] * 3 + ["block inner", "block output (residual sum)"] * 8
    assert list(roles)[3:5] == ["blocks.0.conv_bn_lif.lif", "blocks.0.lif"]
    assert layer_roles(build("compact_cnn")) == {}  # no residual blocks: no labels
    rows = [{"layer": "input", "OI": 1}, {"layer": "blocks.0.lif", "OI": 2}]
    assert with_roles(rows, roles) == [{"layer": "input", "role": "–", "OI": 1},
                                       {"layer": "blocks.0.lif", "role": "block output (residual sum)", "OI": 2}]
    assert with_roles(rows, {}) == rows


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    tiny = TrainConfig(data="fashion-mnist-sample", arch_kwargs={"width": 4}, batch_size=32, limit=64, test_limit=32,
                       epochs=1)
    return spikescope.train_arms(tiny, ["baseline", "fsta"], seeds=[0, 1], out=tmp_path_factory.mktemp("runs"),
                                 progress=False)


def test_energy_priced_under_each_model_equals_measuring_under_that_model(two_runs):
    loader = spikescope.make_loader(spikescope.load_dataset("fashion-mnist-sample", "test", limit=40), 20)
    energies = energy_by_model(two_runs, loader)
    assert len(energies) == 2 * 2 * len(ENERGY_MODELS)
    model = spikescope.load(two_runs["fsta"][1])[0]
    for name in ("fp32", "int8", "lemaire2022"):
        direct = spikescope.analyze(model, loader, metrics=[spikescope.Energy(name)], neurobench=False)
        row = energies.query("arm == 'fsta' and seed == 1 and `energy model` == @name").iloc[0]
        assert row["energy_pj"] == pytest.approx(direct.energy_totals()["energy_pj_per_image"], rel=1e-9)
        fsta_rows = direct.energy.loc[direct.energy["kind"] == "fsta", "energy_pj_per_image"].sum()
        assert fsta_rows > 0
        assert row["energy_pj_without_fsta"] == pytest.approx(row["energy_pj"] - fsta_rows, rel=1e-9)
    baseline = energies.query("arm == 'baseline'")
    assert (baseline["energy_pj"] == baseline["energy_pj_without_fsta"]).all()  # no FSTA rows to take out


def test_an_arm_equal_to_the_baseline_changes_the_energy_by_nothing_under_every_model(two_runs):
    same = {"baseline": two_runs["baseline"], "copy": two_runs["baseline"]}
    loader = spikescope.make_loader(spikescope.load_dataset("fashion-mnist-sample", "test", limit=20), 20)
    rows = energy_change_rows(energy_by_model(same, loader))
    assert list(rows["energy model"]) == list(ENERGY_MODELS) and (rows["arm − baseline"] == "copy").all()
    assert rows["change (µJ)"].str.startswith("0.000").all() and rows["change (µJ)"].str.endswith("(+0.0 %)").all()
    assert rows["energy lowered"].str.startswith("inconclusive").all()


def test_depth_trends_are_judged_over_all_layers_and_over_each_kind_of_block_neuron_alone():
    from spatial import layer_subsets
    roles = layer_roles(build("resnet20", width=0.125))
    subsets = layer_subsets(list(roles), roles)
    assert subsets == {"all": list(range(19)), "block inner only": list(range(3, 19, 2)),
                       "block output (residual sum) only": list(range(4, 19, 2))}
    assert layer_subsets(["block1", "block2"], {}) == {"all": [0, 1]}  # a plain network: all layers only
