"""spikescope's Lemaire energy beside SpikingJelly's own estimator, where that estimator refuses, and the closing note.

    python analyses/energy_models.py [--reports reports] [--images 32] [--test-limit 1000]

1. Agreement: on sequential SpikingJelly stacks its `estimate_lemaire_energy` supports (conv and linear, IF and LIF,
   single- and multi-step, with and without bias, strided and not, a linear MLP), calibrated to fire 5-30 %, on the
   first `--images` bundled Fashion-MNIST images: each term per image under SpikingJelly, spikescope's
   `lemaire2022-paper` and `lemaire2022`. Every difference is derived here from the stated choices of
   docs/metrics.md ("Energy models") and the calls SpikingJelly sees; the script stops if any is left unexplained.
2. Beyond: SpikingJelly's strict-mode refusal (or silent omission) and spikescope's `lemaire2022` terms on
   SpikingJelly's zoo (spiking and SEW ResNet-18, Spikformer), the bundled FSTA model, snnTorch, sinabs and
   plain-PyTorch networks.
3. The closing note: the bundled pair (first `--test-limit` Fashion-MNIST test images) and SpikingJelly's spiking
   ResNet-18 under compute-only `fp32` and `lemaire2022`, with their ANN twins.

Writes `reports/energy-models/README.md`, `agreement.csv`, `beyond.csv` and `closing.csv`. A few minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import dataclasses
from math import ceil, prod
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional
from torch import nn

import _spikingjelly_zoo as zoo
import spikescope
from _energy_networks import (SEED, SUPPORTED_NETWORKS, T, PlainLIFNet, SnnTorchNet, build, sinabs_net,
                              spiking_residual)
from _priced import priced_table
from _report import markdown_table
from spikescope.data import FASHION_MNIST_ROOT, make_loader
from spikescope.energy.models import MEMORY, TERMS, Lemaire2022
from spikescope.energy.peers import spikingjelly_lemaire, spikingjelly_refusal
from spikescope.metrics.base import zero_one
from spikescope.metrics.energy import Energy

LEMAIRE = Lemaire2022()
BUFFER, TAPS, FANOUT = "multi-step buffer of T timesteps", "taps per timestep", "exact fan-outs"
SUPPORTED = ("conv", "linear", "neuron")  # the row kinds SpikingJelly's estimator has formulas for
TOLERANCE = 1e-9  # relative: what is left of a difference once the stated choices are taken out


# --- measuring ---------------------------------------------------------------------------------------------------
def measured(model: nn.Module, loader, T: int | None = None) -> tuple[spikescope.AnalysisResult, Energy]:
    """`analyze` with firing rates and `lemaire2022` energy; the energy metric comes back too, to price its counts
    under other models (`priced`)."""
    metric = Energy("lemaire2022")
    return spikescope.analyze(model, loader, T=T, metrics=[spikescope.FiringRate(), metric], neurobench=False), metric


def priced(result: spikescope.AnalysisResult, metric: Energy, model: str) -> dict[str, float]:
    """`result.energy_totals()` with the same counts priced under energy model `model`, plus `total` and each term
    under its short name (`ops`, ..., `potentials`) for the SNN and `ann_<term>`, `ann_total` for its twin."""
    totals = dataclasses.replace(result, energy=priced_table(metric, model)).energy_totals()
    return {**totals, "total": totals["energy_pj_per_image"], "ann_total": totals["ann_energy_pj_per_image"],
            **{t: totals[f"energy_{t}_pj_per_image"] for t in TERMS},
            **{f"ann_{t}": totals[f"ann_energy_{t}_pj_per_image"] for t in TERMS}}


def stated_differences(net: nn.Module, images: torch.Tensor) -> dict[str, dict[str, float]]:
    """Per image and term (and `total`), what each stated choice of docs/metrics.md moves: `BUFFER` and `TAPS`
    (spikescope's `lemaire2022-paper` minus SpikingJelly's estimate), `FANOUT` (`lemaire2022` minus
    `lemaire2022-paper`). Derived from every convolution and linear call as SpikingJelly's estimator sees it, one
    image at a time: its input (dense or spikes), output and geometry; exact fan-outs counted independently, as
    a convolution of the spikes with an all-ones kernel."""
    moved = {choice: dict.fromkeys(TERMS, 0.0) for choice in (BUFFER, TAPS, FANOUT)}

    def cost(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        x, conv = args[0], isinstance(module, nn.Conv2d)
        multi = getattr(module, "step_mode", "s") == "m"
        steps = x.shape[0] if multi else 1
        if not zero_one(x):  # SpikingJelly's input buffer holds the call's T timesteps, spikescope's one
            reads = out.numel() * prod(module.weight.shape[1:]) if conv else x.numel()
            moved[BUFFER]["inout"] += LEMAIRE.access(reads, x.numel() / steps) - LEMAIRE.access(reads, x.numel())
            if conv:  # SpikingJelly addresses the C_out x k^2 weights once per call, spikescope once per timestep
                taps = module.out_channels * prod(module.kernel_size)
                moved[TAPS]["addressing"] += (steps - 1) * taps * LEMAIRE.e_add
            return
        if not conv:  # a linear layer's every event meets all its outputs: the paper's fan-out is exact
            return
        reached = F.conv2d(x.flatten(0, 1) if multi else x, torch.ones_like(module.weight), None, module.stride,
                           module.padding, module.dilation, module.groups)
        exact, events = float(reached.sum()), float(x.count_nonzero()) * module.out_channels / module.groups
        taps = events * prod(module.kernel_size)
        synops = events * prod(ceil(k / s) for k, s in zip(module.kernel_size, module.stride))
        parameters = sum(p.numel() for p in module.parameters())
        moved[FANOUT]["ops"] += (exact - synops) * LEMAIRE.e_add
        moved[FANOUT]["addressing"] += (exact - taps) * LEMAIRE.e_add
        moved[FANOUT]["params"] += LEMAIRE.access(exact - taps, parameters)
        moved[FANOUT]["potentials"] += 2 * LEMAIRE.access(exact - taps, out.numel() / steps)

    synapses = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    handles = [m.register_forward_hook(cost) for m in synapses]
    try:
        with torch.no_grad():
            for image in images:
                functional.reset_net(net)
                net(image.unsqueeze(0))
    finally:
        for handle in handles:
            handle.remove()
        functional.reset_net(net)
    return {choice: {**{t: v / len(images) for t, v in terms.items()}, "total": sum(terms.values()) / len(images)}
            for choice, terms in moved.items()}


def agreement(name: str, images: torch.Tensor) -> tuple[pd.DataFrame, dict]:
    """Network `name`'s terms per image under SpikingJelly's estimator and spikescope's two Lemaire models, the
    relative differences, what each stated choice moves and what is left (`unexplained`, which must be ~0), and the
    network's summary (firing rates, SpikingJelly fed the whole batch at once)."""
    net = build(name, images)
    theirs = spikingjelly_lemaire(net, images)
    result, metric = measured(net, [images])
    paper, exact = priced(result, metric, "lemaire2022-paper"), priced(result, metric, "lemaire2022")
    moved = stated_differences(net, images)
    rows = []
    for term in (*TERMS, "total"):
        expected_paper = moved[BUFFER][term] + moved[TAPS][term]
        unexplained = max(abs(paper[term] - theirs[term] - expected_paper),
                          abs(exact[term] - theirs[term] - expected_paper - moved[FANOUT][term]))
        if unexplained > TOLERANCE * max(abs(theirs[term]), 1.0):
            raise RuntimeError(f"{name}, {term}: SpikingJelly {theirs[term]:.6g} pJ, lemaire2022-paper "
                               f"{paper[term]:.6g}, lemaire2022 {exact[term]:.6g}; the stated choices explain "
                               f"{expected_paper:.6g} and {moved[FANOUT][term]:.6g}; {unexplained:.3g} pJ is left")
        rows.append({"network": name, "term": term, "spikingjelly_pj": theirs[term], "paper_pj": paper[term],
                     "paper_difference": relative(paper[term], theirs[term]), "exact_pj": exact[term],
                     "exact_difference": relative(exact[term], theirs[term]),
                     **{f"moved_by_{choice.replace(' ', '_')}_pj": moved[choice][term] for choice in moved},
                     "unexplained_pj": unexplained,
                     "why": "; ".join(c for c in moved if abs(moved[c][term]) > TOLERANCE * max(abs(theirs[term]), 1))})
    functional.reset_net(net)
    batch = spikingjelly_lemaire_batch(net, images)
    rates = result.layers.set_index("layer")["firing_rate"]
    summary = {"network": name, "images": len(images), "T": T,
               "firing rates": ", ".join(f"{rate:.3f}" for rate in rates),
               "SpikingJelly, whole batch at once": f"{relative(batch, theirs['total']):+.1%} of its per-image total"}
    return pd.DataFrame(rows), summary


