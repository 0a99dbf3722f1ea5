"""The claims of reports/energy-models/README.md, on networks of analyses/energy_models.py: spikescope's Lemaire
energy differs from SpikingJelly's estimator only by the stated choices of docs/metrics.md ("Energy models"), and
where the estimator refuses a residual network (or accepts one and leaves its sum out) spikescope costs the sum."""
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("spikingjelly.activation_based.op_counter", reason="test extra: pip install --no-deps spikingjelly")

import spikescope  # noqa: E402
from spikescope.energy.models import TERMS, Lemaire2022  # noqa: E402
from spikescope.energy.peers import spikingjelly_lemaire, spikingjelly_refusal  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analyses"))
import energy_models  # noqa: E402

IMAGES = spikescope.load_dataset("fashion-mnist-sample", "test", limit=6)[:][0]  # normalised [6, 1, 28, 28]
LEMAIRE = Lemaire2022()
T, E_ADD = energy_models.T, 0.1


def test_a_multi_step_strided_stack_differs_from_spikingjelly_by_the_input_buffer_and_taps_alone():
    rows, summary = energy_models.agreement("conv, multi-step, bias, stride 2", IMAGES)
    rows = rows.set_index("term")
    assert all(0.05 <= float(rate) <= 0.30 for rate in summary["firing rates"].split(", "))
    for term in ("ops", "params", "potentials"):  # the paper's fan-outs: the same terms as SpikingJelly's
        assert rows.loc[term, "paper_pj"] == pytest.approx(rows.loc[term, "spikingjelly_pj"], rel=1e-9)
    # conv1 is fed the image ([T, 1, 28, 28] in one call): SpikingJelly holds T timesteps of it, spikescope one
    reads = T * 8 * 28 * 28 * 9  # an input read per MAC, padding taps included
    image_bytes = 28 * 28 * 4
    assert rows.loc["inout", "spikingjelly_pj"] - rows.loc["inout", "paper_pj"] == pytest.approx(
        reads * 4 * (LEMAIRE.per_byte(T * image_bytes) - LEMAIRE.per_byte(image_bytes)), rel=1e-9)
    # ... and addresses its 8 x 3 x 3 weights once per call, spikescope once per timestep
    assert rows.loc["addressing", "paper_pj"] - rows.loc["addressing", "spikingjelly_pj"] == pytest.approx(
        (T - 1) * 8 * 9 * E_ADD, rel=1e-9)
    assert rows.loc["inout", "why"] == energy_models.BUFFER
    assert rows.loc["addressing", "why"] == f"{energy_models.TAPS}; {energy_models.FANOUT}"
    # exact fan-outs: the stride-2 convolution's events reach at most 4 of their 9 taps per channel
    assert rows.loc["inout", "exact_pj"] == pytest.approx(rows.loc["inout", "paper_pj"], rel=1e-12)
    assert rows.loc["potentials", "exact_pj"] < 4 / 9 * rows.loc["potentials", "paper_pj"] * 1.01
    assert (rows["unexplained_pj"] <= 1e-9 * rows["spikingjelly_pj"].abs()).all()


def test_a_linear_mlp_in_single_step_equals_spikingjelly_under_both_fanouts():
    rows, _ = energy_models.agreement("MLP, single-step", IMAGES)
    rows = rows.set_index("term")
    assert rows["paper_pj"].tolist() == pytest.approx(rows["spikingjelly_pj"].tolist(), rel=1e-9)
    assert rows["exact_pj"].tolist() == pytest.approx(rows["spikingjelly_pj"].tolist(), rel=1e-9)
    assert set(rows["why"]) == {""}


def add_row(net, energy: str):
    """The energy table and its one add row (the block is multi-step: one sum over all T timesteps)."""
    table = spikescope.analyze(net, [IMAGES], energy=energy).energy
    adds = table[table["kind"] == "add"]
    assert list(adds["layer"]) == ["(model): add 1"]
    return table, adds.iloc[0]


def test_spikingjelly_refuses_a_residual_network_while_spikescope_costs_its_sum():
    net = energy_models.spiking_residual(IMAGES, norm=True)
    assert spikingjelly_refusal(net, IMAGES[:1]) == (
        "Lemaire formulas do not support BatchNorm2d; its energy is omitted.")
    spikes = []
    handle = net.if1.register_forward_hook(lambda m, i, o: spikes.append(o))
    _, add = add_row(net, "lemaire2022")
    handle.remove()
    events = float(spikes[-1].sum()) / len(IMAGES)  # the identity's spikes per image, over the T steps
    assert events > 0
    # each identity spike is added into its potential: read and written, in a memory of 8 x 28 x 28 potentials
    assert add["energy_potentials_pj_per_image"] == pytest.approx(
        2 * events * 4 * LEMAIRE.per_byte(8 * 28 * 28 * 4), rel=1e-9)


def test_spikingjelly_accepts_a_residual_sum_in_forward_and_leaves_it_out():
    net = energy_models.spiking_residual(IMAGES)
    assert spikingjelly_refusal(net, IMAGES[:1]) is None
    theirs = spikingjelly_lemaire(net, IMAGES)
    table, add = add_row(net, "lemaire2022-paper")
    assert add["energy_potentials_pj_per_image"] > 0
    moved = energy_models.stated_differences(net, IMAGES)  # the multi-step input buffer and taps (as above)
    for term in TERMS:  # everything but the sum agrees
        ours = table[f"energy_{term}_pj_per_image"].sum() - add[f"energy_{term}_pj_per_image"]
        expected = theirs[term] + moved[energy_models.BUFFER][term] + moved[energy_models.TAPS][term]
        assert ours == pytest.approx(expected, rel=1e-9), term
    assert moved[energy_models.BUFFER]["inout"] < 0 and moved[energy_models.TAPS]["addressing"] > 0


def test_an_unsupported_module_is_refused_by_name_and_a_supported_stack_accepted():
    torch.manual_seed(0)
    assert spikingjelly_refusal(energy_models.PlainLIFNet(), IMAGES[:1]) == (
        "Lemaire formulas do not support LIF; its energy is omitted.")
    assert spikingjelly_refusal(energy_models.SUPPORTED_NETWORKS["MLP, multi-step"](), IMAGES[:1]) is None
