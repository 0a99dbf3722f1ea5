"""Frequency ablation: known answers (a network that reads only horizontal stripes), exact identity and full
removal, band masks that partition the spectrum, controls that remove the stated power, the same answer in every
time layout, and results that merge across batches and processes."""
import pickle

import numpy as np
import pytest
import torch
from torch import nn

import spikescope
from spikescope.data import make_loader
from spikescope.dct import dct2
from spikescope.errors import SpikescopeError
from spikescope.frequency.bands import band_masks, conditions, control_pool, matched_control, removed_power
from spikescope.frequency.intercept import BandRemover, remove_coefficients
from spikescope.frequency.result import FrequencyAblation
from spikescope.metrics.spectrum import Spectrum, frequency_masks
from spikescope.neurons import LIF
from spikescope.pipeline import prepare_file
from tests.snn_zoo import MLPSNN

T, SIZE = 2, 8


def stripes(count: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Binary 8x8 images, half horizontal stripes (label 1: rows alternate, variation along the height) and half
    vertical stripes (label 0: columns alternate), with random period 2 or 4 and random phase."""
    generator = torch.Generator().manual_seed(seed)
    images, labels = [], []
    for k in range(count):
        period = int(torch.randint(1, 3, (1,), generator=generator)) * 2
        phase = int(torch.randint(0, period, (1,), generator=generator))
        line = ((torch.arange(SIZE) + phase) % period < period // 2).float()
        horizontal = k % 2 == 0
        image = line[:, None].expand(SIZE, SIZE) if horizontal else line[None, :].expand(SIZE, SIZE)
        images.append(image[None].clone())
        labels.append(int(horizontal))
    return torch.stack(images), torch.tensor(labels)


class StripeReader(nn.Module):
    """Spikes copy the image at every timestep (a neuron fed the image as current fires where it is 1); the readout
    counts vertical differences (a fixed 2x1 edge convolution, both signs, rectified) and says 'horizontal stripes'
    when there are many. It reads only variation along the height."""

    def __init__(self, neuron: nn.Module, layout: str) -> None:
        super().__init__()
        self.neuron, self.layout = neuron, layout
        self.edges = nn.Conv2d(1, 2, (2, 1), bias=False)
        self.edges.weight.data = torch.tensor([[[[1.0], [-1.0]]], [[[-1.0], [1.0]]]])
        self.readout = nn.Linear(2, 2)
        self.readout.weight.data = torch.tensor([[-1.0, -1.0], [1.0, 1.0]])
        self.readout.bias.data = torch.tensor([0.25, -0.25])

    def spikes(self, images: torch.Tensor) -> torch.Tensor:
        current = images.unsqueeze(0).expand(T, *images.shape).contiguous()  # [T, B, 1, H, W]
        if self.layout == "time-first":
            return self.neuron(current)
        if self.layout == "batch-first":
            return self.neuron(current.transpose(0, 1)).transpose(0, 1)
        if self.layout == "folded":
            return self.neuron(current.flatten(0, 1)).unflatten(0, (T, -1))
        steps = [self.neuron(x) for x in current]  # one call per timestep; snnTorch returns (spikes, membrane)
        return torch.stack([s[0] if isinstance(s, tuple) else s for s in steps])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        spikes = self.spikes(images)
        edges = torch.relu(self.edges(spikes.flatten(0, 1))).mean(dim=(-3, -2, -1))
        return self.readout(torch.stack([edges, edges], dim=1)).unflatten(0, (T, -1)).mean(0)


class FoldedLIF(nn.Module):
    """spikescope's LIF on time folded into the batch, `[T*B, ...]` in and out."""

    def __init__(self) -> None:
        super().__init__()
        self.lif = LIF()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lif(x.unflatten(0, (T, -1))).flatten(0, 1)


def stripe_loader(count: int = 40, batch: int = 10):
    images, labels = stripes(count)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=batch)