def spikingjelly_lemaire_batch(net: nn.Module, images: torch.Tensor) -> float:
    """SpikingJelly's total per image when fed all `images` in one call: its memories sized for the whole batch."""
    from spikingjelly.activation_based.op_counter.analytical_energy import estimate_lemaire_energy

    functional.reset_net(net)
    total = estimate_lemaire_energy(net, images).total_pj / len(images)
    functional.reset_net(net)
    return total


def relative(ours: float, theirs: float) -> float:
    """(ours - theirs) / theirs; 0 where both are 0."""
    return (ours - theirs) / theirs if theirs else (0.0 if ours == 0 else float("inf"))


@dataclasses.dataclass
class Case:
    """A network to cost: the model, the batches `analyze` gets (and its T), one image as SpikingJelly would get it."""

    model: nn.Module
    loader: list
    T: int | None
    one: torch.Tensor


def zoo_case(name: str) -> Case:
    """One of SpikingJelly's zoo models, built small and calibrated on its two sample images."""
    model, inputs, steps = zoo.build(name)
    zoo.calibrate(model, inputs)
    return Case(model, [inputs], steps, inputs[:1] if hasattr(model, "T") else inputs[:, :1])


def beyond_cases(images: torch.Tensor, bundled: dict[str, Case]) -> dict[str, Case]:
    """The networks SpikingJelly's estimator refuses (or silently under-counts), by name."""
    torch.manual_seed(SEED)
    folded = images.unsqueeze(1).repeat(1, T, 1, 1, 1).flatten(0, 1)  # [B*T, ...], batch-major
    residual = spiking_residual(images)
    torch.manual_seed(SEED)
    snntorch_net, plain, sinabs = SnnTorchNet().eval(), PlainLIFNet().eval(), sinabs_net()
    return {
        "SpikingJelly spiking ResNet-18 (zoo)": zoo_case("spiking-resnet-18"),
        "SpikingJelly SEW ResNet-18 (zoo)": zoo_case("sew-resnet-18"),
        "SpikingJelly Spikformer (zoo)": zoo_case("spikformer"),
        "spiking residual block, conv + IF only": Case(residual, [images], None, images[:1]),
        "bundled FSTA model": bundled["fsta"],
        "snnTorch (conv, Leaky, pooling, linear)": Case(snntorch_net, [images], T, images[:1]),
        "sinabs (conv, IAFSqueeze, sum pooling)": Case(sinabs, [folded], T, folded[:T]),
        "plain PyTorch, spikescope LIF": Case(plain, [images], T, images[:1]),
    }


