"""Synaptic operations and compute energy (docs/metrics.md, "Synaptic operations and energy").

A synaptic layer fed spikes performs one accumulate (AC) per input spike per target it
reaches: exact SOPs = sum over input spikes of that spike's fan-out (a spike count of n, from a
multi-spike neuron, counts n times). A layer fed real values (the encoding layer, anything after
average pooling, FSTA's own convolutions) performs dense multiply-accumulates (MACs).
Energy = E_MAC * MACs + E_AC * SOPs: compute only, no memory access.
"""
from __future__ import annotations

import pandas as pd
import torch

from ..errors import SpikescopeError
from .base import Metric, MetricResult, spike_counts, zero_one

# Horowitz, ISSCC 2014, 45 nm: FP32 mult 3.7 pJ + add 0.9 pJ; FP16 1.1 + 0.4; INT8 0.2 + 0.03.
ENERGY_PRESETS_PJ = {
    "fp32": {"mac": 4.6, "ac": 0.9},
    "fp16": {"mac": 1.5, "ac": 0.4},
    "int8": {"mac": 0.23, "ac": 0.03},
}

DEFINITIONS = {
    "SOPs (exact)": "sum over input spikes of each spike's fan-out (the number of weights it is multiplied by; "
                    "zero-padding taps never receive a spike); a spike count n (multi-spike neurons) counts n times",
    "SOPs (approx.)": "paper-style fr_in x T x FLOPs, fr_in = input firing rate, FLOPs = MACs of one dense "
                      "timestep counted as C_out x H_out x W_out x C_in/groups x k^2 (padding taps included); for a "
                      "transposed convolution C_in x H_in x W_in x C_out/groups x k^2",
    "MACs": "dense multiply-accumulates (FLOPs as above, times T) of layers whose input is not binary: the "
            "encoding layer, layers after average pooling, FSTA's convolutions and gates; a layer counts as "
            "analog if any analysed batch fed it non-binary values",
    "energy": "E = E_MAC x MACs + E_AC x SOPs(exact), per image; compute only (memory access not included)",
    "dense ops": "multiply-accumulates of a dense pass over all T timesteps (FLOPs x T): what the layer would cost "
                 "as a non-spiking network",
}
KINDS = ("conv", "linear", "fsta", "transposed conv")


def check_preset(preset: str) -> str:
    """`preset` if it names an energy preset, else a one-line error."""
    if preset not in ENERGY_PRESETS_PJ:
        raise SpikescopeError(f"unknown energy preset {preset!r}; choose one of {', '.join(ENERGY_PRESETS_PJ)}")
    return preset


class SynapseCost:
    """Operation counts of one synaptic module: `fan_out` per input element and dense MACs per sample.

    `accepts_counts` is set when the model's neurons emit spike counts: inputs of non-negative whole
    numbers are then spikes too, each count costing that many accumulates.
    """

    kind: str = "conv"  # one of KINDS
    accepts_spikes: bool = True
    accepts_counts: bool = False

    def fan_out(self, sample_shape: torch.Size, device: torch.device) -> torch.Tensor:
        raise NotImplementedError

    def dense_ops(self, T: int, sample_shape: torch.Size) -> int:
        """MACs one sample costs over all T timesteps when run densely (the FLOPs convention of papers)."""
        raise NotImplementedError


class Energy(Metric):
    """States per synaptic layer: exact SOPs, dense MACs of analog and of binary inputs, input spikes and
    elements of binary inputs, samples and the layer kind (an index into `KINDS`).

    `preset` picks the energy per operation (`ENERGY_PRESETS_PJ`).
    """

    reductions = {"sops": "sum", "macs": "sum", "dense_binary": "sum", "input_spikes": "sum",
                  "input_elements": "sum", "samples": "sum", "kind": "max"}
    inputs = "synapses"

    def __init__(self, preset: str = "fp32") -> None:
        super().__init__()
        self.preset = check_preset(preset)

    def update(self, layer: str, inputs: torch.Tensor, cost: SynapseCost, known_spikes: bool = False) -> None:
        """`inputs: [T, B, ...]`, the synaptic layer's input; `cost` describes the layer. `known_spikes`: the
        inputs are a spiking layer's output, unchanged (`SpikeRecorder` knows), so they need no check."""
        T, B = inputs.shape[:2]
        sample_shape = inputs.shape[2:]
        dense = float(cost.dense_ops(T, sample_shape) * B)
        binary = cost.accepts_spikes and (known_spikes or zero_one(inputs)
                                          or (cost.accepts_counts and spike_counts(inputs)))
        zero = torch.zeros((), dtype=torch.float64, device=inputs.device)
        if binary:
            counts = inputs.float().sum(dim=(0, 1)).double()  # float32 is exact below 2**24 spikes per element
            sops = (counts * cost.fan_out(sample_shape, inputs.device)).sum()
            spikes, elements, macs, dense_binary = counts.sum(), inputs.numel(), zero, dense
        else:
            sops, spikes, elements, macs, dense_binary = zero, zero, 0, zero + dense, 0.0
        self._accumulate(layer, {
            "sops": sops, "macs": macs, "dense_binary": zero + dense_binary, "input_spikes": spikes,
            "input_elements": zero + elements, "samples": zero + B,
            "kind": torch.tensor(KINDS.index(cost.kind), dtype=torch.int64, device=inputs.device),
        })

    def merge(self, other: "Energy") -> "Energy":
        if getattr(other, "preset", self.preset) != self.preset:
            raise ValueError(f"cannot merge energy measured with preset {other.preset} into {self.preset}")
        return super().merge(other)

    def compute(self) -> MetricResult:
        pj = ENERGY_PRESETS_PJ[self.preset]
        rows = []
        for layer, s in self.states.items():
            v = {name: float(value) for name, value in s.items()}
            samples = v["samples"]
            if v["macs"] > 0:  # analog on some batch: the layer multiplies real values on every batch
                sops, approx, macs, fr_in = 0.0, 0.0, v["macs"] + v["dense_binary"], float("nan")
            else:
                fr_in = v["input_spikes"] / v["input_elements"] if v["input_elements"] else float("nan")
                sops, approx, macs = v["sops"], fr_in * v["dense_binary"], 0.0
            per_image = {"sops": sops / samples, "sops_approx": approx / samples, "macs": macs / samples}
            rows.append({
                "layer": layer, "kind": KINDS[int(v["kind"])], "input": "analog" if macs else "spikes",
                "input_firing_rate": fr_in, **{f"{k}_per_image": x for k, x in per_image.items()},
                "dense_ops_per_image": (v["macs"] + v["dense_binary"]) / samples,
                "energy_pj_per_image": pj["mac"] * per_image["macs"] + pj["ac"] * per_image["sops"],
            })
        definitions = {**DEFINITIONS, "preset": f"{self.preset}: E_MAC = {pj['mac']} pJ, E_AC = {pj['ac']} pJ "
                                                  "(Horowitz 2014, 45 nm)"}
        return MetricResult(pd.DataFrame(rows), None, {}, definitions)
