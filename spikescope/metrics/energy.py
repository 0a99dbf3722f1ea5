"""Synaptic operations and energy (docs/metrics.md, "Synaptic operations and energy", "Energy models").

One row per costed operation site (`energy.operators` counts them; a synaptic module can also be fed
directly with `update`). An event operand (spikes, spike sums) costs one accumulate (AC) per event per
target it reaches; operations without one cost dense multiply-accumulates (MACs). Beside it: the
paper-style fr x FLOPs and the dense reading of spike sums. The energy model (`energy.models`) prices the
rows: compute only (E_MAC x MACs + E_AC x SOPs) or with memory (`lemaire2022`, which also prices each spiking
layer's own updates, fed by `neurons`), each beside the network's ANN twin.
"""
from __future__ import annotations

import pandas as pd
import torch

from torch import nn

from ..energy import DENSE, SPIKES, SUMS
from ..energy import conventions as c
from ..energy.geometry import ConvSpec
from ..energy.models import TERMS, EnergyModel, Neurons, Site, energy_model
from ..energy.operators import whole_operation
from ..energy.parts import part_of
from ..errors import SpikescopeError
from .base import Metric, MetricResult, zero_one

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
    "energy": "the energy model's total per image (docs/metrics.md, 'Energy models'): compute only, E = E_MAC x "
              "MACs + E_AC x SOPs(exact), or with addressing and memory (lemaire2022); beside it the paper-style "
              "E_MAC x MACs + E_AC x SOPs(approx.) and the dense reading of spike sums (operations only)",
    "terms": "the total split into operations, addressing, and memory reads and writes of inputs and outputs, "
             "parameters and potentials (compute-only models have operations only)",
    "ANN twin": "the same architecture run once per image as a dense network (every activation a real number, "
                "every product dense MACs) under the same energy model; the SNN/ANN ratio divides the totals",
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
SIZES = ("reads", "inputs", "outputs", "other", "bias", "taps", "paper_fanout", "paper_synops")  # `Site`'s sizes
COUNTS = ("acs", "dense", "macs", "events", "elements", "dr_acs", "dr_macs", "out_nonzero", "out_elements",
          "samples", *SIZES)  # per row, summed
LABELS = ("kind", "operator", "input", "both", "weighted", "mixed", "alone", "parameters", "steps")  # the largest
NEURON_COUNTS = ("updates", "spikes", "samples")  # per spiking layer, summed
RUN = "(images)"  # the state of the images every pass covered: each row's count is per image of the whole run


