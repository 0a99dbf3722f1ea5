"""Synaptic operations and compute energy (docs/metrics.md, "Synaptic operations and energy").

One row per costed operation site (`energy.operators` counts them; a synaptic module can also be fed
directly with `update`). An event operand (spikes, spike sums) costs one accumulate (AC) per event per
target it reaches; operations without one cost dense multiply-accumulates (MACs). Beside it: the
paper-style fr x FLOPs and the dense reading of spike sums. Energy = E_MAC * MACs + E_AC * SOPs:
compute only, no memory access.
"""
from __future__ import annotations

import pandas as pd
import torch

from torch import nn

from ..energy import DENSE, SPIKES, SUMS
from ..energy import conventions as c
from ..energy.geometry import ConvSpec
from ..energy.parts import part_of
from ..errors import SpikescopeError
from .base import Metric, MetricResult, zero_one

# Horowitz, ISSCC 2014, 45 nm: FP32 mult 3.7 pJ + add 0.9 pJ; FP16 1.1 + 0.4; INT8 0.2 + 0.03.
ENERGY_PRESETS_PJ = {
    "fp32": {"mac": 4.6, "ac": 0.9},
    "fp16": {"mac": 1.5, "ac": 0.4},
    "int8": {"mac": 0.23, "ac": 0.03},
}

DEFINITIONS = {
    "SOPs (exact)": "accumulates under spikescope's convention (docs/metrics.md, 'Operators and conventions'): each "
                    "event of a spike operand meets its fan-out (the weights or values it is combined with; zero-"
                    "padding taps never receive a spike); a spike sum of k (residual sums, multi-spike counts) is k "
                    "events; two spike operands cost one accumulate per coincidence",
    "SOPs (approx.)": "paper-style fr_in x FLOPs summed over timesteps, fr_in = mean value of the event operand, "
                      "FLOPs = MACs of the operation run densely (convolution: C_out x H_out x W_out x C_in/groups x "
                      "k^2, padding taps included; transposed: C_in x H_in x W_in x C_out/groups x k^2; matmul: m x k "
                      "x n)",
    "MACs": "dense multiply-accumulates of operations with no event operand: the encoding layer, layers after "
            "average pooling, FSTA's convolutions and gates; a row counts as dense if any analysed batch fed it "
            "dense values",
    "energy": "E = E_MAC x MACs + E_AC x SOPs(exact), per image; compute only (memory access not included); "
              "beside it the paper-style E_MAC x MACs + E_AC x SOPs(approx.) and the dense reading of spike sums",
    "dense reading": "the same operations with spike sums read as dense values, as SpikingJelly's MACCounter and "
                     "most papers cost a residual sum of spikes: products fed spike sums cost dense MACs, sums and "
                     "reductions of them are dense elementwise work and are not costed",
    "dense ops": "multiply-accumulates of the operation run densely over all T timesteps: what it would cost in a "
                 "non-spiking network",
    "output sparsity": "for products of two spike operands (Q·Kᵀ): the share of outputs that are zero",
}
KINDS = ("conv", "linear", "fsta", "transposed conv", "matmul", "attention", "product", "add", "reduction",
         "pooling")
OPERATORS = ("convolution", "linear", "fsta", "mm", "addmm", "bmm", "baddbmm", "mv", "dot", "sdpa", "mul", "div",
             "add", "sub", "rsub", "sum", "mean", "avg_pool", "adaptive_avg_pool")
INPUTS = (SPIKES, SUMS, DENSE)
COUNTS = ("acs", "dense", "macs", "events", "elements", "dr_acs", "dr_macs", "out_nonzero", "out_elements",
          "samples")  # per row, summed
LABELS = ("kind", "operator", "input", "both", "weighted", "mixed", "alone")  # per row, the largest index seen
RUN = "(images)"  # the state of the images every pass covered: each row's count is per image of the whole run


