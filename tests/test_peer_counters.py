"""spikescope's operator costs against SpikingJelly 2.0's own counters (SynOpCounter, MACCounter).

(a) `spikescope.energy.peers.spikingjelly_counts` on hand-built modules whose counts are worked out here;
(b) SpikingJelly's zoo (analyses/_spikingjelly_zoo.py), calibrated, fires 5-30 % in every neuron layer;
(c) on those seven models, spikescope's energy table equals SpikingJelly's counts per module and operator
wherever both cost the same thing, and every other difference is one of the conventions stated below.
"""
import sys
from functools import cache
from pathlib import Path

import pytest
import torch
from torch import nn

pytest.importorskip("spikingjelly.activation_based.op_counter", reason="test extra: pip install --no-deps spikingjelly")

import spikescope  # noqa: E402
from spikescope.energy.peers import SPIKINGJELLY_OPERATORS, side_by_side, spikingjelly_counts  # noqa: E402
from spikescope.errors import SpikescopeError  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analyses"))
import _spikingjelly_zoo as zoo  # noqa: E402


# --- (a) known answers -------------------------------------------------------------------------------------
def counts_of(model: nn.Module, inputs: torch.Tensor) -> dict[tuple[str, str], tuple[int, int]]:
    table = spikingjelly_counts(model, inputs)
    return {(r.module, r.operator): (r.synops, r.macs) for r in table.itertuples() if r.synops or r.macs}


def test_a_linear_fed_spikes_costs_one_accumulate_per_spike_and_output():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 4), nn.Linear(4, 3))
    spikes = torch.tensor([[1., 0, 1, 0, 0, 1], [0, 0, 0, 1, 0, 0], [1, 1, 1, 1, 1, 1]])  # 3 + 1 + 6 spikes
    # the first layer: 10 spikes x 4 outputs; the second is fed real values: 3 images x 4 inputs x 3 outputs MACs
    assert counts_of(model, spikes) == {("0", "addmm"): (40, 0), ("1", "addmm"): (0, 36)}


class Coincidences(nn.Module):
    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return torch.bmm(q, k)


class Outer(nn.Module):
    """A product of its own around one inside a ModuleList (which is never called itself)."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([Coincidences()])

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        k = torch.tensor([[[1., 1], [0, 1], [1, 0]]])
        return torch.bmm(self.blocks[0](q, k), torch.tensor([[[1., 0, 0, 1, 1], [0, 0, 1, 0, 0]]]))


def test_a_binary_products_cost_one_accumulate_per_coincidence_in_the_innermost_module():
    q = torch.tensor([[[1., 0, 1], [1, 1, 0]]])
    # q @ k = [[1+0+1, 1+0+0], [1+0+0, 1+1+0]] = [[2, 1], [1, 2]]: 6 coincidences, in blocks.0. That product is
    # not binary; times a binary [2, 5] with 4 spikes, each meeting its 2 rows: 8 accumulates in the model's own
    # forward, and nothing counted twice in the ancestors of blocks.0
    assert counts_of(Outer(), q) == {("blocks.0", "bmm"): (6, 0), ("", "bmm"): (8, 0)}


def test_a_without_spikingjelly_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "spikingjelly.activation_based.op_counter", None)
    with pytest.raises(SpikescopeError, match="pip install --no-deps spikingjelly"):
        spikingjelly_counts(nn.Linear(2, 2), torch.ones(1, 2))


# --- (b) the calibrated zoo --------------------------------------------------------------------------------
@cache
def calibrated(name: str) -> tuple[nn.Module, torch.Tensor, int]:
    model, inputs, T = zoo.build(name)
    zoo.calibrate(model, inputs)
    return model, inputs, T


def images_in(inputs: torch.Tensor) -> int:
    return inputs.shape[1] if inputs.dim() == 5 else inputs.shape[0]


@pytest.mark.parametrize("name", zoo.NAMES)
def test_b_every_neuron_layer_of_the_calibrated_zoo_fires_5_to_30_percent(name):
    from spikingjelly.activation_based import functional, neuron
    model, inputs, T = calibrated(name)
    rates = {}
    handles = [m.register_forward_hook(lambda m, a, out, n=n: rates.__setitem__(n, out.float().mean().item()))
               for n, m in model.named_modules() if isinstance(m, neuron.BaseNode)]
    with torch.no_grad():
        functional.reset_net(model)
        model(inputs)
    for handle in handles:
        handle.remove()
    assert len(rates) >= 7
    outside = {n: round(r, 4) for n, r in rates.items() if not 0.05 <= r <= 0.30}
    assert not outside


# --- (c) agreement with SynOpCounter / MACCounter ----------------------------------------------------------
CONVENTIONS = {  # operators whose rows differ, and why
    "add": "a sum of spikes or spike sums (residual, SEW ADD, patch embedding + positional code) costs one "
           "accumulate per event in spikescope; SpikingJelly counts no additions as SynOps",
    "mul": "a Hadamard product of spikes (Spike-driven Transformer's k * v and q * kv, QKFormer's token mask) "
           "costs one accumulate per coincidence in spikescope; SpikingJelly counts no elementwise products",
    "sum": "a sum of spikes over tokens or channels (Spike-driven Transformer's column sum, QKFormer's token "
           "attention) costs one accumulate per spike in spikescope; SpikingJelly counts no reductions",
    "mean": "a mean over time or tokens of spikes costs one accumulate per spike in spikescope (of spike sums: one "
            "per event, and nothing under the dense reading); SpikingJelly counts no reductions",
    "native_batch_norm": "SpikingJelly's MACCounter counts BatchNorm's affine step, one MAC per element, even in "
                         "eval mode; spikescope folds BatchNorm into the preceding weights at inference",
}
DIFFERING = {
    "spikformer": {"add", "mean", "native_batch_norm"},
    "spike-driven-transformer": {"mul", "sum", "mean", "native_batch_norm"},
    "qkformer": {"add", "mul", "sum", "mean", "native_batch_norm"},
    "maxformer": {"mean", "native_batch_norm"},
    "sew-resnet-18": {"add", "mean", "native_batch_norm"},
    "ms-resnet": {"mean", "native_batch_norm"},
    "spiking-resnet-18": {"add", "mean", "native_batch_norm"},
}


def same(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b))


@pytest.mark.parametrize("name", zoo.NAMES)
def test_c_spikescope_equals_spikingjelly_per_operator_except_for_stated_conventions(name):
    model, inputs, T = calibrated(name)
    counts = spikingjelly_counts(model, inputs)
    result = spikescope.analyze(model, [inputs], T=T, metrics=[spikescope.Energy()])
    table = side_by_side(result.energy, counts, images_in(inputs))
    shared = table[table["operator"].isin(SPIKINGJELLY_OPERATORS)]
    assert len(shared) >= 8 and shared["synops_per_image"].sum() > 0
    for row in shared.itertuples():
        # spikes: SOPs = SynOps; spike sums: the dense reading = SpikingJelly's MACs (events are SOPs of weight k);
        # analog: MACs = MACs. Both columns hold for every row, whatever its input.
        assert same(row.sops_dense_reading_per_image, row.synops_per_image), row
        assert same(row.macs_dense_reading_per_image, row.macs_per_image), row
        if row.input == "spikes":
            assert same(row.sops_per_image, row.synops_per_image), row
    differing = set(table.loc[~table["operator"].isin(SPIKINGJELLY_OPERATORS), "operator"])
    assert differing == DIFFERING[name], {op: CONVENTIONS.get(op, "no stated convention") for op in differing}