def beyond(name: str, case: Case, result: spikescope.AnalysisResult, metric: Energy) -> tuple[dict, pd.DataFrame]:
    """What SpikingJelly's estimator says of `case` (its refusal, or its estimate where it accepts) and spikescope's
    `lemaire2022` terms, with the share of the energy in rows of kinds the estimator has no formula for; and the
    terms per kind of row."""
    refusal = spikingjelly_refusal(case.model, case.one)
    table = result.energy
    totals = priced(result, metric, "lemaire2022")
    unsupported = table[~table["kind"].isin(SUPPORTED)]
    row = {"network": name, "SpikingJelly (strict mode)": f"refuses: {refusal}" if refusal else "accepts",
           "firing rate": float(result.layers["firing_rate"].mean()),
           "total_uj": totals["total"] / 1e6, **{f"{t}_share": totals[t] / totals["total"] for t in TERMS},
           "no_formula_share": unsupported["energy_pj_per_image"].sum() / totals["total"],
           "no_formula_kinds": ", ".join(dict.fromkeys(unsupported["kind"])),
           "uncosted": len(result.info.get("uncosted", []))}
    if refusal is None:
        row["SpikingJelly (strict mode)"] = accepted(name, case, metric)
    kinds = table.groupby("kind", sort=False)[["energy_pj_per_image", *(f"energy_{t}_pj_per_image" for t in TERMS)]]
    return row, kinds.sum().reset_index().assign(network=name)


