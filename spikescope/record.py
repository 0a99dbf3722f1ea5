"""SpikeRecorder: forward hooks that hand every spiking layer's output, time-first, to the metrics.

    with SpikeRecorder(model, layers="all", T=2) as rec:
        for images, _ in loader:
            model(images)
    results = rec.compute()

Layers are found on entry by class (spikescope, SpikingJelly, snnTorch and sinabs neurons) and
on the first forward pass by the binary-output probe; `rec.layers` says what was found and how,
which time layout each layer's tensors had, and whether it emits spikes, spike counts or (a
layer the user named that is not a neuron) analog values. Hooks only detach, reshape and hand
over; the metrics reduce on the fly, so memory does not grow with the number of batches.
"""
from __future__ import annotations

import re
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Sequence

import torch
from torch import nn

from .detect import (FOUND_BY_NAME, FOUND_BY_PROBE, OUTPUT_ANALOG, OUTPUT_COUNTS, OUTPUT_SPIKES, ROLE_PASS_THROUGH,
                     ROLE_SPIKING, declared_geometry, declared_layouts, declared_output, first_tensor,
                     framework_fold, innermost, neurons_by_class, output_kind, pass_through, probe_candidates,
                     sample_rank, sums_spikes)
from .errors import SpikescopeError, describe, warn
from .fsta import FSTA
from .membrane import potential_problem, potential_reader, potentials_exposed, threshold_of
from .metrics.base import Metric, MetricResult, zero_one
from .metrics.cka import TimestepCKA
from .metrics.capture import SpikeCapture
from .metrics.energy import Energy
from .metrics.firing import FiringRate
from .metrics.membrane import MembranePotential
from .metrics.spectrum import Spectrum
from .metrics.temporal import TemporalSimilarity
from .energy import MODEL_ROW
from .energy.operators import OperatorCounter
from .tokens import Geometry, as_features, declared_grid, decide_geometries, model_evidence
from .timelayout import (FOLD_ORDERS, WHOLE_SEQUENCE, FirstPass, Layout, batch_size_of, candidate_layouts,
                         decide_layouts, to_time_first)

OUTPUT_ORDER = (OUTPUT_SPIKES, OUTPUT_COUNTS, OUTPUT_ANALOG)  # a layer's kind is the worst any batch showed


NORMALISATIONS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)


def carries_weights(module: nn.Module) -> bool:
    """True for a module with weight matrices of its own (a synaptic layer, not a neuron)."""
    return any(p.dim() >= 2 for p in module.parameters(recurse=False))


def never_a_neuron(module: nn.Module) -> bool:
    """Synaptic and normalisation layers: their all-zero output on a silent input is no sign of a silent neuron."""
    return carries_weights(module) or isinstance(module, NORMALISATIONS)


def default_metrics(energy: str = "fp32") -> list[Metric]:
    """Firing rate, DCT spectrum, temporal similarity (cosines and linear CKA) and energy (with the `energy`
    preset)."""
    return [FiringRate(), Spectrum(), TemporalSimilarity(), TimestepCKA(), Energy(energy)]


@dataclass
class LayerInfo:
    """One recorded module: its name, class, why it was chosen, and (after the first batch) its time layout
    and what it emits (`OUTPUT_SPIKES`, `OUTPUT_COUNTS` or `OUTPUT_ANALOG`)."""

    name: str
    type: str
    found_by: str
    role: str  # ROLE_SPIKING or ROLE_PASS_THROUGH
    layout: Layout | None = None
    output: str = OUTPUT_SPIKES
    geometry: Geometry | None = None  # spiking layers, after the first batch: image, tokens, head-split, vector


@dataclass
class _Probe:
    """What the first batch showed about a module that no rule named: only 0/1 values, and any spike."""

    zero_one: bool = True
    fired: bool = False


