"""Everything an analysis computes reaches a file: channel rates, spectra and every table in summary.json."""
import json

import numpy as np
import pandas as pd
import pytest

from spikescope.pipeline import analyze_checkpoint


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "r"
    result, files = analyze_checkpoint(limit=100, out=out, capture=2)
    return result, files, json.loads(files["summary.json"].read_text())


def test_channels_csv_has_one_row_per_channel_with_its_rate_and_silent_share(report):
    result, files, summary = report
    channels = pd.read_csv(files["channels.csv"])
    assert list(channels.columns) == ["layer", "channel", "firing_rate", "silent_fraction", "silent"]
    assert channels.groupby("layer", sort=False).size().to_dict() == {
        "block1.lif": 16, "block2.lif": 32, "block3.lif": 64, "block4.lif": 64, "block5.lif": 64}
    layers = pd.read_csv(files["layers.csv"]).set_index("layer")
    for layer, rows in channels.groupby("layer"):
        assert rows["firing_rate"].mean() == pytest.approx(layers.loc[layer, "firing_rate"], rel=1e-9)
        assert rows["silent_fraction"].mean() == pytest.approx(layers.loc[layer, "silent_fraction"], rel=1e-9)
        assert (rows["silent"] == (rows["silent_fraction"] == 1)).all()
    assert 'id="figure-channels"' in files["report.html"].read_text()
    assert len(summary["channels"]) == len(channels)


def test_summary_json_holds_every_table_and_array_the_report_shows(report):
    result, files, summary = report
    layers = pd.read_csv(files["layers.csv"])
    assert set(summary["layers"][0]) == set(layers.columns)
    assert len(summary["timesteps"]) == len(pd.read_csv(files["timesteps.csv"]))
    assert len(summary["energy"]["layers"]) == len(pd.read_csv(files["energy.csv"]))
    spectra = np.load(files["spectra.npz"])
    for layer in spectra.files:
        assert np.allclose(np.array(summary["spectra"][layer]), spectra[layer], rtol=1e-12)
    assert {c["claim"][:20] for c in summary["claims"]} == {"shallow layers learn", "feature learning bar"}
    assert summary["files"]["channels.csv"] and summary["energy"]["uncosted_modules"] == []
    captured = np.load(files["spikes.npz"])
    assert captured["block2.lif"].shape == (2, 2, 32, 28, 28) and set(np.unique(captured["block2.lif"])) <= {0, 1}
