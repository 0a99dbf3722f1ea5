"""SpikingJelly's own operator counters, per module and operator, to cross-check spikescope's energy table.

    counts = spikescope.energy.peers.spikingjelly_counts(model, inputs)   # one forward pass

SpikingJelly 2.0's `SynOpCounter` counts spike-driven accumulates of `mm`, `addmm`, `bmm`, `baddbmm` and
`convolution` (one per spike and fan-out; one per coincidence when both operands are binary; nothing when
neither is); its `MACCounter` counts dense multiply-accumulates of the same operators when neither operand
is binary (and of batch normalisation in training mode).
"""
from __future__ import annotations

import importlib
from typing import Any

import pandas as pd
import torch
from torch import nn

from ..errors import SpikescopeError

COLUMNS = ["module", "operator", "synops", "macs"]


def _spikingjelly(name: str) -> Any:
    """The SpikingJelly module `name`, or a one-line error saying how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise SpikescopeError("cross-checking against SpikingJelly needs SpikingJelly 2.0 "
                              f"({error}); install it with: pip install --no-deps spikingjelly") from None


def _innermost(records: dict[str, dict[Any, int]], root: str) -> dict[tuple[str, str], int]:
    """Counts per (module, aten operator) of the innermost module that ran each operation.

    SpikingJelly adds each count to every module active at the time, named `<RootClass>.<path>` (plus
    "Global"), so a module's record is the sum over its subtree; subtracting the records of its nearest
    recorded descendants (a container such as a `ModuleList` that is never called has no record of its own)
    leaves what ran in the module itself. Module names are made relative to the model ("" for it)."""
    scopes = {name: ops for name, ops in records.items() if name == root or name.startswith(root + ".")}
    own: dict[tuple[str, str], int] = {}
    for name, ops in scopes.items():
        below = [d for d in scopes if d.startswith(name + ".")]
        children = [d for d in below if not any(d.startswith(e + ".") for e in below)]
        module = name[len(root) + 1:]
        for func, value in ops.items():
            operator = func.overloadpacket.__name__
            value -= sum(scopes[child].get(func, 0) for child in children)
            own[module, operator] = own.get((module, operator), 0) + value
    return own


def spikingjelly_counts(model: nn.Module, inputs: torch.Tensor) -> pd.DataFrame:
    """One row per (module, aten operator) of one forward pass of `model` on `inputs` (neuron states reset
    first, no gradients) under SpikingJelly's `DispatchCounterMode([SynOpCounter(), MACCounter()])`:
    `module` (dotted name relative to the model, "" for the model's own forward), `operator` (aten base
    name: `mm`, `convolution`, ...), `synops` and `macs` for the whole batch. Each count belongs to the
    innermost module that ran the operation (see `_innermost`)."""
    op_counter = _spikingjelly("spikingjelly.activation_based.op_counter")
    functional = _spikingjelly("spikingjelly.activation_based.functional")
    synops, macs = op_counter.SynOpCounter(), op_counter.MACCounter()
    functional.reset_net(model)
    with torch.no_grad(), op_counter.DispatchCounterMode([synops, macs]):
        model(inputs)
    root = type(model).__name__
    counted = {"synops": _innermost(synops.get_counts(), root), "macs": _innermost(macs.get_counts(), root)}
    keys = sorted(set(counted["synops"]) | set(counted["macs"]))
    rows = [{"module": module, "operator": operator, **{column: by_key.get((module, operator), 0)
                                                         for column, by_key in counted.items()}}
            for module, operator in keys]
    return pd.DataFrame(rows, columns=COLUMNS)


SPIKINGJELLY_OPERATORS = ("mm", "addmm", "bmm", "baddbmm", "convolution")  # what SynOpCounter counts
SIDE_BY_SIDE = ["module", "operator", "input", "sops_per_image", "sops_dense_reading_per_image",
                "macs_dense_reading_per_image", "synops_per_image", "macs_per_image"]


def side_by_side(energy: pd.DataFrame, counts: pd.DataFrame, images: int) -> pd.DataFrame:
    """spikescope's energy table (`AnalysisResult.energy`) beside `spikingjelly_counts` of the same `images`,
    per (module, operator) and per image: spikescope's SOPs, its SOPs and MACs under the dense reading of
    spike sums (the reading SpikingJelly's counters share), `input` (the kinds of event operand its rows had),
    and SpikingJelly's SynOps and MACs. Where the two cost the same operator, `sops_dense_reading_per_image`
    equals `synops_per_image` and `macs_dense_reading_per_image` equals `macs_per_image`."""
    ours = energy.groupby(["module", "operator"], sort=False).agg(
        input=("input", lambda kinds: ", ".join(dict.fromkeys(kinds))),
        sops_per_image=("sops_per_image", "sum"),
        sops_dense_reading_per_image=("sops_dense_reading_per_image", "sum"),
        macs_dense_reading_per_image=("macs_dense_reading_per_image", "sum")).reset_index()
    theirs = counts.assign(synops_per_image=counts["synops"] / images, macs_per_image=counts["macs"] / images)
    theirs = theirs[(theirs["synops"] > 0) | (theirs["macs"] > 0)]
    merged = ours.merge(theirs[["module", "operator", "synops_per_image", "macs_per_image"]],
                        on=["module", "operator"], how="outer")
    numbers = [c for c in SIDE_BY_SIDE if c.endswith("_per_image")]
    merged[numbers] = merged[numbers].fillna(0.0)
    merged["input"] = merged["input"].fillna("")
    return merged[SIDE_BY_SIDE].reset_index(drop=True)


LEMAIRE_TERMS = {"ops_pj": "ops", "addressing_pj": "addressing", "inout_pj": "inout", "params_pj": "params",
                 "potential_pj": "potentials"}  # SpikingJelly's breakdown -> spikescope's terms


def spikingjelly_lemaire(model: nn.Module, images: torch.Tensor) -> dict[str, float]:
    """SpikingJelly's Lemaire estimate (`estimate_lemaire_energy`) per image of `images` `[N, ...]`, in pJ: `total`
    and spikescope's term names. SpikingJelly sizes each memory from the tensors it sees, batch included, so it is
    run on one image at a time (the paper's one inference), neuron states reset before each."""
    analytical = _spikingjelly("spikingjelly.activation_based.op_counter.analytical_energy")
    functional = _spikingjelly("spikingjelly.activation_based.functional")
    totals = dict.fromkeys(["total", *LEMAIRE_TERMS.values()], 0.0)
    for image in images:
        functional.reset_net(model)
        report = analytical.estimate_lemaire_energy(model, image.unsqueeze(0))
        totals["total"] += report.total_pj
        for theirs, ours in LEMAIRE_TERMS.items():
            totals[ours] += report.breakdown_pj[theirs]
    functional.reset_net(model)
    return {name: value / len(images) for name, value in totals.items()}


def spikingjelly_refusal(model: nn.Module, inputs: torch.Tensor) -> str | None:
    """Why SpikingJelly's Lemaire estimator (strict mode, its default) refuses `model` on `inputs`: the message of
    the error it raises for a module it has no formula for; None where it accepts the model. It checks modules
    only: operations in a `forward` (a residual sum, a matrix product) are neither refused nor costed."""
    analytical = _spikingjelly("spikingjelly.activation_based.op_counter.analytical_energy")
    functional = _spikingjelly("spikingjelly.activation_based.functional")
    functional.reset_net(model)
    try:
        analytical.estimate_lemaire_energy(model, inputs)
    except ValueError as error:
        return str(error)
    finally:
        functional.reset_net(model)
    return None
