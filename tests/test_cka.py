"""Linear CKA: known answers, invariances, the Gram-matrix form, exact merging, across timesteps and models."""
import numpy as np
import pytest
import torch

from spikescope.checkpoint import bundled_checkpoint, load
from spikescope.data import load_dataset, make_loader
from spikescope.analyze import ModelAnalysis
from spikescope.lockstep import analyze_together
from spikescope.metrics.cka import CrossCKA, TimestepCKA, cka_from_sums
from spikescope.record import SpikeRecorder, default_metrics

RNG = np.random.default_rng(0)


def cka(x: np.ndarray, y: np.ndarray) -> float:
    """spikescope's CKA of two sample-by-feature matrices, from the sums it accumulates."""
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    return cka_from_sums(len(x), x.sum(0), y.sum(0), x.T @ x, y.T @ y, y.T @ x)


def gram_cka(x: np.ndarray, y: np.ndarray) -> float:
    """CKA the textbook way: centred Gram matrices K = Xc Xc^T, L = Yc Yc^T, HSIC = tr(K L)."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = h @ x @ x.T @ h, h @ y @ y.T @ h
    return float(np.trace(k @ l_) / np.sqrt(np.trace(k @ k) * np.trace(l_ @ l_)))


def test_cka_of_a_representation_with_itself_is_one_and_equals_the_gram_form():
    x, y = RNG.normal(size=(30, 6)), RNG.normal(size=(30, 4))
    assert cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert cka(x, y) == pytest.approx(gram_cka(x, y), rel=1e-10)
    assert 0 < cka(x, y) < 0.8  # unrelated features


def test_invariant_to_rotations_shifts_and_isotropic_scaling_but_not_to_any_linear_map():
    x, y = RNG.normal(size=(40, 5)), RNG.normal(size=(40, 7))
    rotation, _ = np.linalg.qr(RNG.normal(size=(5, 5)))
    reference = cka(x, y)
    assert cka(3.7 * x @ rotation + 2.0, y) == pytest.approx(reference, rel=1e-10)
    stretched = x @ np.diag([10.0, 1.0, 1.0, 0.1, 1.0])
    assert abs(cka(stretched, y) - reference) > 1e-3


def test_timestep_cka_merges_halves_exactly_and_keeps_constant_memory():
    spikes = (torch.rand(3, 50, 4, 6, 6, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    whole, first, second = TimestepCKA(), TimestepCKA(), TimestepCKA()
    whole.update("l", spikes)
    first.update("l", spikes[:, :20])
    size = first.nbytes()
    second.update("l", spikes[:, 20:])
    second.update("l", spikes[:, 20:30] * 0)  # more batches, no more memory (this one is merged away below)
    assert second.nbytes() == size
    second = TimestepCKA()
    second.update("l", spikes[:, 20:])
    merged = first.merge(second).compute().arrays["cka"]["l"]
    expected = whole.compute().arrays["cka"]["l"]
    np.testing.assert_allclose(merged, expected, rtol=1e-12)
    channel_means = spikes.double().mean(dim=(3, 4))  # [T, B, C]
    for t in range(3):
        for s in range(3):
            assert expected[t, s] == pytest.approx(gram_cka(channel_means[t].numpy(), channel_means[s].numpy()),
                                                   rel=1e-9)
    np.testing.assert_allclose(np.diag(expected), 1.0, rtol=1e-12)


def test_identical_timesteps_have_cka_one_and_a_grid_keeps_where_the_channels_fire():
    step = (torch.rand(1, 30, 3, 8, 8, generator=torch.Generator().manual_seed(2)) < 0.4).float()
    metric = TimestepCKA()
    metric.update("l", step.repeat(2, 1, 1, 1, 1))
    assert metric.compute().arrays["cka"]["l"] == pytest.approx(np.ones((2, 2)))
    generator = torch.Generator().manual_seed(3)
    shuffled = torch.stack([sample.flatten(1)[:, torch.randperm(64, generator=generator)].view(3, 8, 8)
                            for sample in step[0]])[None]  # each sample's positions shuffled: same channel means
    both = torch.cat([step, shuffled])
    coarse, fine = TimestepCKA(), TimestepCKA(grid=2)
    coarse.update("l", both)
    fine.update("l", both)
    assert coarse.compute().arrays["cka"]["l"][0, 1] == pytest.approx(1.0)
    assert fine.compute().arrays["cka"]["l"][0, 1] < 0.9


def test_cross_cka_of_a_model_with_itself_has_ones_on_the_diagonal():
    model, meta = load(bundled_checkpoint("baseline"), torch.device("cpu"))
    twin, _ = load(bundled_checkpoint("baseline"), torch.device("cpu"))
    other, _ = load(bundled_checkpoint("fsta"), torch.device("cpu"))
    images = load_dataset("fashion-mnist-sample", "test", limit=120)
    loaders = {label: make_loader(images, 40) for label in ("a", "b", "c")}
    analyses = {label: ModelAnalysis(net.eval(), "all", 2, torch.device("cpu"), default_metrics())
                for label, net in (("a", model), ("b", twin), ("c", other))}
    _, result = analyze_together(analyses, loaders)
    same, changed = result["b"].compute(), result["c"].compute()
    assert same.shape == (5, 5) and result["b"].layers == [f"block{i}.lif" for i in range(1, 6)]
    np.testing.assert_allclose(np.diag(same), 1.0, rtol=1e-9)
    np.testing.assert_allclose(same, same.T, rtol=1e-9)
    assert (np.diag(changed) < 1.0).all() and (np.diag(changed) > 0.5).all()
    halves = CrossCKA()  # merged halves equal the whole
    for part in (slice(0, 60), slice(60, 120)):
        features = {}
        for label, net in (("a", model), ("c", other)):
            kept = {}
            with torch.no_grad(), SpikeRecorder(net, metrics=[]) as recorder:
                hooks = [net.get_submodule(name).register_forward_hook(
                    lambda m, i, o, name=name: kept.__setitem__(name, o.mean(dim=(0, 3, 4)))) for name in
                    [f"block{i}.lif" for i in range(1, 6)]]
                net(next(iter(make_loader(images, 120)))[0][part])
                for hook in hooks:
                    hook.remove()
            assert recorder.T == 2
            features[label] = kept
        halves.update(features["a"], features["c"])
    np.testing.assert_allclose(halves.compute(), changed, rtol=1e-6)  # features averaged in another order


def test_compare_shows_cka_across_models_and_overlays_membrane_potentials(tmp_path):
    import json

    from spikescope import compare
    from test_cli_analyze import spikescope

    pair = [bundled_checkpoint("baseline"), bundled_checkpoint("fsta")]
    comparison, files = compare(pair, labels=["baseline", "fsta"], limit=80, membrane=True, out=tmp_path / "c")
    entry = comparison.cka["fsta"]
    assert entry["matrix"].shape == (5, 5) and entry["reference_layers"] == entry["layers"]
    summary = json.loads(files["comparison.json"].read_text())
    assert summary["cka"]["reference"] == "baseline" and len(summary["cka"]["models"]["fsta"]["matrix"]) == 5
    assert "membrane_mean" in summary["changes"]["fsta"]["layers"]["block3.lif"]
    page = files["comparison.html"].read_text()
    assert "Representations across models (CKA)" in page and "<h2>Membrane potentials</h2>" in page
    result = spikescope("compare", *pair, "--limit", "40", "--membrane", "--out", tmp_path / "cli")
    assert result.returncode == 0, result.stderr
    assert "membrane_sd" in (tmp_path / "cli" / "comparison.csv").read_text().splitlines()[0]
    result = spikescope("analyze", "--limit", "40", "--membrane", "--out", tmp_path / "a")
    assert result.returncode == 0 and (tmp_path / "a" / "membrane.npz").is_file(), result.stderr


def test_features_of_other_layouts_and_layers_too_large_for_the_sums():
    from spikescope.errors import SpikescopeWarning
    from spikescope.metrics.cka import MAX_FEATURES, features

    tokens = torch.rand(2, 5, 16, 32)  # [T, B, C, L]: a 1-D conv's maps, or tokens
    assert features(tokens).shape == (2, 5, 16)
    torch.testing.assert_close(features(tokens), tokens.double().mean(dim=3))
    metric = TimestepCKA()
    with pytest.warns(SpikescopeWarning, match="left out"):
        metric.update("wide", torch.rand(2, 4, MAX_FEATURES))
    metric.update("wide", torch.rand(2, 4, MAX_FEATURES))  # named once
    assert "wide" not in metric.states


def test_a_grid_partitions_a_7x7_map_into_disjoint_cells_and_cka_equals_a_numpy_recomputation():
    from spikescope.metrics.cka import features

    spikes = (torch.rand(2, 30, 3, 7, 7, generator=torch.Generator().manual_seed(4)) < 0.4).float()
    cells = features(spikes, grid=2).view(2, 30, 3, 2, 2)
    sizes = torch.tensor([[4 * 4, 4 * 3], [3 * 4, 3 * 3]], dtype=torch.float64)  # rows 0-3 | 4-6, columns alike
    torch.testing.assert_close((cells * sizes).sum(dim=(3, 4)), spikes.sum(dim=(3, 4)).double())  # each once
    edges = (0, 4, 7)
    maps = spikes.double().numpy()
    by_hand = np.stack([maps[..., edges[i]:edges[i + 1], edges[j]:edges[j + 1]].mean(axis=(-2, -1))
                        for i in range(2) for j in range(2)], axis=-1).reshape(2, 30, 12)  # [T, B, C x cells]
    metric = TimestepCKA(grid=2)
    metric.update("l", spikes)
    assert metric.compute().arrays["cka"]["l"][0, 1] == pytest.approx(gram_cka(by_hand[0], by_hand[1]), rel=1e-12)


def test_a_grid_finer_than_the_map_keeps_one_cell_per_position():
    from spikescope.metrics.cka import features

    spikes = (torch.rand(2, 5, 2, 3, 2, generator=torch.Generator().manual_seed(5)) < 0.5).float()
    torch.testing.assert_close(features(spikes, grid=4), spikes.double().flatten(2))  # 3 x 2 cells of one position