class SpikeRecorder:
    """Record the spiking layers of `model` into `metrics` while the user runs forward passes.

    `layers`: "all", a list of module names (taken as spiking layers even if no rule finds them; one
    whose output is not spikes is recorded as analog), or a regular expression matched against the
    names of the layers found. `T` defaults to `model.T` or, for multi-step neurons, their output's
    time dimension. `fold` ("time-major" or "batch-major") says how a module that no framework
    declares folds time into the batch, when its output is `[T*B, ...]`; by default the fold of the
    model's framework neurons (time-major for spikescope and SpikingJelly, batch-major for sinabs).
    `batch_first` says whether such modules return `[B, T, ...]` (default: as the model's framework
    neurons do; asked for when an output could also be one step of a per-forward loop).
    `capture=K` keeps the raw spikes of the first K samples (compact, on the CPU). `membrane=True` also
    reads the membrane potential of every neuron of a known framework at every timestep (see
    `membrane`) into the metrics fed potentials (a `MembranePotential` is added if none is given).
    `tokens=(h, w)` declares the patch grid of a transformer's token layers (see `tokens`; by default the last 2D
    map before the first token layer).
    A recorder records one run. `warnings` lists what the user should know (each is also issued as a
    `SpikescopeWarning`); `uncosted` lists `(module, operator)` for operations on spikes or weights that the energy
    metric cannot cost.
    """

    def __init__(self, model: nn.Module, layers: str | Sequence[str] = "all", metrics: Sequence[Metric] | None = None,
                 T: int | None = None, capture: int = 0, fold: str | None = None,
                 batch_first: bool | None = None, membrane: bool = False,
                 tokens: str | Sequence[int] | None = None) -> None:
        if fold is not None and fold not in FOLD_ORDERS:
            raise SpikescopeError(f"fold must be one of {', '.join(FOLD_ORDERS)}, got {fold!r}")
        if T is not None and T < 1:
            raise SpikescopeError(f"T must be at least 1, got {T}")
        if isinstance(layers, (list, tuple)) and not layers:
            raise SpikescopeError("the list of layers to record is empty")
        self.model = model
        self.metrics = list(default_metrics() if metrics is None else metrics)
        if membrane and not any(m.inputs == "membrane" for m in self.metrics):
            self.metrics.append(MembranePotential())
        self.membrane = membrane or any(m.inputs == "membrane" for m in self.metrics)
        self._potentials: dict[str, list[torch.Tensor]] = {}  # per spiking key, in step with its spike tensors
        self._unreadable: set[str] = set()  # spiking keys whose potential could not be read
        self._exposed = ExitStack()
        self.T = T if T is not None else getattr(model, "T", None)
        self.fold = fold
        self.batch_first = batch_first
        self.tokens = declared_grid(tokens)
        self.capture = SpikeCapture(capture) if capture else None
        self.layers: list[LayerInfo] = []
        self.warnings: list[str] = []
        self.uncosted: list[tuple[str, str]] = []
        self._selection = layers
        self._modules = dict(model.named_modules())
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._watched: dict[str, LayerInfo] = {}
        self._buffers: dict[str, list[torch.Tensor]] = {}
        self._probes: dict[str, _Probe] = {}
        self._order: list[str] = []
        self._operations: OperatorCounter | None = None
        self._sequence_batch = 0  # the batch of the last sequence handed to the metrics
        self._neurons: set[str] = set()  # every neuron the first pass found
        self._checked: set[str] = set()  # keys whose output kind is checked on every batch (named non-neurons)
        self._batch = 0
        self._input_shape: tuple[int, ...] = ()
        self._first_pass = True
        self._first_calls = 0  # forward calls finished in the first sequence (see `_first_sequence_calls`)
        self._in_call = False  # a call of the first sequence began and has not ended yet
        self._stepped: dict[str, list[torch.Tensor]] = {}  # first sequence: tensors of the calls after the first
        self._opened = False

    # --- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> "SpikeRecorder":
        self.open()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def open(self) -> None:
        """Install the hooks (called by `with`); a recorder cannot be reopened once closed."""
        if self._handles:
            return
        if self._opened:
            raise SpikescopeError("this SpikeRecorder was closed; create a new one for a new run")
        self._opened = True
        known = neurons_by_class(self.model)
        if isinstance(self._selection, (list, tuple)):
            missing = [n for n in self._selection if n not in self._modules or not n]
            if missing:
                raise SpikescopeError(f"no module named {missing[0]!r}; spiking layers found: "
                                      f"{', '.join(known) or 'none by class (the probe runs on the first batch)'}")
            candidates = {n: known.get(n, FOUND_BY_NAME) for n in self._selection}
        else:
            probed, pass_through = probe_candidates(self.model, known)
            candidates = {**known, **{n: FOUND_BY_PROBE for n in probed}}
            for name in pass_through:
                self._watch(name, ROLE_PASS_THROUGH, ROLE_PASS_THROUGH)
        for name, found_by in candidates.items():
            self._watch(name, found_by, ROLE_SPIKING)
        if any(m.inputs == "synapses" for m in self.metrics):
            self._watch_synapses(set(known) | {n for n, f in candidates.items() if f != FOUND_BY_PROBE})
        self._install_model_hooks()
        if self.membrane:  # last: nothing above can fail and leave the frameworks' records switched on
            self._exposed.enter_context(potentials_exposed(self.model))

    def _watch_synapses(self, neurons: set[str]) -> None:
        """Cost every operation of each forward pass (`energy.operators`); FSTA modules are costed whole, by their
        own count (`FSTA.macs`). Operations inside `neurons` (their dynamics) and normalisation layers are not
        synaptic."""
        fsta = {name: module for name, module in self._modules.items() if isinstance(module, FSTA)}
        norms = {name for name, module in self._modules.items() if isinstance(module, NORMALISATIONS)}
        sinks = [m for m in self.metrics if m.inputs == "synapses"]
        counts = any(sums_spikes(m) or declared_output(m) == OUTPUT_COUNTS for m in self._modules.values())
        def deliver(rows: dict, samples: float, spiking: dict) -> None:
            stepped = any(info.layout is Layout.PER_CALL for info in self.layers)
            for metric in sinks:
                metric.add(rows, samples, self.T or 1, stepped=stepped, neurons=spiking)

        self._operations = OperatorCounter(self.model, deliver, neurons | norms, fsta, counts)

    def add_warning(self, message: str) -> None:
        """Issue a `SpikescopeWarning` about this run once, and keep it in `warnings` (it reaches the report)."""
        if message not in self.warnings:
            self.warnings.append(warn(message))

    def close(self) -> None:
        """Remove every hook; safe to call twice. Spikes of an unfinished single-step sequence are dropped."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        if self._operations is not None:
            self._operations.close()
        self._exposed.close()
        self._potentials.clear()
        if any(self._buffers.values()) and not self._first_pass:
            self.add_warning("an unfinished sequence of single-step calls was dropped")
        self._buffers.clear()

    def _install_model_hooks(self) -> None:
        self._handles.append(self.model.register_forward_pre_hook(self._begin_pass))
        if self._operations is not None:  # counting starts after `_begin_pass` and stops before `_end_pass`, and
            # before any other recorder's (last in, first out: modes leave PyTorch's stack in the order they came)
            self._handles.append(self.model.register_forward_pre_hook(self._begin_operations))
            self._handles.append(self.model.register_forward_hook(self._end_operations, prepend=True,
                                                                  always_call=True))
        self._handles.append(self.model.register_forward_hook(self._end_pass))

    def _begin_operations(self, module: nn.Module, args: tuple) -> None:
        if self._first_pass and not self._first_calls:  # a first sequence starts (over): nothing of it counts yet
            self._operations.drop_held()
        self._operations.begin()

    def _end_operations(self, module: nn.Module, args: tuple, output) -> None:
        self._operations.end(self._pass_samples())
        self._name_uncosted()

    def _pass_samples(self) -> float:
        """Images one forward pass covers: the batch of the spiking layers' sequences (a framework may fold time
        into the model input's batch), a T-th of the model input's batch when the caller steps time."""
        if any(info.layout is Layout.PER_FORWARD for info in self.layers):
            return self._batch / self.T
        return float(self._sequence_batch)

    def _name_uncosted(self) -> None:
        """Warn once about every operation on spikes or weights that no rule costs (`energy.operators`)."""
        new = [key for key in self._operations.uncosted if key not in self.uncosted]
        if not new:
            return
        self.uncosted += new
        named = ", ".join(f"{module or MODEL_ROW} ({type(self._modules[module]).__name__}): {operator}"
                          for module, operator in new)
        self.add_warning(f"spikescope cannot cost {named}; these operations are not in the energy total")

    def _mark_output(self, key: str, info: LayerInfo, module: nn.Module, tensor: torch.Tensor) -> None:
        """Tell the operator counter what a neuron emitted: spikes (the synapses it feeds need not check them) or
        spike counts (costed per spike downstream), as its framework declares or, where nothing does, its values."""
        operands = self._operations.operands
        if not self._first_pass and info.output == OUTPUT_SPIKES and key not in self._checked:
            operands.mark_spikes(tensor)
        elif info.output == OUTPUT_COUNTS or (self._first_pass and declared_output(module) == OUTPUT_COUNTS) or (
                info.found_by == FOUND_BY_NAME and (self._first_pass or key in self._checked)
                and output_kind(tensor) == OUTPUT_COUNTS):  # a named module: its values say what it emits
            operands.tag(tensor)  # (after the first pass, `info.output` holds what the framework declares)

    def _settle_operations(self) -> None:
        """The neurons are known: their operations are not costed; a model stepped one timestep per forward pass
        sees a T-th of each image per pass."""
        if self._operations is None:
            return
        analog = {info.name for info in self.layers if info.output == OUTPUT_ANALOG}
        neurons = self._neurons | set(neurons_by_class(self.model))  # selected or not: the energy has them all
        self._operations.settle(self._neurons, self._pass_samples(), {  # layers named that are no neurons: no updates
            name for name in neurons if name not in analog and not pass_through(self._modules[name])})
        self._name_uncosted()

    def _watch(self, name: str, found_by: str, role: str) -> None:
        key = f"{role}:{name}"
        self._watched[key] = LayerInfo(name, type(self._modules[name]).__name__, found_by, role)
        self._handles.append(self._modules[name].register_forward_hook(partial(self._on_forward, key)))

    # --- hooks -----------------------------------------------------------------------------------
    def _begin_pass(self, module: nn.Module, args: tuple) -> None:
        model_input = first_tensor(args)
        if model_input is None:
            raise SpikescopeError("the model was called without a tensor input; SpikeRecorder needs one")
        self._batch = batch_size_of(model_input, self.T or 1)
        self._input_shape = tuple(model_input.shape)
        if self._first_pass:
            if self._in_call or not self._first_calls:  # a new first sequence, or one whose last call raised
                self._first_calls = 0
                for state in (self._buffers, self._potentials, self._probes, self._stepped):
                    state.clear()
                self._order.clear()
            self._in_call = True
            return
        for key, info in self._watched.items():
            if info.layout is Layout.PER_CALL and self._buffers.get(key):
                self.add_warning("a forward pass ended early; its partial spikes were dropped")
                self._buffers[key] = []
                self._potentials.pop(key, None)

    def _on_forward(self, key: str, module: nn.Module, args: tuple, output) -> None:
        with self._operations.paused() if self._operations is not None else nullcontext():  # not the model's work
            self._record(key, module, args, output)

    def _record(self, key: str, module: nn.Module, args: tuple, output) -> None:
        info = self._watched[key]
        tensor = first_tensor(output)
        if tensor is None:
            return
        if self._operations is not None and info.role == ROLE_SPIKING:
            self._mark_output(key, info, module, tensor)
        tensor = tensor.detach()
        if self.membrane and info.role == ROLE_SPIKING:
            self._read_potential(key, module, args, output, tensor)
        if self._first_pass:
            self._observe(key, info, tensor)
            return
        if info.layout in WHOLE_SEQUENCE:
            self._dispatch(key, [tensor])
            return
        pending = self._buffers.setdefault(key, [])
        pending.append(tensor)
        if len(pending) == self.T:
            self._dispatch(key, pending)
            self._buffers[key] = []

    def _read_potential(self, key: str, module: nn.Module, args: tuple, output, spikes: torch.Tensor) -> None:
        """Keep the potential behind this call's spikes, for the membrane metrics (see `membrane`); a layer whose
        potential cannot be read is named once and left out."""
        reader, threshold = potential_reader(module), threshold_of(module)
        if reader is None or threshold is None or key in self._unreadable:
            return
        try:
            potential = reader(module, args, output)
            problem = potential_problem(potential, spikes, threshold) if isinstance(potential, torch.Tensor) else (
                "it holds no potential tensor")
        except (AttributeError, KeyError, TypeError) as error:
            problem = f"its potential could not be read ({describe(error)})"
        if problem:
            self._unreadable.add(key)
            self._potentials.pop(key, None)
            for metric in self.metrics:  # what earlier batches gave would describe only some of the samples
                if metric.inputs == "membrane":
                    getattr(metric, "states", {}).pop(self._watched[key].name, None)
            self.add_warning(f"no membrane statistics for {self._watched[key].name}: {problem}")
            return
        self._potentials.setdefault(key, []).append(potential.detach())

    def _observe(self, key: str, info: LayerInfo, tensor: torch.Tensor) -> None:
        """First sequence: buffer the tensor (the first call's apart, as they decide the layouts); for probed
        modules also judge binarity over all calls."""
        if info.role == ROLE_PASS_THROUGH or info.found_by == FOUND_BY_PROBE:
            probe = self._probes.setdefault(key, _Probe())
            probe.zero_one = probe.zero_one and zero_one(tensor)
            probe.fired = probe.fired or bool(tensor.any())
            if not probe.zero_one or info.role == ROLE_PASS_THROUGH:
                self._buffers.pop(key, None)
                self._stepped.pop(key, None)
                return
        if self._first_calls:
            if key in self._buffers:
                self._stepped.setdefault(key, []).append(tensor)
            return
        if key not in self._buffers:
            self._order.append(key)
        self._buffers.setdefault(key, []).append(tensor)

    def _end_pass(self, module: nn.Module, args: tuple, output) -> None:
        if self._first_pass:
            self._first_calls += 1
            if self._first_calls >= self._first_sequence_calls():
                self._finish_first_pass()
            self._in_call = False
            return
        for key, info in self._watched.items():
            pending = self._buffers.get(key)
            if info.layout is Layout.PER_CALL and pending:
                raise SpikescopeError(f"layer {info.name} ran {len(pending)} times in one forward pass; "
                                      f"with T={self.T} it should run {self.T} times")

    # --- the first pass decides layers and layouts ------------------------------------------------
    def _first_sequence_calls(self) -> int:
        """Forward calls the first pass spans: T when the caller steps the model one timestep per call, so that a
        neuron silent at t = 0 that fires later is found, else one (the model loops over time itself).

        Stepped means what `decide_layouts` calls external: after the first call, some spiking layer fits only one
        step per forward and none fits only a whole sequence. Unless the user said otherwise, a `[B, T, ...]`
        output may be a batch-first sequence: it is left to the first call's layouts to ask."""
        self._read_geometry()
        readings = []
        for key, tensors in self._buffers.items():
            info = self._watched[key]
            if info.role == ROLE_SPIKING:
                module = self._modules[info.name]
                batch_first = self.batch_first is not False or Layout.BATCH_FIRST in declared_layouts(module)
                readings.append(candidate_layouts(tensors[0].shape, len(tensors), self.T, self._batch,
                                                  sample_rank(module), batch_first))
        stepped = (any(r == [Layout.PER_FORWARD] for r in readings)
                   and all(Layout.PER_FORWARD in r for r in readings if r))
        return self.T if stepped else 1

    def _binary(self, key: str) -> bool:
        probe = self._probes.get(key)
        return probe is not None and probe.zero_one and probe.fired

    def _finish_first_pass(self) -> None:
        self._read_geometry()
        watched = self._watched
        probed = {watched[k].name for k in self._order if watched[k].found_by == FOUND_BY_PROBE and self._binary(k)}
        known = {watched[k].name for k in self._order
                 if watched[k].role == ROLE_SPIKING and watched[k].found_by != FOUND_BY_PROBE}
        binary_pass_through = {watched[k].name for k in self._probes if watched[k].role == ROLE_PASS_THROUGH
                               and self._binary(k)}
        keep_probed = innermost(probed, known | binary_pass_through)
        self._neurons = keep_probed | known  # every neuron found, selected or not: their dynamics are not synapses
        selected = [k for k in self._order if watched[k].found_by != FOUND_BY_PROBE or watched[k].name in keep_probed]
        self._name_silent_candidates(probed | known | binary_pass_through)
        self._check_named_layers_ran()
        selected = self._apply_pattern(selected)
        if not any(watched[k].role == ROLE_SPIKING for k in selected):
            raise SpikescopeError("no spiking layer found: no neuron of a known framework and no module with binary "
                                  "output; name the layers explicitly with layers=[...] / --layers")
        self._set_layouts(selected)
        self._watched = {k: watched[k] for k in selected}
        self._potentials = {k: v for k, v in self._potentials.items() if k in self._watched}
        self._rehook()
        self.layers = [info for info in self._watched.values() if info.role == ROLE_SPIKING]
        self._set_outputs()
        self._set_geometry()
        unread = [i.name for i in self.layers if potential_reader(self._modules[i.name]) is None]
        if self.membrane and unread:
            self.add_warning(f"membrane potentials are read from spikescope, SpikingJelly, snnTorch and sinabs "
                             f"neurons only; no membrane statistics for {', '.join(unread)}")
        self._first_pass = False
        buffered, self._buffers = self._buffers, {}
        stepped, self._stepped = self._stepped, {}
        for key in selected:
            tensors = buffered[key] + stepped.get(key, [])
            if self._watched[key].layout is Layout.PER_FORWARD:
                self._buffers[key] = tensors
                if len(tensors) == self.T:
                    self._dispatch(key, tensors)
                    self._buffers[key] = []
            else:
                self._dispatch(key, tensors)
        self._settle_operations()

    def _check_named_layers_ran(self) -> None:
        """A layer the user named must have produced a tensor on the first batch."""
        if not isinstance(self._selection, (list, tuple)):
            return
        seen = {self._watched[k].name for k in self._order}
        silent = [name for name in self._selection if name not in seen]
        if silent:
            raise SpikescopeError(f"layer {silent[0]} was named but did not run (or returned no tensor) on the first "
                                  "batch; spikescope records layers that run on every forward pass")

    def _name_silent_candidates(self, binary: set[str]) -> None:
        """Warn about probed modules that emitted only zeros: a neuron silent on the first batch looks like that."""
        silent = {self._watched[k].name for k, p in self._probes.items() if self._watched[k].found_by == FOUND_BY_PROBE
                  and p.zero_one and not p.fired and not never_a_neuron(self._modules[self._watched[k].name])}
        for name in sorted(innermost(silent, binary), key=list(self._modules).index):
            self.add_warning(f"module {name} ({type(self._modules[name]).__name__}) output only zeros on the first "
                             "batch, so it is not analysed; if it is a neuron that stayed silent, pass --layers "
                             f"{name} (layers=[..., {name!r}]) to include it")

    def _set_outputs(self) -> None:
        """What each spiking layer emits: declared by its framework, binary (probed), or read from the data."""
        for key, info in self._watched.items():
            if info.role != ROLE_SPIKING:
                continue
            declared = declared_output(self._modules[info.name])
            if declared is not None or info.found_by == FOUND_BY_PROBE:
                info.output = declared or OUTPUT_SPIKES
            else:
                self._checked.add(key)  # read from the data on every batch, the first included
        if any(info.output == OUTPUT_COUNTS for info in self.layers) or any(map(sums_spikes, self.model.modules())):
            self._count_spikes_in_synapses()

    def _set_geometry(self) -> None:
        """Each spiking layer's geometry (`tokens.decide_geometries`) from its per-sample shape on the first pass, in
        forward order, and the declared grid."""
        shapes: dict[str, tuple[int, ...]] = {}
        for key in self._order:
            info = self._watched.get(key)
            if info is not None and info.role == ROLE_SPIKING and self._buffers.get(key):
                shape = tuple(self._buffers[key][0].shape)
                shapes[info.name] = shape[2:] if info.layout in (Layout.TIME_FIRST, Layout.BATCH_FIRST) else shape[1:]
        geometries, warnings = decide_geometries(shapes, self.tokens, model_evidence(self.model))
        for info in self.layers:
            info.geometry = geometries.get(info.name)
        for message in warnings:
            self.add_warning(message)

    def _observe_output(self, info: LayerInfo, tensor: torch.Tensor) -> None:
        kind = output_kind(tensor)
        if OUTPUT_ORDER.index(kind) <= OUTPUT_ORDER.index(info.output):
            return
        info.output = kind
        if kind == OUTPUT_ANALOG:
            self.add_warning(f"layer {info.name} ({info.type}) was named explicitly but its output is not spikes "
                             "(real values): it is reported as analog, with spectra and similarity of its values and "
                             "no firing rate, silent share or spike count")
        else:
            self.add_warning(f"layer {info.name} ({info.type}) emits spike counts (whole numbers above 1): its firing "
                             "rate is the mean count per neuron and timestep")
            self._count_spikes_in_synapses()

    def _count_spikes_in_synapses(self) -> None:
        """Multi-spike neurons in the model: synaptic inputs of whole numbers are spike counts, costed per spike."""
        if self._operations is not None:
            self._operations.operands.counts_everywhere = True

    def _read_geometry(self) -> None:
        """T (if unknown) and the batch size from the first layer whose framework fixes its layout; the model
        input only guesses the batch size (time-first if 5-D, else batch-first)."""
        for key in self._order:
            tensors = self._buffers.get(key)
            name = self._watched[key].name
            geometry = declared_geometry(self._modules[name], tensors[0].shape) if tensors else None
            if geometry is None or len(tensors) != 1:
                continue
            if self.T is not None and geometry[0] != self.T:
                raise SpikescopeError(f"layer {name} ({type(self._modules[name]).__name__}) runs {geometry[0]} "
                                      f"timesteps (output shape {tuple(tensors[0].shape)}), but T={self.T} was given")
            self.T, self._batch = geometry
            return
        if self.T is None:
            raise SpikescopeError("the number of timesteps T is unknown for this model: pass T=... (--T)")

    def _apply_pattern(self, selected: list[str]) -> list[str]:
        if not isinstance(self._selection, str) or self._selection == "all":
            return selected
        try:
            pattern = re.compile(self._selection)
        except re.error as error:
            raise SpikescopeError(f"--layers {self._selection!r} is not a valid regular expression: {error}") from None
        spiking = [k for k in selected if self._watched[k].role == ROLE_SPIKING]
        matched = [k for k in spiking if pattern.fullmatch(self._watched[k].name)]
        if not matched:
            names = ", ".join(self._watched[k].name for k in spiking)
            raise SpikescopeError(f"no spiking layer matches {self._selection!r}; available: {names}")
        return matched

    def _set_layouts(self, selected: list[str]) -> None:
        """Decide every selected layer's layout (see `decide_layouts`)."""
        passes = {}
        for key in selected:
            info, module = self._watched[key], self._modules[self._watched[key].name]
            passes[key] = FirstPass(info.name, [tuple(t.shape) for t in self._buffers[key]], sample_rank(module),
                                    declared_layouts(module))
        declared_batch_first = any(declared_layouts(m) == (Layout.BATCH_FIRST,) for m in self.model.modules())
        layouts = decide_layouts(
            passes, self.T, self._batch, FOLD_ORDERS[self.fold] if self.fold else framework_fold(self.model),
            declared_batch_first if self.batch_first is None else self.batch_first,
            self.batch_first is not None or declared_batch_first, self._input_shape)
        for key, layout in layouts.items():
            self._watched[key].layout = layout

    def _rehook(self) -> None:
        """Keep the model-level hooks and the hooks of the selected modules only."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._install_model_hooks()
        for key, info in self._watched.items():
            self._handles.append(self._modules[info.name].register_forward_hook(partial(self._on_forward, key)))

    # --- hand-over to the metrics -----------------------------------------------------------------
    def _dispatch(self, key: str, tensors: list[torch.Tensor]) -> None:
        """Hand one sequence's `tensors` to the metrics."""
        info = self._watched[key]
        if info.layout in (Layout.FOLDED, Layout.FOLDED_BATCH_MAJOR) and tensors[0].shape[0] % self.T:
            raise SpikescopeError(f"layer {info.name} saw {tensors[0].shape[0]} rows, not a multiple of T={self.T}")
        x = to_time_first(tensors, info.layout, self.T)
        self._sequence_batch = x.shape[1]
        spikes = as_features(x if x.is_floating_point() else x.float(), info.geometry)
        if key in self._checked:
            self._observe_output(info, spikes)
        for metric in self.metrics:
            if metric.inputs == "spikes":
                metric.update(info.name, spikes)
        if self.capture is not None and info.output != OUTPUT_ANALOG:
            self.capture.update(info.name, spikes)
        potentials = self._potentials.get(key)
        if potentials:
            potential = as_features(to_time_first(potentials[:len(tensors)], info.layout, self.T), info.geometry)
            del potentials[:len(tensors)]
            threshold = threshold_of(self._modules[info.name])
            for metric in self.metrics:
                if metric.inputs == "membrane":
                    metric.update(info.name, potential, spikes, threshold)

    # --- results ---------------------------------------------------------------------------------
    def compute(self) -> dict[str, MetricResult]:
        """Every metric's results, keyed by the metric's class name."""
        if self._first_pass:
            if self._first_calls:
                raise SpikescopeError(f"nothing was recorded: the model is stepped one timestep per forward call and "
                                      f"its first sequence ended after {self._first_calls} of T={self.T} calls")
            raise SpikescopeError("nothing was recorded: run at least one forward pass inside the recorder")
        return {type(metric).__name__: metric.compute() for metric in self.metrics}

    def hook_count(self) -> int:
        """Hooks this recorder has installed on the model and not yet removed."""
        return len(self._handles)