def check_preset(preset: str) -> str:
    """`preset` if it names an energy preset, else a one-line error."""
    if preset not in ENERGY_PRESETS_PJ:
        raise SpikescopeError(f"unknown energy preset {preset!r}; choose one of {', '.join(ENERGY_PRESETS_PJ)}")
    return preset


class Energy(Metric):
    """States per costed row (an operation site, `energy.operators`, or a synaptic module fed to `update`): `counts`
    (`COUNTS`: accumulates, dense MACs of every call and of dense calls, events and elements of the event operand,
    the dense reading's accumulates and MACs, output non-zeros of coincidence products, samples) and `labels`
    (`LABELS`: indices into `KINDS`, `OPERATORS` and `INPUTS`, the worst input seen, and flags). Under `RUN`, the
    images of every pass: a row seen on some batches only is still per image of the whole run.

    `preset` picks the energy per operation (`ENERGY_PRESETS_PJ`).
    """

    reductions = {"counts": "sum", "labels": "max", "samples": "sum"}
    inputs = "synapses"

    def __init__(self, preset: str = "fp32") -> None:
        super().__init__()
        self.preset = check_preset(preset)

    def update(self, layer: str, inputs: torch.Tensor, module: nn.Module) -> None:
        """Cost one synaptic module (a convolution, plain or transposed, a linear layer, or a module costed whole by its
        own `macs(sample_shape)`, such as FSTA) fed `inputs: [T, B, ...]`, without a recorder, by the conventions the
        recorder's operator counter applies: events of spikes, else dense MACs."""
        T, B = inputs.shape[:2]
        if hasattr(module, "macs"):
            dense = float(module.macs(tuple(inputs.shape[2:])) * B)
            calls = [c.Operation(layer, "fsta", "fsta", DENSE, False, 0.0, dense, dr_macs=dense)]
        elif isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
            kind = SPIKES if zero_one(inputs) else DENSE
            folded = inputs.flatten(0, 1)
            if isinstance(module, nn.Linear):
                operation = c.matrix_product(layer, "linear", "linear", folded.reshape(-1, module.in_features),
                                             module.weight.T, kind, c.WEIGHTS, 1)
            else:
                spec = ConvSpec.of_module(module)
                operation = c.convolution(layer, "transposed conv" if spec.transposed else "conv", folded,
                                          module.weight, kind, c.WEIGHTS, spec, folded)
            calls = [operation]
        else:
            raise SpikescopeError(f"Energy.update costs convolutions, linear layers and modules with macs(); "
                                  f"{layer} is a {type(module).__name__}")
        self._add_row(layer, calls, B, inputs.device, alone=True)

    def add(self, rows: dict[str, list[c.Operation]], samples: float, device: torch.device | str = "cpu") -> None:
        """Add one forward pass over `samples` images: every row's operation calls (a module stepped T times in
        one pass calls its operations T times)."""
        self._accumulate(RUN, {"samples": torch.tensor(float(samples), dtype=torch.float64, device=device)})
        for row, calls in rows.items():
            self._add_row(row, calls, samples, device)

    def _add_row(self, row: str, calls: list[c.Operation], samples: float, device: torch.device | str,
                 alone: bool = False) -> None:
        """`alone`: a row costed by `update`, outside any pass: per image of its own samples."""
        totals = dict.fromkeys(COUNTS, 0.0)
        for op in calls:
            for name in ("acs", "dense", "events", "elements", "dr_acs", "dr_macs", "out_nonzero", "out_elements"):
                totals[name] += getattr(op, name)
            totals["macs"] += op.dense if op.input == DENSE else 0.0
        totals["samples"] = float(samples)
        first = calls[0]
        labels = (KINDS.index(first.kind), OPERATORS.index(first.operator),
                  max(INPUTS.index(op.input) for op in calls), int(any(op.both for op in calls)),
                  int(any(op.weighted for op in calls)), int(any(op.mixed for op in calls)), int(alone))
        self._accumulate(row, {"counts": torch.tensor(list(totals.values()), dtype=torch.float64, device=device),
                               "labels": torch.tensor(labels, dtype=torch.int64, device=device)})

    def merge(self, other: "Energy") -> "Energy":
        if getattr(other, "preset", self.preset) != self.preset:
            raise ValueError(f"cannot merge energy measured with preset {other.preset} into {self.preset}")
        return super().merge(other)

    def compute(self) -> MetricResult:
        pj = ENERGY_PRESETS_PJ[self.preset]
        run = self.states.get(RUN)
        rows = []
        for name, s in self.states.items():
            if name == RUN:
                continue
            v = dict(zip(COUNTS, s["counts"].tolist()))
            label = dict(zip(LABELS, s["labels"].tolist()))
            samples = float(run["samples"]) if run is not None and not label["alone"] else v["samples"]
            kind, source = KINDS[label["kind"]], INPUTS[label["input"]]
            if v["macs"] > 0:  # dense on some batch: the operation multiplies real values on every batch
                source, sops, approx, macs, fr_in = DENSE, 0.0, 0.0, v["dense"], float("nan")
                sops_dense_reading, macs_dense_reading = 0.0, macs
            else:
                fr_in = v["events"] / v["elements"] if v["elements"] else float("nan")
                sops, approx, macs = v["acs"], fr_in * v["dense"], 0.0
                sops_dense_reading, macs_dense_reading = v["dr_acs"], v["dr_macs"]
            both = bool(label["both"]) and source != DENSE
            per_image = {"sops": sops / samples, "sops_approx": approx / samples, "macs": macs / samples,
                         "sops_dense_reading": sops_dense_reading / samples,
                         "macs_dense_reading": macs_dense_reading / samples}
            rows.append({
                "layer": name, "module": c.row_module(name), "operator": OPERATORS[label["operator"]], "kind": kind,
                "input": source, "operands": operands(kind, source, both, bool(label["weighted"]),
                                                      bool(label["mixed"])),
                "part": part_of(name, kind, source),
                "input_firing_rate": fr_in, **{f"{k}_per_image": x for k, x in per_image.items()},
                "dense_ops_per_image": v["dense"] / samples,
                "energy_pj_per_image": pj["mac"] * per_image["macs"] + pj["ac"] * per_image["sops"],
                "energy_pj_approx_per_image": pj["mac"] * per_image["macs"] + pj["ac"] * per_image["sops_approx"],
                "energy_pj_dense_reading_per_image": (pj["mac"] * per_image["macs_dense_reading"]
                                                      + pj["ac"] * per_image["sops_dense_reading"]),
                "output_sparsity": 1 - v["out_nonzero"] / v["out_elements"] if both and v["out_elements"] else (
                    float("nan")),
            })
        definitions = {**DEFINITIONS, "preset": f"{self.preset}: E_MAC = {pj['mac']} pJ, E_AC = {pj['ac']} pJ "
                                                  "(Horowitz 2014, 45 nm)"}
        return MetricResult(pd.DataFrame(rows, columns=COLUMNS), None, {}, definitions)


def operands(kind: str, source: str, both: bool, weighted: bool, mixed: bool = False) -> str:
    """What met what: `spikes x weights`, `spikes x spikes`, `spikes x spike sums`, `spike sums x dense` (an
    activation), `spikes` alone (a reduction or pooling), or `analog`."""
    if source == DENSE:
        return DENSE
    if both:
        return f"{SPIKES} x {SUMS}" if mixed else f"{source} x {source}"
    if kind in ("reduction", "pooling"):
        return source
    return f"{source} x weights" if weighted or kind in ("conv", "linear", "transposed conv") else f"{source} x dense"


COLUMNS = ["layer", "module", "operator", "kind", "input", "operands", "part", "input_firing_rate", "sops_per_image",
           "sops_approx_per_image", "macs_per_image", "sops_dense_reading_per_image",
           "macs_dense_reading_per_image", "dense_ops_per_image", "energy_pj_per_image", "energy_pj_approx_per_image",
           "energy_pj_dense_reading_per_image", "output_sparsity"]
