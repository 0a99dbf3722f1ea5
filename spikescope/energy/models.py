"""Energy models: what one image's costed operations spend, in pJ (docs/metrics.md, "Energy models").

`ComputeOnly` prices the operations alone (Horowitz 2014 presets `fp32`, `fp16`, `int8`), the convention of
most SNN papers. `Lemaire2022` (`lemaire2022`) adds what Lemaire et al. (ICONIP 2022) show dominates on
hardware: addressing the targets of events, and reading and writing inputs and outputs, parameters and
membrane potentials, each priced by the size of the memory it lives in. Every model prices a network's rows
(`Site`), its spiking layers' own updates (`Neurons`) and its ANN twin: the same architecture run once per
image with every activation a real number and every product dense.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

from ..errors import SpikescopeError
from . import DENSE

TERMS = ("ops", "addressing", "inout", "params", "potentials")  # how a total splits; memory = the last three
MEMORY = ("inout", "params", "potentials")
CONVOLUTIONS = ("conv", "transposed conv", "fsta")  # every multiply reads an input value (no reuse across taps)
ACCUMULATIONS = ("add", "reduction", "pooling")  # no second operand: events added into outputs
KiB = 1024.0


@dataclass(frozen=True)
class Site:
    """One row's counts per image (`metrics.energy` sums them over calls and divides by images). `acs` are the
    convention's accumulates, `macs` the MACs of a dense-fed row, `dense` its MACs run densely (all timesteps);
    `reads` the events read, `inputs`/`outputs`/`other` the elements of its activation operand, output and second
    operand, `bias` the outputs a bias is added to, `taps` the weights a convolution's outputs address
    (`C_out x k^2` per sample and timestep), `parameters` the weights and bias it reads from (elements),
    `paper_fanout`/`paper_synops` the paper's fan-outs of its events (every kernel tap; `ceil(k/s)^2` taps).
    `runs` is how often the row runs per image (T, or 1 for a row run once per image, before time begins), `steps`
    the timesteps of an image its sizes hold (one when a model's own time loop names each step's operation apart),
    `seen` the share of the run's images it ran on: its memories hold a `steps`-th of its elements per image seen."""

    kind: str
    source: str
    weighted: bool
    runs: int
    steps: int
    acs: float = 0.0
    macs: float = 0.0
    dense: float = 0.0
    reads: float = 0.0
    inputs: float = 0.0
    outputs: float = 0.0
    other: float = 0.0
    bias: float = 0.0
    taps: float = 0.0
    parameters: float = 0.0
    paper_fanout: float = 0.0
    paper_synops: float = 0.0
    seen: float = 1.0

    def held(self, elements: float) -> float:
        """The capacity of a memory holding one timestep of `elements` (per image of the run)."""
        return elements / (self.steps * self.seen)


@dataclass(frozen=True)
class Neurons:
    """A spiking layer per image of the run: `updates` = neurons x timesteps, `spikes` its output events (a count of
    k is k events, as the layers it feeds read it), `leak` whether each update multiplies the potential by a decay,
    `seen` the share of the run's images it ran on."""

    updates: float
    spikes: float
    timesteps: int
    leak: bool
    seen: float = 1.0


def zero() -> dict[str, float]:
    return dict.fromkeys(TERMS, 0.0)


@dataclass(frozen=True)
class ComputeOnly:
    """E = E_MAC x MACs + E_AC x accumulates: operations only, no memory access (Horowitz, ISSCC 2014, 45 nm: a MAC
    is a multiply and an add, an accumulate an add)."""

    name: str
    e_mac: float
    e_add: float
    memory_aware = False

    def describe(self) -> str:
        return (f"{self.name}: compute only, E_MAC = {self.e_mac:g} pJ, E_AC = {self.e_add:g} pJ (Horowitz 2014, "
                "45 nm); memory access not included")

    def site(self, s: Site, spiking: bool) -> dict[str, float]:
        return {**zero(), "ops": self.e_mac * s.macs + self.e_add * s.acs}

    def neurons(self, n: Neurons) -> dict[str, float]:
        return zero()

    def ann(self, s: Site) -> dict[str, float]:
        """The twin's row: a product's dense MACs once per image; an add, reduction or pooling its adds."""
        once = s.dense / s.runs
        return {**zero(), "ops": once * (self.e_add if s.kind in ACCUMULATIONS else self.e_mac)}


