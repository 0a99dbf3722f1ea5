"""Known answers per operator and convention (docs/metrics.md, "Operators and conventions"), counted by hand here."""
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import spikescope
from spikescope.metrics.energy import Energy
from spikescope.models.layers import over_time
from spikescope.neurons import LIF
from test_timelayout_order import StepIF

T, B = 2, 3


def spikes(*shape: int, rate: float = 0.4, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=generator) < rate).float()


class Fire(nn.Module):
    """A neuron stand-in that passes binary inputs through (its output is the spikes the test chose)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()


class Attention(nn.Module):
    """`[T, B, 3, N, D]` spikes in (q, k, v): q @ kᵀ of spikes, a constant scale, the probabilities @ v, a
    Hadamard mask and a column sum, all functional, in the model's own forward."""

    def __init__(self) -> None:
        super().__init__()
        self.q, self.k, self.v = Fire(), Fire(), Fire()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.q(x[:, :, 0]), self.k(x[:, :, 1]), self.v(x[:, :, 2])
        scores = q @ k.transpose(-2, -1) * 0.125
        mixed = scores @ v
        masked = q * v
        column = k.sum(dim=-2, keepdim=True)
        return mixed + masked + column


def energy_of(model: nn.Module, *inputs: torch.Tensor, inference: bool = False) -> "pd.DataFrame":  # noqa: F821
    context = torch.inference_mode() if inference else torch.no_grad()
    with context, spikescope.SpikeRecorder(model, layers=[n for n, m in model.named_modules()
                                                          if isinstance(m, (Fire, LIF))], T=T,
                                           metrics=[Energy()]) as recorder:
        for x in inputs:
            model(x)
    return recorder.compute()["Energy"].layers.set_index("layer")


def test_products_of_two_spike_operands_cost_one_accumulate_per_coincidence_and_say_how_sparse_they_are():
    x = spikes(T, B, 3, 5, 4)  # q, k, v: [T, B, N=5, D=4]
    energy = energy_of(Attention(), x)
    q, k, v = x[:, :, 0], x[:, :, 1], x[:, :, 2]
    coincidences = sum(int(q[t, b, i, d] and k[t, b, j, d]) for t in range(T) for b in range(B)
                       for i in range(5) for j in range(5) for d in range(4))
    scores = energy.loc["(model): matmul 1"]
    assert scores["operands"] == "spikes x spikes" and scores["kind"] == "matmul"
    assert scores["sops_per_image"] == coincidences / B
    qk = torch.einsum("tbid,tbjd->tbij", q, k)
    assert scores["output_sparsity"] == pytest.approx(float((qk == 0).double().mean()), rel=1e-12)
    # probabilities (dense after the scale) @ v: every spike of v meets the 5 query rows
    values = energy.loc["(model): matmul 2"]
    assert values["input"] == "spikes" and values["sops_per_image"] == float(v.sum()) * 5 / B
    assert values["dense_ops_per_image"] == T * 5 * 5 * 4  # m x k x n per (t, b)
    mask = energy.loc["(model): product 2"]  # every product call is numbered, costed or not: names never move
    assert mask["operands"] == "spikes x spikes" and mask["sops_per_image"] == float((q * v).sum()) / B
    column = energy.loc["(model): sum 1"]
    assert column["kind"] == "reduction" and column["sops_per_image"] == float(k.sum()) / B
    assert "(model): product 1" not in energy.index  # the constant scale is folded, not costed


