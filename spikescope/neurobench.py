"""NeuroBench's metrics, by NeuroBench's names and definitions, measured in spikescope's own pass (docs/metrics.md,
"NeuroBench metrics").

NeuroBench 2.3 (`neurobench.benchmarks.Benchmark`) keeps every hooked tensor of a batch and reduces it after the
batch; here every count is reduced as it comes and kept as a sum, so results of batches and processes merge by
adding:

- `ActivationSparsity`: zero outputs / all outputs of the spiking layers the recorder records (`Activations`, fed
  their spikes).
- `SynapticOperations`: per call of every `Linear` and `Conv1d/2d/3d`, the (non-zero input, non-zero weight) pairs,
  as ACs when every input value is 0, 1 or -1, else as MACs; `Dense` counts every pair (`SynapticOperations`, fed
  by forward pre-hooks of its own, `ConnectionTap`).
- `MembraneUpdates`: per neuron and timestep, whether the state the neuron keeps changed, the first step always
  counting (`MembraneUpdates`, fed the potentials the recorder reads with `membrane=True`).
- `ConnectionSparsity`, `Footprint`, `ParameterCount`: read from the model when the run starts.
"""
from __future__ import annotations

from typing import Any, Callable

import pandas as pd
import torch
from torch import nn
from torch.utils._python_dispatch import _disable_current_modes

from .detect import neuron_framework
from .metrics.base import Metric, MetricResult
from .metrics.membrane import MembranePotential

CONNECTIONS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)  # NeuroBench's STATELESS_LAYERS
RECURRENT = (nn.RNNBase, nn.RNNCellBase)  # NeuroBench's recurrent connection layers

DEFINITIONS = {
    "ActivationSparsity": "NeuroBench: zero outputs / all outputs of the spiking layers, over layers, timesteps and "
                          "samples",
    "SynapticOperations": "NeuroBench, per sample: Effective_ACs / Effective_MACs = pairs (non-zero input, non-zero "
                          "weight) of every Linear and Conv call, ACs when all its inputs are 0, 1 or -1, else MACs; "
                          "Dense = all pairs (bias not counted)",
    "MembraneUpdates": "NeuroBench, per sample: neurons x timesteps whose kept membrane state changed in the step, "
                       "the first step counting every neuron (needs membrane=True)",
    "ConnectionSparsity": "NeuroBench: zero weights / all weights of the Linear, Conv and recurrent layers, rounded "
                          "to 4 decimals",
    "Footprint": "NeuroBench: bytes of the model's parameters and buffers when the run starts",
    "ParameterCount": "NeuroBench: number of parameters",
}


class Activations(Metric):
    """States per spiking layer: its non-zero outputs, all its outputs, and the samples it saw."""

    inputs = "spikes"
    reductions = {"nonzero": "sum", "total": "sum", "samples": "sum"}

    def update(self, layer: str, x: torch.Tensor) -> None:
        """`x`: `[T, B, ...]`, a layer's outputs over one sequence."""
        self._accumulate(layer, {"nonzero": torch.count_nonzero(x), "total": torch.tensor(x.numel()),
                                 "samples": torch.tensor(x.shape[1])})

    def compute(self) -> MetricResult:
        """NeuroBench's definitions (the numbers are read by `neurobench_metrics`, not added to the layer table)."""
        return MetricResult(layers=pd.DataFrame(), definitions=dict(DEFINITIONS))


class MembraneUpdates(Metric):
    """States per spiking layer: NeuroBench's membrane updates, neurons x timesteps whose kept state changed.

    `reset_after_read`: layers whose potential is read before the reset (spikescope's `LIF`, which keeps
    `u * (1 - spike)`); the other frameworks' readers give the state they keep (`membrane`)."""

    inputs = "membrane"
    reductions = {"updates": "sum"}

    def __init__(self, reset_after_read: set[str] | None = None) -> None:
        super().__init__()
        self.reset_after_read = set(reset_after_read or ())

    def update(self, layer: str, potential: torch.Tensor, spikes: torch.Tensor,
               threshold: float | torch.Tensor) -> None:
        """`potential`, `spikes`: `[T, B, ...]`. NeuroBench counts `pre - post != 0` at every step after the first,
        `pre` being the state the previous step left: here, consecutive kept states."""
        kept = potential * (1.0 - spikes) if layer in self.reset_after_read else potential
        changed = torch.count_nonzero(kept[1:] - kept[:-1])
        self._accumulate(layer, {"updates": changed + kept[0].numel()})

    def compute(self) -> MetricResult:
        return MetricResult(layers=pd.DataFrame())