@dataclass(frozen=True)
class Lemaire2022:
    """Lemaire et al., "An analytical estimation of spiking neural networks energy efficiency", ICONIP 2022: 32-bit
    integer operations (add 0.1 pJ, multiply 3.1 pJ) and 32-bit SRAM accesses priced by the memory's size (10, 20
    and 100 pJ per access at 8 KiB, 32 KiB and 1 MiB, linear in between). `fanout="exact"` takes each event's
    targets from spikescope's exact count (borders and padding reach fewer); `"paper"` uses the paper's every
    kernel tap (and `ceil(k/s)^2` additions), as SpikingJelly's estimator does. `fifo` is the words each spiking
    layer's event queue holds (the paper's 1000)."""

    fanout: str = "exact"
    e_add: float = 0.1
    e_mul: float = 3.1
    word: int = 4
    fifo: int = 1000
    curve: tuple[tuple[float, float], ...] = ((0.0, 0.0), (8 * KiB, 10 / 4), (32 * KiB, 20 / 4), (KiB * KiB, 100 / 4))
    memory_aware = True

    def __post_init__(self) -> None:
        if self.fanout not in ("exact", "paper"):
            raise SpikescopeError(f"fanout must be 'exact' or 'paper', got {self.fanout!r}")

    @property
    def name(self) -> str:
        return "lemaire2022" if self.fanout == "exact" else "lemaire2022-paper"

    @property
    def e_mac(self) -> float:
        return self.e_mul + self.e_add

    def describe(self) -> str:
        return (f"{self.name}: operations (add {self.e_add:g} pJ, multiply {self.e_mul:g} pJ, 32-bit integer), "
                f"addressing and memory (32-bit SRAM, {self.curve[1][1] * 4:g}/{self.curve[2][1] * 4:g}/"
                f"{self.curve[3][1] * 4:g} pJ per access at 8 KiB/32 KiB/1 MiB), {self.fanout} fan-outs (Lemaire et "
                "al. 2022)")

    def per_byte(self, capacity: float) -> float:
        """pJ per byte read or written in a memory of `capacity` bytes (linear between the curve's points)."""
        points = self.curve
        capacity = min(max(capacity, points[0][0]), points[-1][0])
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            if capacity <= x1:
                return y0 + (y1 - y0) * (capacity - x0) / (x1 - x0)
        return points[-1][1]

    def access(self, words: float, capacity_words: float) -> float:
        """pJ of `words` 32-bit accesses to a memory holding `capacity_words`."""
        return words * self.word * self.per_byte(capacity_words * self.word)

    def site(self, s: Site, spiking: bool) -> dict[str, float]:
        """A row of the SNN. Dense-fed: the paper's formal layer (MACs; inputs, outputs and taps addressed; an
        input and a weight read per MAC, a convolution's inputs re-read per tap). Event-fed: one add per target,
        its target addressed (a convolution first locates each event's window: two MACs), the event read from its
        queue, a weight (or the other operand's value) read per target, and the target's potential read and
        written."""
        e = zero()
        if s.source == DENSE:
            e["ops"] = s.macs * self.e_mac + s.bias * self.e_add
            e["addressing"] = (s.inputs + s.outputs + s.taps) * self.e_add
            e["inout"] = self.access(s.macs if s.kind in CONVOLUTIONS else s.inputs, s.held(s.inputs))
            if s.weighted or s.parameters:
                e["params"] = self.access(s.macs + s.bias, s.parameters)
            else:
                e["inout"] += self.access(s.macs, s.held(s.other))
            if not spiking:
                e["inout"] += self.access(s.outputs, s.held(s.outputs))
            return e
        paper = self.fanout == "paper"
        targets = s.paper_fanout if paper else s.acs
        e["ops"] = (s.paper_synops if paper else s.acs) * self.e_add + s.bias * self.e_add
        e["addressing"] = targets * self.e_add + (2 * s.reads * self.e_mac if s.kind in CONVOLUTIONS else 0.0)
        e["inout"] = self.access(s.reads, self.fifo)
        if s.weighted or s.parameters:
            e["params"] = self.access(targets + s.bias, s.parameters)
        elif s.kind not in ACCUMULATIONS:
            e["inout"] += self.access(targets, s.held(s.other))
        e["potentials"] = 2 * self.access(targets, s.held(s.outputs))
        return e

    def neurons(self, n: Neurons) -> dict[str, float]:
        """Each update reads and writes its potential (a leak multiplies it), each spike costs an add (the reset)
        and is written to the layer's event queue."""
        return {**zero(), "ops": n.spikes * self.e_add + (n.updates * self.e_mac if n.leak else 0.0),
                "inout": self.access(n.spikes, self.fifo),
                "potentials": 2 * self.access(n.updates, n.updates / (n.timesteps * n.seen))}

    def ann(self, s: Site) -> dict[str, float]:
        """The row in the formal network, once per image: a product's MACs, its inputs, outputs (and a convolution's
        taps) addressed, an input and a weight read per MAC, each output written; an add, reduction or pooling reads
        its inputs, adds, and writes its outputs."""
        step = s.runs  # the twin runs the row once per image, in memories of one step
        inputs, outputs, once = s.inputs / step, s.outputs / step, s.dense / step
        e = zero()
        e["addressing"] = (inputs + outputs + (s.taps / step if s.kind not in ACCUMULATIONS else 0.0)) * self.e_add
        e["inout"] = self.access(outputs, s.held(s.outputs))
        if s.kind in ACCUMULATIONS:
            e["ops"] = once * self.e_add
            e["inout"] += self.access(inputs, s.held(s.inputs))
            return e
        e["ops"] = once * self.e_mac + s.bias / step * self.e_add
        e["inout"] += self.access(once if s.kind in CONVOLUTIONS else inputs, s.held(s.inputs))
        if s.weighted or s.parameters:
            e["params"] = self.access(once + s.bias / step, s.parameters)
        else:
            e["inout"] += self.access(once, s.held(s.other))
        return e