class Residual(nn.Module):
    """Two spiking branches summed (values 0, 1, 2), padded and concatenated, then a linear readout."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = Fire(), Fire()
        self.readout = nn.Linear(12, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = self.a(x[..., :5]) + self.b(x[..., 5:])  # [T, B, 5]
        padded = torch.cat([F.pad(total, (0, 1)), total], dim=-1)  # [T, B, 11] ... + 1 = 12
        return self.readout(F.pad(padded, (0, 1)))


def test_a_sum_of_spikes_feeding_a_layer_is_k_events_per_element_and_its_dense_reading_is_every_mac():
    x = spikes(T, B, 10, rate=0.6, seed=1)
    energy = energy_of(Residual(), x)
    total = x[..., :5] + x[..., 5:]
    assert float(total.max()) == 2  # a real spike sum
    readout = energy.loc["readout"]
    assert readout["input"] == "spike sums" and readout["kind"] == "linear"
    assert readout["sops_per_image"] == 2 * float(total.sum()) * 7 / B  # every event twice (cat) x 7 outputs
    assert readout["macs_dense_reading_per_image"] == T * 12 * 7  # every element, zeros included
    assert readout["sops_dense_reading_per_image"] == 0 and readout["macs_per_image"] == 0
    add = energy.loc["(model): add 1"]
    assert add["part"] == "residual" and add["sops_per_image"] == float(x.sum()) / B  # one accumulate per spike
    assert readout["energy_pj_dense_reading_per_image"] == pytest.approx(4.6 * T * 12 * 7, rel=1e-12)


class Functional(nn.Module):
    """A convolution and a linear map called functionally with the module's own parameters."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.kernel = nn.Parameter(torch.randn(6, 2, 3, 3))
        self.matrix = nn.Parameter(torch.randn(5, 6 * 4 * 4))
        self.fire = Fire()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        folded = self.fire(x).flatten(0, 1)  # [T*B, 2, 8, 8]
        mapped = F.conv2d(folded, self.kernel, stride=2, padding=1)  # [T*B, 6, 4, 4]
        return F.linear((mapped > 0).float().flatten(1), self.matrix)


def test_functional_convolutions_and_linear_maps_cost_each_spike_its_exact_fan_out():
    x = spikes(T, B, 2, 8, 8, seed=2)
    model = Functional()
    energy = energy_of(model, x)
    conv = energy.loc["(model): conv 1"]
    reached = F.conv2d(x.flatten(0, 1), torch.ones_like(model.kernel), stride=2, padding=1)
    assert conv["input"] == "spikes" and conv["sops_per_image"] == float(reached.sum()) / B
    assert conv["dense_ops_per_image"] == T * 6 * 4 * 4 * 2 * 9
    linear = energy.loc["(model): matmul 1"]
    fed = (F.conv2d(x.flatten(0, 1), model.kernel, stride=2, padding=1) > 0).float()
    assert linear["input"] == "spikes" and linear["sops_per_image"] == float(fed.sum()) * 5 / B


class FusedAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q, self.k, self.v = Fire(), Fire(), Fire()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(self.q(x[:, :, 0]), self.k(x[:, :, 1]), self.v(x[:, :, 2]))


def test_fused_attention_costs_q_kt_coincidences_and_each_value_spike_once_per_query():
    x = spikes(T, B, 3, 6, 4, seed=3)  # [T, B, N=6, D=4] per operand
    energy = energy_of(FusedAttention(), x)
    scores, values = energy.loc["(model): attention q·kᵀ 1"], energy.loc["(model): attention p·v 1"]
    assert scores["operands"] == "spikes x spikes"
    assert scores["sops_per_image"] == float(torch.einsum("tbid,tbjd->", x[:, :, 0], x[:, :, 1])) / B
    assert values["sops_per_image"] == float(x[:, :, 2].sum()) * 6 / B
    assert scores["dense_ops_per_image"] == values["dense_ops_per_image"] == T * 6 * 6 * 4


def test_inference_mode_and_grad_mode_give_the_same_table():
    x = spikes(T, B, 3, 5, 4, seed=4)
    assert energy_of(Attention(), x).equals(energy_of(Attention(), x, inference=True))
    assert energy_of(Functional(), spikes(T, B, 2, 8, 8)).equals(
        energy_of(Functional(), spikes(T, B, 2, 8, 8), inference=True))


def test_two_halves_merged_equal_the_whole():
    model = Residual()
    first, second = spikes(T, B, 10, seed=5), spikes(T, B, 10, seed=6)

    def measured(*batches: torch.Tensor) -> Energy:
        metric = Energy()
        with torch.no_grad(), spikescope.SpikeRecorder(model, layers=["a", "b"], T=T, metrics=[metric]):
            for x in batches:
                model(x)
        return metric

    merged = measured(first).merge(measured(second)).compute().layers
    whole = measured(first, second).compute().layers
    assert merged.equals(whole)