def test_a_network_reading_horizontal_stripes_needs_variation_along_the_height():
    model = StripeReader(LIF(), "time-first")
    result = spikescope.frequency_ablation(model, stripe_loader(), T=T, bands="axis,dc", draws=2)
    assert result.info["accuracy"] == 1.0
    effects = result.effects().set_index(["layer", "condition"]).loc["neuron"]
    assert effects.loc["axis_vertical", "accuracy_change_mean"] == -0.5  # horizontal stripes become flat: all wrong
    assert effects.loc["axis_horizontal", "accuracy_change_mean"] == 0.0  # vertical stripes flat: still 'not'
    assert effects.loc["identity", "accuracy_change_mean"] == 0.0 and effects.loc["identity", "kl_mean"] == 0.0
    specific = result.against_controls().set_index("band")
    assert specific.loc["axis_vertical", "accuracy_change_specific_ci_high"] < 0  # beyond power alone


@pytest.mark.parametrize("layout", ["batch-first", "folded", "per-call"])
def test_every_time_layout_gives_the_time_first_answer(layout):
    reference = spikescope.frequency_ablation(StripeReader(LIF(), "time-first"), stripe_loader(), T=T,
                                              bands="axis,radial", draws=0)  # controls follow the layer's name
    neuron = {"folded": FoldedLIF(), "batch-first": _sinabs_free_batch_first(), "per-call": _spikingjelly_step()}
    result = spikescope.frequency_ablation(StripeReader(neuron[layout], layout), stripe_loader(), T=T,
                                           bands="axis,radial", draws=0, layers=[_neuron_name(layout)],
                                           fold="time-major" if layout == "folded" else None,
                                           batch_first=True if layout == "batch-first" else None)
    (name,) = result.layers
    for key in ("correct", "logit_change", "kl"):
        np.testing.assert_array_equal(getattr(result, key)[name], getattr(reference, key)["neuron"])


def _neuron_name(layout: str) -> str:
    return "neuron.lif" if layout == "folded" else "neuron"