class Energy(Metric):
    """States per costed row (an operation site, `energy.operators`, or a synaptic module fed to `update`): `counts`
    (`COUNTS`: accumulates, dense MACs of every call and of dense calls, events and elements of the event operand,
    the dense reading's accumulates and MACs, output non-zeros of coincidence products, samples) and `labels`
    (`LABELS`: indices into `KINDS`, `OPERATORS` and `INPUTS`, the worst input seen, and flags). Under `RUN`, the
    images of every pass: a row seen on some batches only is still per image of the whole run.

    Beside them, per neuron of the model, its updates and spikes (`neurons`, summed) and whether it leaks
    (`leak`), which memory-aware models price, and under `RUN` the run's timesteps and whether the model steps
    time in its own forward (`stepped`). `model` names the energy model (`energy.models.ENERGY_MODELS`) or is one.
    """

    reductions = {"counts": "sum", "labels": "max", "samples": "sum", "timesteps": "max", "stepped": "max",
                  "neurons": "sum", "leak": "max"}
    inputs = "synapses"

    def __init__(self, model: str | EnergyModel = "fp32") -> None:
        super().__init__()
        self.model = energy_model(model)

    def update(self, layer: str, inputs: torch.Tensor, module: nn.Module) -> None:
        """Cost one synaptic module (a convolution, plain or transposed, a linear layer, or a module costed whole by its
        own `macs(sample_shape)`, such as FSTA) fed `inputs: [T, B, ...]`, without a recorder, by the conventions the
        recorder's operator counter applies: events of spikes, else dense MACs."""
        T, B = inputs.shape[:2]
        if hasattr(module, "macs"):
            calls = [whole_operation(layer, module, inputs)]
        elif isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
            kind = SPIKES if zero_one(inputs) else DENSE
            folded = inputs.flatten(0, 1)
            if isinstance(module, nn.Linear):
                operation = c.matrix_product(layer, "linear", "linear", folded.reshape(-1, module.in_features),
                                             module.weight.T, kind, c.WEIGHTS, 1)
            else:
                spec = ConvSpec.of_module(module)
                with torch.no_grad():  # the output's shape, from one sample
                    out = torch.empty(folded.shape[0], *module(folded[:1]).shape[1:], device="meta")
                operation = c.convolution(layer, "transposed conv" if spec.transposed else "conv", folded,
                                          module.weight, kind, c.WEIGHTS, spec, out)
            operation.weighted = True
            if module.bias is not None:
                operation.bias, operation.bias_elements = operation.outputs, float(module.bias.numel())
            calls = [operation]
        else:
            raise SpikescopeError(f"Energy.update costs convolutions, linear layers and modules with macs(); "
                                  f"{layer} is a {type(module).__name__}")
        self._add_row(layer, calls, B, inputs.device, alone=True, timesteps=T)

    def add(self, rows: dict[str, list[c.Operation]], samples: float, timesteps: int = 1,
            device: torch.device | str = "cpu", stepped: bool = False,
            neurons: dict[str, tuple[float, float, bool]] | None = None) -> None:
        """Add one forward pass over `samples` images of `timesteps` steps: every row's operation calls (a module
        stepped T times in one pass calls its operations T times), and every neuron's `(updates, spikes, leak)`
        (`neurons`: outputs and output events, summed over the pass's calls). `stepped`: the model steps time in
        its own forward (`steps_in`)."""
        self._accumulate(RUN, {"samples": torch.tensor(float(samples), dtype=torch.float64, device=device),
                               "timesteps": torch.tensor(int(timesteps), dtype=torch.int64, device=device),
                               "stepped": torch.tensor(int(stepped), dtype=torch.int64, device=device)})
        for row, calls in rows.items():
            self._add_row(row, calls, samples, device, steps=steps_in(calls, samples, timesteps, stepped))
        for layer, (updates, spikes, leak) in (neurons or {}).items():
            self._accumulate(layer, {
                "neurons": torch.tensor([updates, spikes, samples], dtype=torch.float64, device=device),
                "leak": torch.tensor(int(leak), dtype=torch.int64, device=device)})

    def _add_row(self, row: str, calls: list[c.Operation], samples: float, device: torch.device | str,
                 alone: bool = False, timesteps: int = 0, steps: int = 0) -> None:
        """`alone`: a row costed by `update`, outside any pass: per image of its own samples (and `timesteps`).
        `steps`: the timesteps of each image its calls of one pass hold."""
        totals = dict.fromkeys(COUNTS, 0.0)
        for op in calls:
            for name in ("acs", "dense", "events", "elements", "dr_acs", "dr_macs", "out_nonzero", "out_elements",
                         *SIZES):
                if not (name == "other" and op.weighted):  # a weight is held once (`parameters`), not per call
                    totals[name] += getattr(op, name)
            totals["macs"] += op.dense if op.input == DENSE else 0.0
        totals["samples"] = float(samples)
        first = calls[0]
        parameters = max(((op.other if op.weighted else op.weight_elements) + op.bias_elements for op in calls),
                         default=0.0)
        labels = (KINDS.index(first.kind), OPERATORS.index(first.operator),
                  max(INPUTS.index(op.input) for op in calls), int(any(op.both for op in calls)),
                  int(any(op.weighted for op in calls)), int(any(op.mixed for op in calls)),
                  timesteps if alone else 0, int(parameters), timesteps if alone else steps)
        self._accumulate(row, {"counts": torch.tensor(list(totals.values()), dtype=torch.float64, device=device),
                               "labels": torch.tensor(labels, dtype=torch.int64, device=device)})

    def merge(self, other: "Energy") -> "Energy":
        if getattr(other, "model", self.model) != self.model:
            raise ValueError(f"cannot merge energy measured with model {other.model.name} into {self.model.name}")
        return super().merge(other)

    def compute(self) -> MetricResult:
        run = self.states.get(RUN)
        spiking = any("neurons" in states for states in self.states.values())
        rows = [self._row(name, states, run, spiking) for name, states in self.states.items()
                if "counts" in states]
        if self.model.memory_aware:
            rows += [self._neuron_row(name, states, run) for name, states in self.states.items()
                     if "neurons" in states]
        definitions = {**DEFINITIONS, "model": self.model.describe()}
        return MetricResult(pd.DataFrame(rows, columns=COLUMNS), None, {}, definitions)

    def _row(self, name: str, s: dict[str, torch.Tensor], run: dict | None, spiking: bool) -> dict:
        """One costed operation's row: its counts per image, and its energy and its ANN twin's under the model."""
        model = self.model
        v = dict(zip(COUNTS, s["counts"].tolist()))
        label = dict(zip(LABELS, s["labels"].tolist()))
        samples = float(run["samples"]) if run is not None and not label["alone"] else v["samples"]
        steps = label["steps"] or 1
        if label["alone"]:
            runs = label["alone"]
        else:  # a row of one timestep in a model that does not step time itself runs once per image
            timesteps = int(run["timesteps"]) if run is not None else 1
            runs = 1 if steps == 1 and not (run is not None and int(run["stepped"])) else timesteps
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
        site = Site(kind, source, bool(label["weighted"]), runs, steps, acs=per_image["sops"],
                    macs=per_image["macs"], dense=v["dense"] / samples, parameters=float(label["parameters"]),
                    seen=v["samples"] / samples, **{size: v[size] / samples for size in SIZES})
        terms, twin = model.site(site, spiking), model.ann(site)
        return {
            "layer": name, "module": c.row_module(name), "operator": OPERATORS[label["operator"]], "kind": kind,
            "input": source, "operands": operands(kind, source, both, bool(label["weighted"] or label["parameters"]),
                                                bool(label["mixed"])),
            "part": part_of(name, kind, source),
            "input_firing_rate": fr_in, **{f"{k}_per_image": x for k, x in per_image.items()},
            "dense_ops_per_image": v["dense"] / samples,
            "energy_pj_per_image": sum(terms.values()),
            "energy_pj_approx_per_image": model.e_mac * per_image["macs"] + model.e_add * per_image["sops_approx"],
            "energy_pj_dense_reading_per_image": (model.e_mac * per_image["macs_dense_reading"]
                                                  + model.e_add * per_image["sops_dense_reading"]),
            **{f"energy_{term}_pj_per_image": value for term, value in terms.items()},
            "ann_macs_per_image": 0.0 if kind in ("add", "reduction", "pooling") else site.dense / site.runs,
            "ann_energy_pj_per_image": sum(twin.values()),
            **{f"ann_energy_{term}_pj_per_image": value for term, value in twin.items()},
            "output_sparsity": 1 - v["out_nonzero"] / v["out_elements"] if both and v["out_elements"] else (
                float("nan")),
        }

    def _neuron_row(self, name: str, s: dict[str, torch.Tensor], run: dict) -> dict:
        """A neuron's own updates under a memory-aware model (its twin, a ReLU, costs nothing), per image of the run."""
        updates, spikes, seen = s["neurons"].tolist()
        samples = float(run["samples"])
        terms = self.model.neurons(Neurons(updates / samples, spikes / samples, int(run["timesteps"]),
                                           bool(s["leak"]), seen / samples))
        row = {column: 0.0 for column in COLUMNS}
        row.update({"layer": name, "module": name, "operator": "neuron", "kind": "neuron", "input": SPIKES,
                    "operands": "potentials", "part": part_of(name, "neuron", SPIKES),
                    "input_firing_rate": float("nan"), "output_sparsity": float("nan"),
                    "energy_pj_per_image": sum(terms.values()),
                    **{f"energy_{term}_pj_per_image": value for term, value in terms.items()}})
        return row


def steps_in(calls: list[c.Operation], samples: float, timesteps: int, stepped: bool = False) -> int:
    """The timesteps of each image that a row's calls in one pass hold. A call whose output starts with a
    sequence's `[T, B]` or `[B, T]` holds them all (any layout may view its tensors either way inside a layer).
    Otherwise, in a model stepping time in its own forward (`stepped`), a call holds one (a timestep, or the
    image before time begins); in any other model, a call whose output starts with the pass's batch holds one
    (it runs once per image, before time begins), and any other call all (time folded into the batch, or a
    timestep per pass)."""
    sequences = {(timesteps, samples), (samples, timesteps)}

    def held(op: c.Operation) -> int:
        if op.leading[:2] in sequences:
            return timesteps
        return 1 if stepped or op.leading[:1] == (samples,) else timesteps
    return min(timesteps, sum(held(op) for op in calls))


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
           "energy_pj_dense_reading_per_image", *(f"energy_{term}_pj_per_image" for term in TERMS),
           "ann_macs_per_image", "ann_energy_pj_per_image", *(f"ann_energy_{term}_pj_per_image" for term in TERMS),
           "output_sparsity"]