class ConvLIF(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.lif, self.readout = nn.Conv2d(1, 3, 3), LIF(), nn.Linear(108, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return over_time(self.readout, self.lif(over_time(self.conv, x)).flatten(2))


def test_a_neurons_own_dynamics_are_not_costed_but_the_synapses_around_it_are():
    model = ConvLIF().eval()
    with torch.no_grad(), spikescope.SpikeRecorder(model, T=T, metrics=[Energy()]) as recorder:
        model(torch.rand(T, B, 1, 8, 8) * 3)
    energy = recorder.compute()["Energy"].layers
    assert list(energy["layer"]) == ["conv", "readout"]  # LIF's decay, reset and threshold are no synapses
    assert list(energy["input"]) == ["analog", "spikes"]


class Stepped(nn.Module):
    """A linear layer fed by a cell: stepped by the caller (one call per timestep), silent at t = 0."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.cell, self.readout = StepIF(), nn.Linear(4, 3)

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        return self.readout(self.cell(current))


def test_a_network_stepped_by_the_caller_costs_each_image_once_over_its_timesteps():
    currents = [torch.tensor([[0.5, 0.5, 0.25, 0.75], [0.5, 0.25, 0.25, 0.5]]),
                torch.tensor([[1.0, 0.375, 0.25, 0.25], [1.0, 1.0, 0.5, 0.375]])]
    model, emitted = Stepped(), []
    model.cell.register_forward_hook(lambda m, i, o: emitted.append(o))
    with torch.no_grad(), spikescope.SpikeRecorder(model, T=3, metrics=[Energy()]) as recorder:
        for current in currents:
            model.cell.reset()
            for _ in range(3):
                model(current)
    readout = recorder.compute()["Energy"].layers.set_index("layer").loc["readout"]
    assert readout["input"] == "spikes"
    assert readout["sops_per_image"] == pytest.approx(float(torch.stack(emitted).sum()) * 3 / 4, rel=1e-12)  # 4 images
    assert readout["dense_ops_per_image"] == pytest.approx(3 * 4 * 3, rel=1e-12)  # T x in x out


def test_a_first_sequence_cut_short_says_how_many_of_its_t_calls_ran():
    model = Stepped()
    with torch.no_grad(), spikescope.SpikeRecorder(model, T=3) as recorder:
        model(torch.full((2, 4), 0.5))
        model(torch.full((2, 4), 0.5))
    with pytest.raises(spikescope.errors.SpikescopeError, match="first sequence ended after 2 of T=3 calls"):
        recorder.compute()


def test_fsta_is_costed_whole_by_its_own_count_in_the_order_the_network_runs():
    model, _ = spikescope.load("spikescope/bundled/compact_cnn_fsta.pt")
    images = spikescope.load_dataset("fashion-mnist-sample", "test", limit=4)[:][0]
    energy = spikescope.analyze(model.eval(), [images]).energy
    fsta_rows = energy[energy["kind"] == "fsta"]
    assert list(energy["layer"][:3]) == ["block1.conv", "block1.lif.fsta", "block2.conv"]
    first = model.get_submodule("block1.lif.fsta")
    assert fsta_rows.iloc[0]["macs_per_image"] == first.macs((16, 28, 28)) and len(fsta_rows) == 5
    assert not energy["module"].str.startswith("block1.lif.fsta.").any()  # nothing inside FSTA on its own


class ScaledInPlace(nn.Module):
    """From its second pass on, a neuron's spikes are halved in place before a linear layer: no longer spikes, so
    dense MACs (on the first pass, while layers are found, every operand is read from its values anyway)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lif, self.readout = LIF(), nn.Linear(6, 2)
        self.passes = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spikes = self.lif(x)
        self.passes += 1
        return self.readout(spikes.mul_(0.5) if self.passes > 1 else spikes)


def test_spikes_changed_in_place_after_their_neuron_are_read_from_their_values():
    model = ScaledInPlace().eval()
    with torch.no_grad(), spikescope.SpikeRecorder(model, T=T, metrics=[Energy()]) as recorder:
        for _ in range(2):  # the second pass is where a neuron's outputs are known spikes
            model(torch.rand(T, B, 6) * 3)
    readout = recorder.compute()["Energy"].layers.set_index("layer").loc["readout"]
    assert readout["input"] == "analog" and readout["macs_per_image"] == T * 6 * 2


class HeadAttention(nn.Module):
    """Spikes `[T, B, 3, N, D]` split into 4 query heads (and `kv_heads` key/value heads), time-first 5-D: the
    layout on which PyTorch scales Q before its product when it breaks the attention down."""

    def __init__(self, kv_heads: int = 4, **options) -> None:
        super().__init__()
        self.q, self.k, self.v = Fire(), Fire(), Fire()
        self.kv_heads, self.options = kv_heads, options

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def heads(t: torch.Tensor, count: int) -> torch.Tensor:
            return t.reshape(*t.shape[:3], 4, 2).transpose(2, 3)[:, :, :count]  # [T, B, heads, N, d = 2]

        q, k, v = heads(self.q(x[:, :, 0]), 4), heads(self.k(x[:, :, 1]), self.kv_heads), heads(
            self.v(x[:, :, 2]), self.kv_heads)
        return F.scaled_dot_product_attention(q, k, v, **self.options)


@pytest.mark.parametrize("options", [{}, {"is_causal": True}, {"attn_mask": "causal"}, {"enable_gqa": True}],
                         ids=["plain", "causal", "bool-mask", "grouped-heads"])
def test_attention_is_costed_as_called_with_its_mask_and_grouped_heads(options):
    x = spikes(T, B, 3, 5, 8, seed=7)
    q, k, v = (x[:, :, i].reshape(T, B, 5, 4, 2).transpose(2, 3) for i in range(3))
    seen = torch.ones(5, 5)
    if options.get("is_causal") or options.get("attn_mask"):
        seen = seen.tril()
    if options.get("attn_mask"):
        options = {"attn_mask": seen.bool()}
    if options.get("enable_gqa"):
        k, v = (t[:, :, :2].repeat_interleave(2, dim=2) for t in (k, v))  # each key/value head serves two queries
    energy = energy_of(HeadAttention(kv_heads=2 if "enable_gqa" in options else 4, **options), x)
    # by hand: a coincidence wherever query i sees key j; each value spike at key j once per query seeing it
    coincidences = sum(float((q[..., i, :] * k[..., j, :]).sum()) for i in range(5) for j in range(5) if seen[i, j])
    values = sum(float(v[..., j, :].sum()) * float(seen[:, j].sum()) for j in range(5))
    assert energy.loc["(model): attention q·kᵀ 1", "sops_per_image"] == pytest.approx(coincidences / B, rel=1e-12)
    assert energy.loc["(model): attention p·v 1", "sops_per_image"] == pytest.approx(values / B, rel=1e-12)


class InPlaceResidual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b, self.readout = Fire(), Fire(), nn.Linear(5, 3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = self.a(x[..., :5])
        total += self.b(x[..., 5:])  # in place: the sum is costed from its operands, then it is a spike sum
        return self.readout(total)


def test_an_in_place_sum_of_spikes_is_costed_before_it_runs_and_feeds_the_next_layer_spike_sums():
    x = spikes(T, B, 10, rate=0.5, seed=8)
    energy = energy_of(InPlaceResidual(), x)
    total = x[..., :5] + x[..., 5:]
    assert energy.loc["(model): add 1", "sops_per_image"] == float(x.sum()) / B
    assert energy.loc["readout", "input"] == "spike sums"
    assert energy.loc["readout", "sops_per_image"] == float(total.sum()) * 3 / B


class Branch(nn.Module):
    """A layer that runs only on batches whose first image is bright: a row seen on some batches only."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fire, self.extra, self.readout = Fire(), nn.Linear(6, 2, bias=False), nn.Linear(6, 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.fire(x)
        return self.readout(s) + (self.extra(s) if x[0, 0].sum() > 3 else 0)


def test_a_row_seen_on_some_batches_only_is_per_image_of_the_whole_run():
    bright, dark = torch.ones(T, B, 6), torch.zeros(T, B, 6)
    bright[:, :, 0] = 0  # 5 spikes per image and timestep
    energy = energy_of(Branch(), bright, dark)
    assert energy.loc["extra", "sops_per_image"] == 5 * T * 2 / 2  # over both batches' 2B images: half of them


class Gated(nn.Module):
    """Two products in one forward: the first, of the raw input with itself, is an operation on spikes only on a
    batch whose values happen to be 0s and 1s."""

    def __init__(self) -> None:
        super().__init__()
        self.fire = Fire()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, gate = self.fire(x[..., :4]), x[..., 4:]
        return gate * gate + s * s  # then a Hadamard product of spikes


def test_row_names_do_not_move_when_a_call_is_not_costed_on_some_batch():
    spiking, dense = spikes(T, B, 8, seed=9), spikes(T, B, 8, seed=10)
    dense[..., 4:] = 0.5  # the gate is dense: its product is no operation on spikes... until a batch of 0s and 1s
    energy = energy_of(Gated(), dense, spiking)
    hadamard = energy.loc["(model): product 2"]
    expected = float(spiking[..., :4].sum() + dense[..., :4].sum())
    assert hadamard["operands"] == "spikes x spikes" and hadamard["sops_per_image"] == expected / (2 * B)


def test_two_recorders_and_a_flop_counter_share_a_model_and_leave_pytorchs_mode_stack_as_they_found_it():
    from torch.utils._python_dispatch import _get_current_dispatch_mode_stack
    from torch.utils.flop_counter import FlopCounterMode

    model, x = Residual(), spikes(T, B, 10, seed=11)
    alone = energy_of(model, x)
    with torch.no_grad(), spikescope.SpikeRecorder(model, layers=["a", "b"], T=T, metrics=[Energy()]) as first, \
            spikescope.SpikeRecorder(model, layers=["a", "b"], T=T, metrics=[Energy()]) as second:
        model(x)
        with FlopCounterMode(display=False) as flops:
            model(x)
        assert _get_current_dispatch_mode_stack() == []
    for recorder in (first, second):
        assert recorder.compute()["Energy"].layers.set_index("layer").equals(alone)
    assert flops.get_total_flops() == 2 * (T * B) * 12 * 7  # the readout's MACs, as without the recorders
    assert _get_current_dispatch_mode_stack() == []


class Pools(nn.Module):
    def __init__(self, **options) -> None:
        super().__init__()
        self.fire, self.options = Fire(), options

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.fire(x).flatten(0, 1)  # [T*B, 2, 5, 5]
        if "output_size" in self.options:
            return F.adaptive_avg_pool2d(s, self.options["output_size"])
        return F.avg_pool2d(s, **self.options)


@pytest.mark.parametrize("options", [{"kernel_size": 3, "stride": 1, "padding": 1, "count_include_pad": False},
                                     {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
                                     {"output_size": 3}], ids=["no-pad-count", "ceil", "adaptive-overlapping"])
def test_average_pooling_costs_each_spike_once_per_window_it_falls_in(options):
    x = spikes(T, B, 2, 5, 5, seed=12)
    energy = energy_of(Pools(**options), x)
    ones = torch.ones(1, 1, 5, 5, requires_grad=True)
    with torch.enable_grad():  # windows per position: the gradient of the summed window sums
        if "output_size" in options:
            windows = [(i * 5 // 3, -(-(i + 1) * 5 // 3)) for i in range(3)]
            reach = torch.zeros(5)
            for start, end in windows:
                reach[start:end] += 1
            per_position = reach[:, None] * reach[None, :]
        else:
            sums = F.avg_pool2d(ones, divisor_override=1, **{k: v for k, v in options.items()
                                                              if k != "count_include_pad"})
            per_position = torch.autograd.grad(sums.sum(), ones)[0][0, 0]
    expected = float((x.sum(dim=(0, 1, 2)) * per_position).sum())
    assert energy.loc["(model): pooling 1", "sops_per_image"] == pytest.approx(expected / B, rel=1e-12)


def test_spikes_meeting_spike_sums_read_densely_keep_the_spikes_events():
    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = Fire(), Fire()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a, b = self.a(x[:, :, 0]), self.b(x[:, :, 1])
            return a @ (a + b).transpose(-2, -1)  # spikes x spike sums

    x = spikes(T, B, 2, 4, 8, rate=0.5, seed=13)
    row = energy_of(Mixed(), x).loc["(model): matmul 1"]
    a, b = x[:, :, 0], x[:, :, 1]
    assert row["operands"] == "spikes x spike sums"
    assert row["sops_per_image"] == float((a @ (a + b).transpose(-2, -1)).sum()) / B  # coincidences
    assert row["sops_dense_reading_per_image"] == float(a.sum()) * 4 / B  # each spike meets 4 dense values
    assert row["macs_dense_reading_per_image"] == 0


def test_parts_read_whole_words_of_module_names():
    from spikescope.energy.parts import part_of
    assert part_of("blocks.0.attn: matmul 1", "matmul", "spikes") == "attention"
    assert part_of("layers.0.self_attn.q_proj", "linear", "spikes") == "attention"
    assert part_of("encoder.message_proj", "linear", "spikes") == "conv"  # "ssa" inside a word is no attention
    assert part_of("(model): mean 1", "reduction", "spike sums") == "head"


def test_masks_and_new_tensors_are_free_and_vector_products_are_costed():
    class Vector(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.fire, self.weight = Fire(), nn.Parameter(torch.randn(6))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            s = self.fire(x)
            causal = torch.ones(6, 6, dtype=torch.bool).tril()
            return torch.stack([s[t, b] @ self.weight for t in range(T) for b in range(B)]) + s.new_zeros(1).sum() \
                + causal.sum()

    x = spikes(T, B, 6, seed=14)
    with warnings.catch_warnings():
        warnings.simplefilter("error", spikescope.errors.SpikescopeWarning)  # nothing named as uncosted
        energy = energy_of(Vector(), x)
    assert energy.loc["(model): matmul 1", "operator"] == "dot"
    total = energy.filter(like="matmul", axis=0)["sops_per_image"].sum()
    assert total == pytest.approx(float(x.sum()) / B, rel=1e-12)  # each spike meets one weight


class Lateral(nn.Module):
    """A neuron with a fixed lateral weight matrix kept as a buffer: its product is a synapse."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("W", torch.ones(4, 4) - torch.eye(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x @ self.W) > 1).float()


class Raising(nn.Module):
    """A neuron that raises from its third call on; the model catches it and goes on."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls > 2:
            raise ValueError("a neuron that gives up")
        return x.clone()


class Survivor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lateral, self.raising, self.fire = Lateral(), Raising(), Fire()
        self.fc = nn.Linear(4, 3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spikes = self.lateral(x)
        try:
            self.raising(x)
        except ValueError:
            pass
        return self.fc(self.fire(spikes))


def test_a_neurons_buffer_weights_are_synapses_and_a_neuron_that_raises_stops_no_counting():
    x = spikes(T, B, 1, 6, 4, seed=15)  # time-first: five axes
    model = Survivor()
    with torch.no_grad(), spikescope.SpikeRecorder(model, layers=["lateral", "raising", "fire"], T=T,
                                                   metrics=[Energy()]) as recorder:
        for _ in range(4):
            model(x)
    energy = recorder.compute()["Energy"].layers.set_index("layer")
    assert energy.loc["lateral: matmul 1", "sops_per_image"] == float(x.sum()) * 4 / B  # each spike meets 4 weights
    emitted = ((x @ (torch.ones(4, 4) - torch.eye(4))) > 1).float()
    assert energy.loc["fc", "sops_per_image"] == float(emitted.sum()) * 3 / B  # on all 4 passes, 2 of them raising


def test_a_second_recorder_watching_fewer_neurons_still_sees_the_attention():
    model, x = FusedAttention(), spikes(T, B, 3, 6, 4, seed=16)
    with torch.no_grad(), spikescope.SpikeRecorder(model, layers=["q", "k", "v"], T=T, metrics=[Energy()]) as first, \
            spikescope.SpikeRecorder(model, layers=["q"], T=T, metrics=[Energy()]) as second:
        model(x)
        model(x)
    for recorder in (first, second):
        energy = recorder.compute()["Energy"].layers.set_index("layer")
        assert energy.loc["(model): attention p·v 1", "sops_per_image"] == float(x[:, :, 2].sum()) * 6 / B