def accepted(name: str, case: Case, metric: Energy) -> str:
    """Where SpikingJelly's estimator accepts a network spikescope finds more in: its estimate equals
    `lemaire2022-paper` without the rows it has no formula for, up to the stated choices; a RuntimeError if not."""
    images = case.loader[0]
    theirs = spikingjelly_lemaire(case.model, images)["total"]
    paper = priced_table(metric, "lemaire2022-paper")
    no_formula = paper.loc[~paper["kind"].isin(SUPPORTED), "energy_pj_per_image"].sum()
    moved = stated_differences(case.model, images)
    left = paper["energy_pj_per_image"].sum() - no_formula - theirs - moved[BUFFER]["total"] - moved[TAPS]["total"]
    if abs(left) > TOLERANCE * theirs:
        raise RuntimeError(f"{name}: SpikingJelly's estimate {theirs:.6g} pJ is not lemaire2022-paper without its "
                           f"{no_formula:.6g} pJ of rows it has no formula for: {left:.3g} pJ is left")
    kinds = ", ".join(dict.fromkeys(paper.loc[~paper["kind"].isin(SUPPORTED), "kind"]))
    return (f"accepts, and leaves out the {kinds} in `forward` ({no_formula / paper['energy_pj_per_image'].sum():.1%} "
            "of lemaire2022-paper's total): its estimate equals lemaire2022-paper without those rows")


# --- 3. the closing note -------------------------------------------------------------------------------------------
def bundled_cases(limit: int) -> tuple[dict[str, Case], str]:
    """The bundled baseline and FSTA models on the first `limit` Fashion-MNIST test images (the bundled sample
    where the full set is not installed), and the data's name."""
    data = "fashion-mnist" if FASHION_MNIST_ROOT.exists() else "fashion-mnist-sample"
    test = spikescope.load_dataset(data, "test", limit=limit)
    cases = {}
    for name in ("baseline", "fsta"):
        model, _ = spikescope.load(spikescope.bundled_checkpoint(name))
        cases[name] = Case(model.eval(), make_loader(test, 100), None, test[:1][0])
    return cases, f"the first {len(test):,} {data} test images"


def closing(result: spikescope.AnalysisResult, metric: Energy) -> tuple[pd.DataFrame, dict]:
    """Per term, per image: the SNN and its ANN twin under compute-only `fp32` and `lemaire2022` (shares of the
    total and of memory), and the SNN/ANN ratio under each."""
    fp32, lemaire = priced(result, metric, "fp32"), priced(result, metric, "lemaire2022")
    memory, ann_memory = (sum(lemaire[f"{prefix}{t}"] for t in MEMORY) for prefix in ("", "ann_"))
    rows = [{"term": term, "fp32_snn_uj": fp32[term] / 1e6, "fp32_ann_uj": fp32[f"ann_{term}"] / 1e6,
             "lemaire_snn_uj": lemaire[term] / 1e6, "lemaire_snn_share": lemaire[term] / lemaire["total"],
             "lemaire_snn_share_of_memory": lemaire[term] / memory if term in MEMORY else float("nan"),
             "lemaire_ann_uj": lemaire[f"ann_{term}"] / 1e6,
             "lemaire_ann_share": lemaire[f"ann_{term}"] / lemaire["ann_total"],
             "lemaire_ann_share_of_memory": lemaire[f"ann_{term}"] / ann_memory if term in MEMORY else float("nan")}
            for term in (*TERMS, "total")]
    facts = {"fp32_ratio": fp32["snn_ann_ratio"], "lemaire_ratio": lemaire["snn_ann_ratio"],
             "memory_share": memory / lemaire["total"], "ann_memory_share": ann_memory / lemaire["ann_total"],
             "dominant": max(TERMS, key=lambda t: lemaire[t]),
             "ann_dominant": max(TERMS, key=lambda t: lemaire[f"ann_{t}"]),
             "fp32_total": fp32["total"], "lemaire_total": lemaire["total"],
             **{f"{name}_fsta": fsta_rows(result, metric, model) for name, model in (("fp32", "fp32"),
                                                                                  ("lemaire", "lemaire2022"))},
             "firing_rate": float(result.layers["firing_rate"].mean()), "images": result.info["samples"]}
    return pd.DataFrame(rows), facts


