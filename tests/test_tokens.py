"""Token layers read as what they are: tokens on the stem's patch grid get spectra like images of the same spikes,
`[N, D]` and `[D, N]` give the same tables, head-split layers get no spectrum, no claim-1 reading and no Grad-CAM
default, per-head rates are the heads' own, and `--tokens HxW` declares the grid (docs/metrics.md, "Token layers")."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import spikescope
from attention_blocks import fashion_images, patch_tokens, spike_driven_block, spikformer_block, spikformer_block_nd
from spikescope.attribution import plan_attribution
from spikescope.claims import orientation_claim
from spikescope.neurons import LIF
from spikescope.tokens import HEADS, IMAGE, TOKENS, Geometry, ModelEvidence, as_features, decide_geometries

TESTS = Path(__file__).parent


class StripesAsTokens(nn.Module):
    """An LIF on `[T, B, C, 8, 8]` maps (the stem's grid), then the very same spikes as tokens through a second LIF:
    `[T, B, C, 64]`, or `[T, B, 64, C]` with `tokens_last`. Currents of 10 make each LIF fire exactly where they are
    non-zero, at every timestep."""

    def __init__(self, tokens_last: bool = False) -> None:
        super().__init__()
        self.T, self.tokens_last = 2, tokens_last
        self.image_lif, self.token_lif = LIF(), LIF()

    def forward(self, currents: torch.Tensor) -> torch.Tensor:
        maps = self.image_lif(currents.unsqueeze(0).expand(self.T, *currents.shape))
        tokens = maps.flatten(3)
        return self.token_lif(10 * (tokens.transpose(2, 3) if self.tokens_last else tokens)).mean(dim=0).flatten(1)


def vertical_stripes(samples: int = 3, channels: int = 4) -> torch.Tensor:
    """Currents `[B, C, 8, 8]`: 10 in every odd column, 0 elsewhere (variation along the width only)."""
    currents = torch.zeros(samples, channels, 8, 8)
    currents[..., 1::2] = 10.0
    return currents


def test_tokens_of_vertical_stripes_on_the_grid_have_their_energy_where_the_image_of_the_stripes_has_it():
    result = spikescope.analyze(StripesAsTokens(), [vertical_stripes()])
    layers = result.layers.set_index("layer")
    assert layers.loc["token_lif", "geometry"] == "tokens on 8 x 8 grid"
    np.testing.assert_array_equal(result.spectra["token_lif"], result.spectra["image_lif"])
    power = result.spectra["token_lif"].sum(axis=0)
    assert power[0, 7] > 0 and power[1:, :].sum() < 1e-9 * power.sum()  # DC and the stripes' horizontal frequency
    assert layers.loc["token_lif", "axis_OI"] == pytest.approx(-1.0)


def test_tokens_laid_out_n_by_d_and_d_by_n_give_identical_per_feature_and_per_token_tables():
    currents = 10.0 * (torch.rand(5, 4, 8, 8, generator=torch.Generator().manual_seed(0)) > 0.7)
    results = [spikescope.analyze(StripesAsTokens(tokens_last), [currents]) for tokens_last in (False, True)]
    channels = [r.channels[r.channels["layer"] == "token_lif"].reset_index(drop=True) for r in results]
    assert len(channels[0]) == 4  # features, not the 64 tokens
    pd.testing.assert_frame_equal(channels[0], channels[1])
    pd.testing.assert_frame_equal(results[0].tokens, results[1].tokens)
    tokens = results[0].tokens
    expected = (currents > 0).double().mean(dim=(0, 1)).flatten().numpy()  # spikes per token / (T x B x features)
    np.testing.assert_allclose(tokens["firing_rate"].to_numpy(), expected)
    assert list(tokens["row"][:9]) == [0] * 8 + [1] and list(tokens["column"][:9]) == [*range(8), 0]


def test_a_layout_nothing_tells_apart_is_named_in_a_warning_and_read_as_non_spatial():
    with pytest.warns(UserWarning, match=r"cannot tell whether layer token_lif's output \[T, B, 64, 64\]"):
        result = spikescope.analyze(StripesAsTokens(), [vertical_stripes(channels=64)])
    layers = result.layers.set_index("layer")
    assert layers.loc["token_lif", "geometry"] == "unknown" and "token_lif" not in result.spectra
    assert len(result.tokens) == 0


@pytest.mark.parametrize("build, head_split", [(spikformer_block, "attn.attn_lif"),
                                                (spikformer_block_nd, "attn.attn_lif"),
                                                (spike_driven_block, "attn.talking_heads_lif")])
def test_head_split_layers_get_no_spectrum_and_stay_out_of_the_claim_1_verdict(build, head_split):
    result = spikescope.analyze(build(), [(fashion_images(4),)])
    layers = result.layers.set_index("layer")
    assert layers.loc[head_split, "geometry"] == "head-split"
    assert head_split not in result.spectra and np.isnan(layers.loc[head_split, "height"])
    assert layers.loc["attn.q_lif", "geometry"] == "tokens on 8 x 8 grid" and "attn.q_lif" in result.spectra
    assert head_split not in orientation_claim(result.layers)["evidence"]
    assert len(result.channels[result.channels["layer"] == head_split]) == 32  # heads x d features


def test_claim_1_ignores_a_head_split_row_even_when_it_carries_an_orientation():
    layers = pd.DataFrame({"layer": ["conv1", "conv2", "heads"], "output": "spikes", "height": 8.0,
                           "geometry": ["image", "tokens on 8 x 8 grid", "head-split"],
                           "axis_OI": [0.5, -0.5, 0.9], "wedge_OI": [0.5, -0.5, 0.9]})
    verdict = orientation_claim(layers)
    assert verdict["verdict"].startswith("consistent") and "heads" not in verdict["evidence"]


def test_head_split_layers_are_never_a_layer_methods_default_and_grad_cam_reads_tokens_on_their_grid():
    images = fashion_images(2)
    gradcam = plan_attribution(spikformer_block(), images, "gradcam", infidelity=False)
    sam = plan_attribution(spikformer_block(), images, "sam", infidelity=False)
    assert gradcam.layer.name == sam.layer.name == "mlp.fc2_lif"  # the deepest layer with maps: tokens on the grid
    assert sam.probe.sam["mlp.fc2_lif"].shape == (2, 2, 8, 8) and "attn.attn_lif" not in sam.probe.sam
    maps = {build.__name__: plan_attribution(build(), images, "gradcam", layer="attn.q_lif", infidelity=False).run()
            .maps for build in (spikformer_block, spikformer_block_nd)}
    assert maps["spikformer_block"].shape == (2, 2, 8, 8)  # [K, T, h, w] on the patch grid
    # [D, N] and [N, D] tokens of the same network give the same map (the two differ only in float rounding)
    scale = np.abs(maps["spikformer_block"]).max()
    assert np.abs(maps["spikformer_block"] - maps["spikformer_block_nd"]).max() <= 0.05 * scale


@pytest.mark.parametrize("build", [spikformer_block, spikformer_block_nd])
def test_per_head_rates_equal_the_mean_of_each_heads_spikes(build):
    model, seen = build(heads=4, dim=32), {}
    for name in ("q_lif", "attn_lif"):
        getattr(model.attn, name).register_forward_hook(lambda m, a, out, name=name: seen.setdefault(name, out))
    result = spikescope.analyze(model, [(fashion_images(4),)])
    features_last = build is spikformer_block_nd  # q: [T, B, N, D] rather than [T, B, D, N]
    q, attn = seen["q_lif"].double(), seen["attn_lif"].double()  # attn: [T, B, heads, ...] in both
    by_hand = {"attn.attn_lif": [attn[:, :, h].mean().item() for h in range(4)],
               "attn.q_lif": [(q[..., 8 * h:8 * h + 8] if features_last else q[:, :, 8 * h:8 * h + 8]).mean().item()
                              for h in range(4)]}
    for layer, rates in by_hand.items():
        measured = result.heads[result.heads["layer"] == layer]
        assert list(measured["head"]) == [0, 1, 2, 3]
        np.testing.assert_allclose(measured["firing_rate"].to_numpy(), rates, rtol=1e-12)
    assert "attn.proj_lif" not in set(result.heads["layer"])  # it feeds no head split


def test_fused_qkv_has_per_head_rates_of_q_k_and_v_apart():
    model, seen = spikformer_block(fused_qkv=True), {}
    model.attn.qkv_lif.register_forward_hook(lambda m, a, out: seen.setdefault("qkv", out))
    result = spikescope.analyze(model, [(fashion_images(4),)])
    T, B, _, N = seen["qkv"].shape
    qkv = seen["qkv"].double().reshape(T, B, 3, 4, 8, N)  # [T, B, part, head, d, N], as the block splits it
    measured = result.heads[result.heads["layer"] == "attn.qkv_lif"]
    assert list(measured["part"]) == list("qqqqkkkkvvvv") and list(measured["head"]) == [0, 1, 2, 3] * 3
    by_hand = [qkv[:, :, p, h].mean().item() for p in range(3) for h in range(4)]
    np.testing.assert_allclose(measured["firing_rate"].to_numpy(), by_hand, rtol=1e-12)


def test_each_stage_of_a_multi_stage_transformer_lays_its_tokens_on_its_own_grid():
    shapes = {"stage1.map": (16, 16, 16), "stage1.lif": (32, 256), "stage2.map": (32, 8, 8), "stage2.lif": (128, 64),
              "stage3.map": (64, 4, 4), "stage3.lif": (256, 16)}  # 256 features on 16 tokens: not 256 tokens
    geometries, warnings = decide_geometries(shapes, None, ModelEvidence())
    assert [geometries[f"stage{i}.lif"] for i in (1, 2, 3)] == [Geometry(TOKENS, "[D, N]", grid) for grid in
                                                                 ((16, 16), (8, 8), (4, 4))]
    assert warnings == []


def test_a_sum_over_tokens_split_into_heads_after_attention_on_maps_is_head_split():
    shapes = {"stem.lif": (64, 4, 4), "attn.q_lif": (64, 4, 4), "attn.attn_lif": (4, 1, 16)}  # [heads, 1, d]
    geometries, _ = decide_geometries(shapes, None, ModelEvidence(heads={"attn": 4}))
    assert geometries["attn.q_lif"].kind == IMAGE
    assert geometries["attn.attn_lif"] == Geometry(HEADS, "[N, d]", heads=4)
    assert as_features(torch.zeros(2, 3, 4, 1, 16), geometries["attn.attn_lif"]).shape == (2, 3, 64, 1)


def test_a_classifier_elsewhere_in_the_model_does_not_decide_a_blocks_token_layout():
    evidence = ModelEvidence(last_axis={"head": {64, 10}}, channel_axis={"blocks.0.mlp.fc1": {64, 256}})
    geometries, warnings = decide_geometries({"stem.lif": (64, 8, 8), "blocks.0.mlp.lif": (64, 64)}, None, evidence)
    assert geometries["blocks.0.mlp.lif"] == Geometry(TOKENS, "[D, N]", (8, 8)) and warnings == []


def test_compare_lays_every_models_tokens_on_the_declared_grid(tmp_path):
    comparison, _ = spikescope.compare({"a": patch_tokens(), "b": patch_tokens(dim=8)}, data="fashion-mnist-sample",
                                       limit=8, T=2, tokens=(8, 8), out=tmp_path / "c")
    assert {label: list(r.layers["geometry"]) for label, r in comparison.results.items()} == {
        "a": ["tokens on 8 x 8 grid"] * 2, "b": ["tokens on 8 x 8 grid"] * 2}


def spikescope_cli(*args):
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    return subprocess.run([sys.executable, "-m", "spikescope", *map(str, args)], capture_output=True, text=True,
                          env=env)


def test_tokens_declared_on_the_command_line_lay_tokens_out_on_the_grid(tmp_path):
    torch.save(patch_tokens().state_dict(), tmp_path / "weights.pt")
    common = ["analyze", tmp_path / "weights.pt", "--arch", "attention_blocks:patch_tokens", "--T", 2,
              "--data", "fashion-mnist-sample", "--limit", 20]
    plain = spikescope_cli(*common, "--out", tmp_path / "plain")
    declared = spikescope_cli(*common, "--tokens", "8x8", "--out", tmp_path / "grid")
    assert plain.returncode == 0 and declared.returncode == 0, plain.stderr + declared.stderr
    before = pd.read_csv(tmp_path / "plain" / "layers.csv").set_index("layer")
    after = pd.read_csv(tmp_path / "grid" / "layers.csv").set_index("layer")
    assert list(before["geometry"]) == ["tokens", "tokens"] and before["height"].isna().all()
    assert list(after["geometry"]) == ["tokens on 8 x 8 grid"] * 2 and list(after["height"]) == [8, 8]
    tokens = pd.read_csv(tmp_path / "grid" / "tokens.csv")
    assert len(tokens) == 2 * 64 and tokens["row"].max() == 7


def test_a_declared_grid_that_no_token_layer_has_is_a_one_line_error(tmp_path):
    torch.save(patch_tokens().state_dict(), tmp_path / "weights.pt")
    result = spikescope_cli("analyze", tmp_path / "weights.pt", "--arch", "attention_blocks:patch_tokens", "--T", 2,
                            "--data", "fashion-mnist-sample", "--limit", 20, "--tokens", "7x7",
                            "--out", tmp_path / "r")
    errors = [line for line in result.stderr.splitlines() if line.startswith("spikescope: error: ")]
    assert result.returncode == 2 and len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "--tokens 7x7 declares 49 tokens, but no token layer" in errors[0] and not (tmp_path / "r").exists()
    malformed = spikescope_cli("analyze", "--tokens", "8by8")
    assert malformed.returncode == 2 and "--tokens takes the patch grid as HxW" in malformed.stderr