class SynapticOperations(Metric):
    """States per connection layer (`CONNECTIONS`): effective operations on spikes (`acs`), on other inputs
    (`macs`), and all operations (`dense`), summed over calls; fed by `ConnectionTap`, never by a recorder."""

    reductions = {"macs": "sum", "acs": "sum", "dense": "sum"}

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self._modules = {name: m for name, m in model.named_modules() if isinstance(m, CONNECTIONS)}
        self._fan_outs: dict[tuple[str, tuple[int, ...], torch.device], tuple[torch.Tensor, int]] = {}

    def update(self, layer: str, x: torch.Tensor) -> None:
        """`x`: one call's input; the dimensions before a sample's (features, or channels and positions) are
        rows. Counted exactly in int64 (NeuroBench sums float32 counts, exact up to 2^24 operations per call)."""
        module = self._modules[layer]
        sample = x.shape[x.dim() - _sample_rank(module):]
        fan_out, dense = self._fan_out(layer, module, tuple(sample), x.device)
        rows = x.reshape(-1, *sample)
        spiking = signed_spikes(x)
        exact_sum = spiking and x.is_floating_point() and rows.shape[0] < 2 ** 24 and bool(rows.amin() >= 0)
        nonzero = rows.sum(0, dtype=torch.float32) if exact_sum else torch.count_nonzero(rows, dim=0)  # sum: faster
        effective = (nonzero.long() * fan_out).sum()
        zero = torch.zeros((), dtype=torch.int64, device=x.device)
        self._accumulate(layer, {"acs": effective if spiking else zero, "macs": zero if spiking else effective,
                                 "dense": torch.tensor(dense * (x.numel() // max(sample.numel(), 1)),
                                                       device=x.device)})

    def _fan_out(self, layer: str, module: nn.Module, sample: tuple[int, ...],
                 device: torch.device) -> tuple[torch.Tensor, int]:
        """Per input position of one sample, the pairs it enters with a non-zero weight (int64 `sample`), and the
        pairs of one sample with every weight and input counted; cached per input shape."""
        key = (layer, sample, device)
        if key not in self._fan_outs:
            self._fan_outs[key] = (fan_out(module, sample, binary=True).to(device),
                                   int(fan_out(module, sample, binary=False).sum()))
        return self._fan_outs[key]

    def compute(self) -> MetricResult:
        return MetricResult(layers=pd.DataFrame())


def signed_spikes(x: torch.Tensor) -> bool:
    """NeuroBench's test of a spiking input: every value is 0, 1 or -1. Within [-1, 1], `|x| - x*x` is zero exactly
    there and positive elsewhere (as in `metrics.base.zero_one`), so two reductions decide."""
    if x.dtype == torch.bool or x.numel() == 0:
        return True
    low, high = torch.aminmax(x)
    if not (bool(low >= -1) and bool(high <= 1)):  # NaN fails both
        return False
    return not x.is_floating_point() or not bool(torch.addcmul(x.abs(), x, x, value=-1).amax() > 0)


def _sample_rank(module: nn.Module) -> int:
    """Dimensions of one sample's input: features for a linear layer, channels and positions for a convolution."""
    return 1 if isinstance(module, nn.Linear) else len(module.kernel_size) + 1


def fan_out(module: nn.Module, sample: tuple[int, ...], binary: bool = True) -> torch.Tensor:
    """For every input position of one sample (shape `sample`), the (output, weight) pairs it enters: with a non-zero
    weight if `binary`, else with any weight. The gradient of the layer's output sum with 0/1 weights and no bias,
    so padding of every mode, stride, dilation and groups count as the layer computes them."""
    with torch.inference_mode(False), torch.enable_grad():
        weight = module.weight.detach()
        weight = (weight != 0).float() if binary else torch.ones_like(weight, dtype=torch.float32)
        if isinstance(module, nn.Linear):
            return weight.sum(0).round().long()
        x = torch.zeros((1, *sample), device=weight.device, requires_grad=True)  # sums of ones: exact in float32
        module._conv_forward(x, weight, None).sum().backward()
        return x.grad[0].round().long()


class ConnectionTap:
    """Forward pre-hooks on every connection layer `metric` counts that feed it each call's input (with no dispatch
    mode running, so that an energy counter does not cost the counting)."""

    def __init__(self, metric: SynapticOperations) -> None:
        self.metric = metric
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> "ConnectionTap":
        for name, module in self.metric._modules.items():
            self._handles.append(module.register_forward_pre_hook(
                lambda module, args, name=name: self._count(name, args)))
        return self

    def __exit__(self, *exc_info) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _count(self, name: str, args: tuple) -> None:
        if args and isinstance(args[0], torch.Tensor):
            with _disable_current_modes(), torch.no_grad():
                self.metric.update(name, args[0].detach())


def static_metrics(model: nn.Module) -> dict[str, Any]:
    """`ConnectionSparsity` (None without connection layers), `Footprint` and `ParameterCount` of `model` as it is
    now (snnTorch keeps its neurons' state `mem` as a buffer: after a forward pass, the footprint includes it)."""
    zeros = weights = 0
    for module in model.modules():
        if next(module.children(), None) is not None or module is model:
            continue  # NeuroBench reads the leaves below the model
        tensors = [module.weight] if isinstance(module, CONNECTIONS) else list(
            module.parameters(recurse=False)) if isinstance(module, RECURRENT) else []
        zeros += sum(int((t == 0).sum()) for t in tensors)
        weights += sum(t.numel() for t in tensors)
    return {"ConnectionSparsity": round(zeros / weights, 4) if weights else None,
            "Footprint": sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers())),
            "ParameterCount": sum(p.numel() for p in model.parameters())}