# --- the report ------------------------------------------------------------------------------------------------------
def percent(x: float) -> str:
    return "" if pd.isna(x) else f"{x:+.2%}" if abs(x) >= 5e-5 else "0"


def agreement_markdown(rows: pd.DataFrame) -> str:
    table = pd.DataFrame({
        "network": [n if i == 0 or n != rows.network.iloc[i - 1] else "" for i, n in enumerate(rows.network)],
        "term": rows.term, "SpikingJelly (pJ)": rows.spikingjelly_pj.map("{:,.1f}".format),
        "lemaire2022-paper (pJ)": rows.paper_pj.map("{:,.1f}".format), "difference": rows.paper_difference.map(percent),
        "lemaire2022 (pJ)": rows.exact_pj.map("{:,.1f}".format), "difference ": rows.exact_difference.map(percent),
        "why": rows.why})
    return markdown_table(table)


def beyond_markdown(rows: pd.DataFrame) -> str:
    table = pd.DataFrame({
        "network": rows.network, "SpikingJelly's estimator (strict mode)": rows["SpikingJelly (strict mode)"],
        "firing rate": rows["firing rate"].map("{:.3f}".format),
        "lemaire2022 (µJ/image)": rows.total_uj.map("{:.2f}".format),
        **{t: rows[f"{t}_share"].map("{:.1%}".format) for t in TERMS},
        "in rows it has no formula for": [f"{share:.2%} ({kinds})" if kinds else "0" for share, kinds in
                                          zip(rows.no_formula_share, rows.no_formula_kinds)],
        "uncosted": rows.uncosted})
    return markdown_table(table)


def closing_markdown(rows: pd.DataFrame, facts: dict) -> str:
    def share(x: float) -> str:
        return "" if pd.isna(x) else f"{x:.1%}"

    table = pd.DataFrame({
        "term": rows.term, "fp32 SNN (µJ)": rows.fp32_snn_uj.map("{:.3f}".format),
        "fp32 ANN twin (µJ)": rows.fp32_ann_uj.map("{:.3f}".format),
        "lemaire2022 SNN (µJ)": rows.lemaire_snn_uj.map("{:.3f}".format), "share": rows.lemaire_snn_share.map(share),
        "share of memory": rows.lemaire_snn_share_of_memory.map(share),
        "lemaire2022 ANN twin (µJ)": rows.lemaire_ann_uj.map("{:.3f}".format),
        "share ": rows.lemaire_ann_share.map(share), "share of memory ": rows.lemaire_ann_share_of_memory.map(share)})
    ratio = pd.DataFrame([{"term": "**SNN / ANN twin**", "fp32 SNN (µJ)": f"{facts['fp32_ratio']:.3f}",
                           "lemaire2022 SNN (µJ)": f"{facts['lemaire_ratio']:.3f}"}], columns=table.columns).fillna("")
    return markdown_table(pd.concat([table, ratio], ignore_index=True))


def verdict(name: str, facts: dict) -> str:
    """What changes for `name` when memory is counted, in one paragraph of the measured facts."""
    def against_twin(ratio: float) -> str:
        return f"spends {ratio:.2f}x its ANN twin's energy ({'less' if ratio < 1 else 'more'} than the twin)"

    wins, won = facts["lemaire_ratio"] < 1, facts["fp32_ratio"] < 1
    stance = ("still beats" if wins else "no longer beats") if won else ("now beats" if wins else "still loses to")
    growth = facts["lemaire_total"] / facts["fp32_total"]
    return (f"**{name}** (mean firing rate {facts['firing_rate']:.3f}). Compute only, the SNN "
            f"{against_twin(facts['fp32_ratio'])}; with memory counted it {against_twin(facts['lemaire_ratio'])}, "
            f"so it {stance} its twin. Its energy grows {growth:.0f}-fold ({facts['fp32_total'] / 1e6:.2f} -> "
            f"{facts['lemaire_total'] / 1e6:.2f} µJ per image): memory is {facts['memory_share']:.1%} of it (the "
            f"twin's: {facts['ann_memory_share']:.1%}), and the largest term is {facts['dominant']} (the twin's: "
            f"{facts['ann_dominant']}).")