def _sinabs_free_batch_first() -> nn.Module:
    """spikescope's LIF over `[B, T, ...]`."""
    class BatchFirstLIF(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lif = LIF()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lif(x.transpose(0, 1)).transpose(0, 1)
    return BatchFirstLIF()


def _spikingjelly_step() -> nn.Module:
    neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
    return neuron.IFNode(v_threshold=0.5, v_reset=0.0, step_mode="s")


def test_snntorch_tuples_lose_coefficients_in_their_spikes_only():
    snn = pytest.importorskip("snntorch")
    model = StripeReader(snn.Leaky(beta=0.25, threshold=0.5, reset_mechanism="zero", init_hidden=False), "per-call")
    images, _ = stripes(4)
    spikes, membrane = torch.ones(4, 1, SIZE, SIZE), torch.full((4, 1, SIZE, SIZE), 0.3)
    with BandRemover(model.neuron, None) as remover:
        remover.set_gain(np.zeros((SIZE, SIZE)))
        out = remover._ablate(model.neuron, (images,), (spikes, membrane))
    assert torch.equal(out[0], torch.zeros_like(spikes)) and out[1] is membrane


@pytest.fixture(scope="module")
def bundled():
    prepared = prepare_file(None, limit=60)
    return prepared, make_loader(prepared.dataset, 20)


def test_identity_is_exact_and_removing_everything_is_the_zeroed_layer(bundled):
    prepared, loader = bundled
    result = spikescope.frequency_ablation(prepared.model, loader, T=prepared.T, layers=["block3.lif"], bands="dc",
                                           draws=0)
    identity = result.conditions["block3.lif"].index("identity")
    assert not result.logit_change["block3.lif"][identity].any() and not result.kl["block3.lif"][identity].any()
    model = prepared.model
    base, zeroed = [], []
    with torch.no_grad():
        for images, _ in loader:
            base.append(model(images).double())
            handle = model.block3.lif.register_forward_hook(lambda m, a, out: torch.zeros_like(out))
            zeroed.append(model(images).double())
            handle.remove()
    labels = torch.cat([labels for _, labels in loader])
    expected = (torch.cat(zeroed) - torch.cat(base))[torch.arange(len(labels)), labels].numpy()
    everything = result.conditions["block3.lif"].index("all")
    np.testing.assert_array_equal(result.logit_change["block3.lif"][everything], expected)


@pytest.mark.parametrize("height,width", [(8, 8), (7, 7), (5, 9), (1, 6), (28, 28)])
def test_band_masks_partition_the_spectrum(height, width):
    masks = band_masks(height, width)
    dc = masks["dc"]
    diagonal = frequency_masks(height, width)["wedge_vertical"] | masks["wedge_horizontal"] | dc
    for parts in (("band_low", "band_mid", "band_high", "dc"),):
        assert (sum(masks[p].astype(int) for p in parts) == 1).all()
    assert not (masks["axis_vertical"] & masks["axis_horizontal"]).any()
    assert not (masks["wedge_vertical"] & masks["wedge_horizontal"]).any()
    assert (masks["axis_vertical"] <= masks["wedge_vertical"]).all()
    assert (masks["axis_horizontal"] <= masks["wedge_horizontal"]).all()
    u = np.arange(height)[:, None] / height
    v = np.arange(width)[None, :] / width
    assert (~diagonal == np.broadcast_to(u == v, (height, width)) & ~dc).all()  # what the wedges leave: the diagonal
    singles = band_masks(height, width, (), coefficients=3)
    assert len(singles) == min(3, height) * min(3, width) and all(m.sum() == 1 for m in singles.values())


def test_removing_a_band_and_its_complement_add_up_to_the_map():
    maps = (torch.rand(2, 3, 4, 7, 9, dtype=torch.float64) < 0.3).double()
    band = band_masks(7, 9)["wedge_vertical"]
    kept = remove_coefficients(maps, torch.as_tensor((~band).astype(float)))
    removed = remove_coefficients(maps, torch.as_tensor(band.astype(float)))
    torch.testing.assert_close(kept + removed, maps, rtol=0, atol=1e-12)
    coefficients = dct2(kept)
    assert coefficients[..., torch.as_tensor(band)].abs().max() < 1e-12  # the band is gone, the rest untouched
    torch.testing.assert_close(coefficients[..., torch.as_tensor(~band)], dct2(maps)[..., torch.as_tensor(~band)])


def test_binarised_maps_are_spikes_again():
    maps = (torch.rand(2, 5, 3, 8, 8) < 0.4).float()
    ablated = remove_coefficients(maps, torch.as_tensor((~band_masks(8, 8)["band_high"]).astype(float)), True)
    assert set(ablated.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(remove_coefficients(maps, torch.ones(8, 8), True), maps)


def _spikes_of(prepared, layer: str, count: int = 40) -> torch.Tensor:
    captured = []
    handle = prepared.model.get_submodule(layer).register_forward_hook(lambda m, a, out: captured.append(out))
    with torch.no_grad():
        prepared.model(prepared.dataset.normalised()[:count] if hasattr(prepared.dataset, "normalised")
                       else next(iter(make_loader(prepared.dataset, count)))[0])
    handle.remove()
    return captured[0]


def test_energy_matched_controls_remove_the_stated_power(bundled):
    prepared, _ = bundled
    spikes = _spikes_of(prepared, "block2.lif")  # [T, B, C, H, W]
    spectrum = Spectrum()
    spectrum.update("x", spikes)
    power = spectrum.states["x"]["power"].sum(dim=0).numpy()
    gains, overlapping = conditions(power, draws=4, seed=3)
    for band, mask in band_masks(*power.shape).items():
        for draw in range(4):
            gain = gains[f"{band}~control{draw}"]
            assert abs(removed_power(gain, power) - power[mask].sum()) <= 1e-9 * power.sum()
            assert gain[0, 0] == 1.0  # never DC
            if band not in overlapping:
                assert (gain[mask] == 1).all()
    gain = gains["axis_vertical~control0"]  # measured on the ablated maps themselves
    after = Spectrum()
    after.update("x", remove_coefficients(spikes, torch.as_tensor(gain)))
    lost = power.sum() - after.states["x"]["power"].sum().item()
    assert lost == pytest.approx(power[band_masks(*power.shape)["axis_vertical"]].sum(), rel=1e-5)


def test_a_band_holding_more_power_than_the_rest_draws_its_controls_from_everywhere_off_dc():
    power = np.ones((4, 4))
    power[0, 1:] = 10.0  # axis_horizontal holds 30 of 45
    band = band_masks(4, 4)["axis_horizontal"]
    pool, overlaps = control_pool(power, band)
    assert overlaps and pool.sum() == 15
    power[0, 0] = 100.0  # DC: more than every other coefficient together
    assert matched_control(power, band_masks(4, 4)["dc"], control_pool(power, band_masks(4, 4)["dc"])[0],
                           np.random.default_rng(0)) is None
    gains, overlapping = conditions(power, ("dc",), draws=1)
    assert gains["dc~control0"] is None and overlapping == []  # unmatched, not drawn from its own coefficient


def test_each_layer_draws_its_own_controls_and_a_rerun_the_same():
    power = np.random.default_rng(1).random((14, 14))
    first, _ = conditions(power, ("axis",), draws=1, layer="block3.lif")
    again, _ = conditions(power, ("axis",), draws=1, layer="block3.lif")
    other, _ = conditions(power, ("axis",), draws=1, layer="block4.lif")
    assert np.array_equal(first["axis_vertical~control0"], again["axis_vertical~control0"])
    assert not np.array_equal(first["axis_vertical~control0"], other["axis_vertical~control0"])


def test_named_tuples_keep_their_type_and_outputs_without_a_tensor_are_refused():
    from collections import namedtuple
    Step = namedtuple("Step", "spikes membrane")
    spikes = torch.ones(2, 1, SIZE, SIZE)
    neuron = nn.Identity()
    with BandRemover(neuron, None) as remover:
        remover.set_gain(np.zeros((SIZE, SIZE)))
        out = remover._ablate(neuron, (spikes,), Step(spikes, spikes))
        assert isinstance(out, Step) and not out.spikes.any() and out.membrane is spikes
        with pytest.raises(SpikescopeError, match="returns dict, not a tensor"):
            remover._ablate(neuron, (spikes,), {"spikes": spikes})


def test_results_merge_across_batches(bundled):
    prepared, _ = bundled
    options = dict(T=prepared.T, layers=["block4.lif"], bands="axis", draws=1)
    whole = spikescope.frequency_ablation(prepared.model, make_loader(prepared.dataset, 60), **options)
    batched = spikescope.frequency_ablation(prepared.model, make_loader(prepared.dataset, 20), **options)
    for key in ("correct", "kl"):
        np.testing.assert_allclose(getattr(batched, key)["block4.lif"], getattr(whole, key)["block4.lif"],
                                   rtol=1e-5, atol=1e-6)
    halves = [FrequencyAblation(whole.layers, whole.conditions, whole.gains, whole.power,
                                *({"block4.lif": getattr(whole, key)["block4.lif"][:, part]}
                                  for key in ("correct", "logit_change", "kl")),
                                whole.base_correct[part], whole.info) for part in (slice(0, 25), slice(25, None))]
    merged = FrequencyAblation.merge(halves)
    assert merged.effects().equals(whole.effects())
    other = FrequencyAblation(**{**merged.__dict__, "gains": {"block4.lif": {
        c: g * 0.5 for c, g in merged.gains["block4.lif"].items()}}})
    with pytest.raises(ValueError, match="same gains"):
        FrequencyAblation.merge([merged, other])


TWO_PROCESSES = """
import pickle, sys
import spikescope
from spikescope import distributed
from spikescope.data import make_loader
from spikescope.pipeline import prepare_file
distributed.init_from_environment()
prepared = prepare_file(None, limit=60)
result = spikescope.frequency_ablation(prepared.model, make_loader(prepared.dataset, 10), T=prepared.T,
                                       layers=["block2.lif"], bands="axis", draws=1)
if distributed.is_main():
    pickle.dump(result, open(sys.argv[1], "wb"))
"""


def test_two_processes_give_the_result_of_one(bundled, tmp_path):
    from tests.test_distributed import torchrun
    script = tmp_path / "ablate.py"
    script.write_text(TWO_PROCESSES)
    run = torchrun(script, tmp_path / "two.pkl")
    assert run.returncode == 0, run.stderr[-3000:]
    two = pickle.loads((tmp_path / "two.pkl").read_bytes())
    prepared, _ = bundled
    one = spikescope.frequency_ablation(prepared.model, make_loader(prepared.dataset, 10), T=prepared.T,
                                        layers=["block2.lif"], bands="axis", draws=1)
    assert two.info["processes"] == 2 and two.info["images"] == 60
    np.testing.assert_array_equal(two.correct["block2.lif"], one.correct["block2.lif"])
    for key in ("logit_change", "kl"):  # float32 logits: one intra-op thread per process rounds a little otherwise
        np.testing.assert_allclose(getattr(two, key)["block2.lif"], getattr(one, key)["block2.lif"], atol=1e-5)
    np.testing.assert_allclose(two.power["block2.lif"], one.power["block2.lif"], rtol=1e-12)


def test_bad_requests_are_one_line_errors(bundled):
    prepared, loader = bundled
    with pytest.raises(SpikescopeError, match="unknown band set 'diagonal'"):
        spikescope.frequency_ablation(prepared.model, loader, T=prepared.T, bands="axis,diagonal")
    with pytest.raises(SpikescopeError, match="no spiking layer matches"):
        spikescope.frequency_ablation(prepared.model, loader, T=prepared.T, layers="nothing.*")
    with pytest.raises(SpikescopeError, match="no selected spiking layer has 2D maps"):
        spikescope.frequency_ablation(MLPSNN(), loader)


class TokenStripeReader(StripeReader):
    """`StripeReader` whose neuron sees the image as 64 tokens of one feature, `[T, B, N, D]` on an 8 x 8 grid."""

    def spikes(self, images: torch.Tensor) -> torch.Tensor:
        current = images.unsqueeze(0).expand(T, *images.shape)  # [T, B, 1, H, W]
        tokens = self.neuron(current.flatten(3).transpose(2, 3).contiguous())  # [T, B, 64, 1]
        return tokens.transpose(2, 3).unflatten(3, (SIZE, SIZE))


def test_token_layers_lose_the_frequencies_of_their_patch_grid():
    reference = spikescope.frequency_ablation(StripeReader(LIF(), "time-first"), stripe_loader(), T=T, bands="axis",
                                              draws=2)
    tokens = spikescope.frequency_ablation(TokenStripeReader(LIF(), "time-first"), stripe_loader(), T=T,
                                           bands="axis", draws=2, tokens="8x8")
    for key in ("correct", "logit_change", "kl"):
        np.testing.assert_array_equal(getattr(tokens, key)["neuron"], getattr(reference, key)["neuron"])


def test_without_labels_the_target_is_the_unablated_prediction():
    images, _ = stripes(20)
    result = spikescope.frequency_ablation(StripeReader(LIF(), "time-first"),
                                           torch.utils.data.DataLoader(images, batch_size=10), T=T, bands="axis",
                                           draws=1)
    assert result.info["target"] == "prediction" and result.base_correct.all()
    effects = result.effects().set_index("condition")
    assert effects.loc["axis_vertical", "accuracy_change_mean"] == -0.5  # the horizontal half changes its mind