def neurobench_metrics(static: dict[str, Any], activations: Activations, operations: SynapticOperations,
                       membrane: MembraneUpdates | None) -> dict[str, Any]:
    """NeuroBench's results from the states: per-sample counts over the samples the spiking layers saw.
    `MembraneUpdates` is None unless every spiking layer's potential was read."""
    states = activations.states.values()
    samples = max((int(s["samples"]) for s in states), default=0)
    total = sum(int(s["total"]) for s in states)
    sparsity = (total - sum(int(s["nonzero"]) for s in states)) / total if total else 0.0
    ops = {key: sum(int(s[key]) for s in operations.states.values()) / samples if samples else 0.0
           for key in ("macs", "acs", "dense")}
    updates = None
    if membrane is not None and samples and set(activations.states) <= set(membrane.states):
        updates = sum(int(s["updates"]) for s in membrane.states.values()) / samples
    return {"ActivationSparsity": sparsity,
            "SynapticOperations": {"Effective_MACs": ops["macs"], "Effective_ACs": ops["acs"], "Dense": ops["dense"]},
            "MembraneUpdates": updates, **static}


class NeuroBench:
    """One analysis's NeuroBench measurement: the static metrics read now (the run starts), the counters the recorder
    feeds (`recorded`), and the connection hooks (`with`, beside the recorder)."""

    def __init__(self, model: nn.Module, membrane: bool) -> None:
        self.static = static_metrics(model)
        self.activations = Activations()
        self.operations = SynapticOperations(model)
        self.membrane = MembraneUpdates({n for n, m in model.named_modules() if neuron_framework(m) == "spikescope"}
                                        ) if membrane else None
        self.tap = ConnectionTap(self.operations)
        self.unsupported = [n for n, m in model.named_modules() if isinstance(m, RECURRENT)]

    def recorded(self, metrics: list[Metric]) -> list[Metric]:
        """`metrics` with the counters the recorder feeds; with `membrane`, also the membrane histogram the recorder
        adds only when no metric reads potentials (`MembraneUpdates` does)."""
        histogram = [MembranePotential()] if self.membrane and not any(m.inputs == "membrane" for m in metrics) else []
        return [*metrics, self.activations, *histogram, *([self.membrane] if self.membrane else [])]

    def __enter__(self) -> "NeuroBench":
        self.tap.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        self.tap.__exit__(*exc_info)

    def result(self, add_warning: Callable[[str], Any]) -> dict[str, Any]:
        """The metrics over every process (the recorder reduces its own counters); `add_warning` names what is not
        counted."""
        self.operations.all_reduce()
        result = neurobench_metrics(self.static, self.activations, self.operations, self.membrane)
        if self.unsupported:
            result["SynapticOperations"] = None
            add_warning(f"NeuroBench's SynapticOperations is not counted for recurrent layers "
                        f"({', '.join(self.unsupported)}): it is left empty")
        return result