def fsta_rows(result: spikescope.AnalysisResult, metric: Energy, model: str) -> float:
    """Energy per image of FSTA's own operations (rows of kind `fsta`) under energy model `model`, in pJ."""
    table = priced_table(metric, model)
    return float(table.loc[table["kind"] == "fsta", "energy_pj_per_image"].sum())


def fsta_verdict(baseline: dict, fsta: dict, data: str) -> str:
    """FSTA's energy change per image under both models, and whether its sign changes."""
    change = {model: (fsta[f"{model}_total"] - baseline[f"{model}_total"]) / 1e6 for model in ("fp32", "lemaire")}
    flips = (change["fp32"] > 0) != (change["lemaire"] > 0)
    return (f"**FSTA minus baseline**, per image on {data}: {change['fp32']:+.2f} µJ compute only "
            f"({change['fp32'] / (baseline['fp32_total'] / 1e6):+.1%}), {change['lemaire']:+.2f} µJ under lemaire2022 "
            f"({change['lemaire'] / (baseline['lemaire_total'] / 1e6):+.1%}); the sign "
            f"{'flips' if flips else 'holds'}. FSTA's own operations cost {fsta['fp32_fsta'] / 1e6:.2f} µJ compute "
            f"only and {fsta['lemaire_fsta'] / 1e6:.2f} µJ under lemaire2022; the rest of the FSTA network spends "
            f"{(fsta['lemaire_total'] - fsta['lemaire_fsta'] - baseline['lemaire_total']) / 1e6:+.2f} µJ against the "
            f"baseline, its layers firing less (mean {fsta['firing_rate']:.3f} against {baseline['firing_rate']:.3f}): "
            "fewer events, fewer weight and potential accesses. One trained model of each, no confidence interval "
            "(analyses/fsta.py has the seeds).")