ENERGY_MODELS = {
    "fp32": ComputeOnly("fp32", 4.6, 0.9),  # multiply 3.7 pJ + add 0.9 pJ
    "fp16": ComputeOnly("fp16", 1.5, 0.4),  # 1.1 + 0.4
    "int8": ComputeOnly("int8", 0.23, 0.03),  # 0.2 + 0.03
    "lemaire2022": Lemaire2022(),
    "lemaire2022-paper": Lemaire2022(fanout="paper"),
}
EnergyModel = ComputeOnly | Lemaire2022


def energy_model(model: str | EnergyModel) -> EnergyModel:
    """The model named `model` (or `model` itself), else a one-line error listing the names."""
    if isinstance(model, (ComputeOnly, Lemaire2022)):
        return model
    if model not in ENERGY_MODELS:
        raise SpikescopeError(f"unknown energy model {model!r}; choose one of {', '.join(ENERGY_MODELS)}")
    return ENERGY_MODELS[model]


NON_LEAKY = re.compile(r"^(MultiStep)?(IF|IAF|IntegrateAndFire)", re.IGNORECASE)


def leaks(neuron: nn.Module) -> bool:
    """Whether a spiking layer's update multiplies its potential by a decay: integrate-and-fire classes (`IFNode`,
    `IAF`, ...) and decays of exactly 1 (`beta = 1`) do not; every other neuron is taken to leak."""
    if NON_LEAKY.match(type(neuron).__name__):
        return False
    beta = getattr(neuron, "beta", None)
    try:
        return beta is None or float(beta) != 1.0
    except (TypeError, ValueError, RuntimeError):  # a decay per neuron: it leaks
        return True