def readme(agreement_rows: pd.DataFrame, networks: pd.DataFrame, beyond_rows: pd.DataFrame,
           closings: dict[str, tuple[pd.DataFrame, dict]], data: str, images: int) -> str:
    sections = [
        "# Energy models: spikescope's `lemaire2022` beside SpikingJelly's estimator, and what memory changes",
        "",
        "`python analyses/energy_models.py` regenerates this folder (under a minute on 2 CPU cores). Formulas,",
        "constants and the stated choices: docs/metrics.md, \"Energy models\". Energies are per image.",
        "SpikingJelly 2.0's estimator is `op_counter.analytical_energy.estimate_lemaire_energy`, run one image at a",
        "time (`spikescope.energy.peers.spikingjelly_lemaire`).",
        "",
        "## 1. Agreement with SpikingJelly's Lemaire estimator",
        "",
        "Sequential SpikingJelly stacks it supports (conv or linear layers, IF and LIF neurons, a linear readout;",
        f"T = {T}), seeded, weights scaled so every neuron layer fires 5-30 %, on the first {images} bundled",
        "Fashion-MNIST test images. *lemaire2022-paper* uses the paper's fan-outs (every kernel tap), as",
        "SpikingJelly does; *lemaire2022* (the default) the exact ones. *Difference* is relative to SpikingJelly.",
        "",
        "Every difference is one of docs/metrics.md's stated choices, and the script derives each from the calls",
        "SpikingJelly's estimator sees (each convolution's and linear layer's input, output and geometry; exact",
        "fan-outs counted independently, as a convolution of the spikes with an all-ones kernel). What is left once",
        f"they are taken out is below {TOLERANCE:g} of SpikingJelly's term on every row (`unexplained_pj` in",
        "agreement.csv); the script stops otherwise. The choices (*why*):",
        "",
        f"- *{BUFFER}*: fed `[T, 1, ...]` in one call, SpikingJelly sizes the encoding layer's input buffer for all T",
        "  timesteps (a larger, dearer memory); spikescope holds one timestep. Single-step networks: no difference.",
        f"- *{TAPS}*: SpikingJelly addresses a dense-fed convolution's `C_out x k^2` weights once per call;",
        "  spikescope once per timestep.",
        f"- *{FANOUT}* (lemaire2022 only): the paper reads a weight and a potential for every kernel tap",
        "  (`C_out x k^2` per event) and adds over `ceil(k/s)^2` taps; spikescope reads and adds where an event",
        "  reaches an output. Linear layers: the same. Strided and padded convolutions: fewer.",
        "- *per-image buffers*: SpikingJelly sizes memories from the tensors it sees, batch included; run one image",
        "  at a time (as here) it sizes them per image, as spikescope does. Fed the whole batch at once, its totals",
        "  change (last column below).",
        "",
        agreement_markdown(agreement_rows),
        "",
        markdown_table(networks),
        "",
        "## 2. Where SpikingJelly's estimator refuses",
        "",
        "In strict mode (its default) the estimator raises for any module other than convolutions, linear layers and",
        "its own IF and LIF neurons (the message is recorded below). It looks at modules only: operations in a",
        "`forward` (residual sums, attention products, pooling by function) are neither refused nor costed, so a",
        "spiking residual block built of convolutions and IF neurons alone is accepted and its sum silently left",
        "out. spikescope costs every row (terms as shares of its `lemaire2022` total; *in rows it has no formula",
        "for*: the energy of row kinds other than conv, linear and neuron). Zoo models: analyses/_spikingjelly_zoo.py,",
        "calibrated to fire 5-30 % on its two sample images (32 x 32). The residual block (calibrated), snnTorch,",
        f"sinabs and plain PyTorch (untrained, seeded): the {images} sample images. FSTA: {data}. Per kind of row:",
        "beyond_kinds.csv.",
        "",
        beyond_markdown(beyond_rows),
        "",
        "## 3. The closing note's numbers",
        "",
        f"The bundled pair on {data}; SpikingJelly's spiking ResNet-18 (zoo, calibrated, its two sample",
        "images). Per image, compute-only `fp32` (operations only) and `lemaire2022`; the ANN twin is the same",
        "architecture run once per image with real activations and dense products (docs/metrics.md, \"The ANN",
        "twin\"). *Share of memory*: of the inout + params + potentials energy.",
        "",
    ]
    for name, (rows, facts) in closings.items():
        sections += [f"### {name}", "", closing_markdown(rows, facts), "", verdict(name, facts), ""]
    sections += [fsta_verdict(closings["bundled baseline model"][1], closings["bundled FSTA model"][1], data), ""]
    return "\n".join(sections)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", default="reports", help="where the report goes (default: %(default)s)")
    parser.add_argument("--images", type=int, default=32, help="sample images for parts 1-2 (default: %(default)s)")
    parser.add_argument("--test-limit", type=int, default=1000,
                        help="test images for the bundled pair (default: %(default)s)")
    args = parser.parse_args()
    images = spikescope.load_dataset("fashion-mnist-sample", "test", limit=args.images)[:][0]

    measured_agreement = [agreement(name, images) for name in SUPPORTED_NETWORKS]
    agreement_rows = pd.concat([rows for rows, _ in measured_agreement], ignore_index=True)
    networks = pd.DataFrame([summary for _, summary in measured_agreement])

    bundled, data = bundled_cases(args.test_limit)
    cases = beyond_cases(images, bundled)
    measurements = {name: measured(case.model, case.loader, case.T) for name, case in cases.items()}
    measurements["bundled baseline model"] = measured(bundled["baseline"].model, bundled["baseline"].loader)
    beyond_measured = [beyond(name, case, *measurements[name]) for name, case in cases.items()]
    beyond_rows = pd.DataFrame([row for row, _ in beyond_measured])
    kinds = pd.concat([k for _, k in beyond_measured], ignore_index=True)

    closing_names = ("bundled baseline model", "bundled FSTA model", "SpikingJelly spiking ResNet-18 (zoo)")
    closings = {name: closing(*measurements[name]) for name in closing_names}

    folder = Path(args.reports) / "energy-models"
    folder.mkdir(parents=True, exist_ok=True)
    agreement_rows.to_csv(folder / "agreement.csv", index=False)
    networks.to_csv(folder / "agreement_networks.csv", index=False)
    beyond_rows.to_csv(folder / "beyond.csv", index=False)
    kinds.to_csv(folder / "beyond_kinds.csv", index=False)
    pd.concat([rows.assign(network=name) for name, (rows, _) in closings.items()]).to_csv(folder / "closing.csv",
                                                                                            index=False)
    text = readme(agreement_rows, networks, beyond_rows, closings, data, len(images))
    (folder / "README.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
