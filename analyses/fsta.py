"""Claim 3 of the FSTA paper: "FSTA lowers the firing rate while raising accuracy".

Four arms trained with one recipe (baseline, FSTA, temporal-only FSTA, spatial-only FSTA), with the
same seeds, analysed on the same test images: accuracy, firing rate per layer and overall, and energy
with and without FSTA's own, under two energy models (compute only, and with addressing and memory),
each with a 95% confidence interval over seeds and a paired test against the baseline. Then FSTA's cost
in the paper's ResNet-19 and ResNet-20 on 32x32 inputs under both models (no training needed), to see
whether the energy verdict would change at paper scale. Writes reports/fsta/.

    python analyses/fsta.py                                    # defaults: about 25 minutes on 2 CPU cores
    python analyses/fsta.py --seeds 5 --epochs 10 --limit 0    # the whole training set
    python analyses/fsta.py --device cuda --arch resnet20 --data cifar10 --data-root ~/data --limit 0 --epochs 200

Resumable: finished runs are kept (runs/studies/...), so a rerun only analyses.
"""
from __future__ import annotations

import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

import spikescope
from spikescope.energy.models import TERMS
from _recipe import arguments, network_name, recipe, runs_folder
from _priced import energy_by_model, energy_change_rows
from _report import compare_groups, interval, layer_roles, markdown_table, save_figure, study_folder, verdict, \
    with_roles

ARMS = ["baseline", "fsta", "fsta-temporal", "fsta-spatial"]
ENERGY_MODELS = ("fp32", "lemaire2022")  # compute only, and with addressing and memory (docs/metrics.md)
PAPER_SCALE = {"ResNet-19 (CIFAR-100)": ("resnet19", 100), "ResNet-20 (CIFAR-10)": ("resnet20", 10)}


def mac_budget() -> pd.DataFrame:
    """FSTA's cost per 32x32 image in each paper network (untrained, seed 0) under each energy model, against what
    the rest of the network costs, and the drop of the spike-fed layers' input firing rate that would pay for it."""
    rows = []
    images = [torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))]
    for name, (arch, classes) in PAPER_SCALE.items():
        torch.manual_seed(0)  # the same initial weights in every run: the firing rates, so the costs, follow them
        model = spikescope.build_model(arch, in_channels=3, num_classes=classes, T=2, fsta=True).eval()
        for energy_model in ENERGY_MODELS:
            energy = spikescope.analyze(model, images, metrics=[spikescope.Energy(energy_model)]).energy
            fsta = energy["kind"] == "fsta"
            weighted = energy["kind"].isin(["conv", "transposed conv", "linear", "matmul", "attention"])
            spiking = weighted & (energy["input"] == "spikes")
            fsta_pj = energy.loc[fsta, "energy_pj_per_image"].sum()
            # a spike-fed row's energy is proportional to its input events: its cost per unit of input firing rate
            per_rate = (energy.loc[spiking, "energy_pj_per_image"] / energy.loc[spiking, "input_firing_rate"]).sum()
            rows.append({"network (T = 2, 32x32)": name, "energy model": energy_model,
                         "FSTA MACs per image (M)": f"{energy.loc[fsta, 'macs_per_image'].sum() / 1e6:.1f}",
                         "FSTA energy (µJ)": f"{fsta_pj / 1e6:.2f}",
                         "the rest (µJ)": f"{energy.loc[~fsta, 'energy_pj_per_image'].sum() / 1e6:.1f}",
                         "FSTA share": f"{100 * fsta_pj / energy['energy_pj_per_image'].sum():.1f} %",
                         "firing-rate drop that pays for FSTA": f"{fsta_pj / per_rate:.3f}"})
    return pd.DataFrame(rows)


def training_seconds(paths: dict[str, list]) -> float:
    """Total training time of the study's runs, from their histories (as they ran, other load included)."""
    return float(sum(h["seconds"] for runs in paths.values() for p in runs for h in spikescope.load(p)[1]["history"]))


def step_times(config: spikescope.TrainConfig, batches: int = 10, repeats: int = 3) -> dict[str, float]:
    """Seconds per training step of each arm on the same batches, interleaved, best of `repeats`: the speed
    ratio measured in one run (run times in the histories depend on what else the machine did)."""
    data = spikescope.load_dataset(config.data, "train", limit=batches * config.batch_size)
    loader = list(spikescope.make_loader(data, config.batch_size))
    models = {arm: spikescope.build_model(config.arch, **{"in_channels": data.images.shape[1],
                                                           "num_classes": len(data.classes), **config.arch_kwargs},
                                          T=config.T, fsta=spikescope.ARMS[arm]) for arm in ARMS}
    best = {arm: float("inf") for arm in ARMS}
    for _ in range(repeats):
        for arm, model in models.items():
            optimizer = torch.optim.Adam(model.parameters(), config.lr)
            started = time.perf_counter()
            for images, labels in loader:
                loss = torch.nn.functional.cross_entropy(model(images), labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            best[arm] = min(best[arm], (time.perf_counter() - started) / len(loader))
    return best


def firing_figure(comparison: spikescope.Comparison, statistics: dict, path) -> str:
    layers = comparison.layer_names()
    fig, ax = plt.subplots(figsize=(8, 3.4))
    width = 0.8 / len(comparison.groups)
    for index, group in enumerate(comparison.groups):
        summaries = [statistics["groups"][group]["layers"][layer]["firing_rate"] for layer in layers]
        means = [s["mean"] for s in summaries]
        errors = [np.nan_to_num((s["ci_high"] - s["ci_low"]) / 2) for s in summaries]
        ax.bar(np.arange(len(layers)) + index * width, means, width, yerr=errors, capsize=2, label=group)
    ax.set_xticks(np.arange(len(layers)) + 0.4 - width / 2, layers)
    ax.set_ylabel("firing rate (mean, 95% CI)")
    ax.legend(frameon=False, ncol=len(comparison.groups))
    return save_figure(fig, path)


def membrane_rows(statistics: dict, layers: list[str], roles: dict[str, str]) -> pd.DataFrame:
    """Per layer: where membrane potentials sit in the baseline and with FSTA (means over seeds), and FSTA's
    paired change of their mean and spread."""
    base, fsta = statistics["groups"]["baseline"]["layers"], statistics["groups"]["fsta"]["layers"]
    change = statistics["changes"]["fsta"]["layers"]

    def pair(layer: str, metric: str, scale: float = 1.0, digits: int = 3, unit: str = "") -> str:
        return (f"{scale * base[layer][metric]['mean']:.{digits}f}{unit} → "
                f"{scale * fsta[layer][metric]['mean']:.{digits}f}{unit}")

    return pd.DataFrame(with_roles([{
        "layer": layer, "mean u/θ": pair(layer, "membrane_mean"),
        "change of the mean": interval(change[layer]["membrane_mean"]),
        "SD of u/θ": pair(layer, "membrane_sd"), "change of the SD": interval(change[layer]["membrane_sd"]),
        "within 10 % below θ": pair(layer, "near_threshold_share", 100, 1, " %"),
        "fired": pair(layer, "reset_share", 100, 1, " %")} for layer in layers], roles))


def membrane_reading(statistics: dict, layers: list[str]) -> str:
    """In words: does FSTA lower firing by shifting potentials down or by narrowing them (95% CIs, per layer)?"""
    change = statistics["changes"]["fsta"]["layers"]

    def count(metric: str, sign: int) -> int:
        return sum(verdict(change[layer][metric]["ci_low"], change[layer][metric]["ci_high"], sign) == "supported"
                   for layer in layers)

    down, up = count("membrane_mean", -1), count("membrane_mean", +1)
    narrower, wider = count("membrane_sd", -1), count("membrane_sd", +1)
    return (f"Of {len(layers)} layers, FSTA shifts the potentials of the neurons that stay below threshold down in "
            f"{down} and up in {up}, and makes their spread narrower in {narrower} and wider in {wider} (95% CIs "
            "of the paired changes that exclude 0; the other layers are inconclusive).")


def membrane_figure(comparison: spikescope.Comparison, path) -> str:
    """Per layer: the distribution of u/θ of the neurons that did not fire, baseline against FSTA (seeds and
    timesteps pooled)."""
    from spikescope.metrics.membrane import EDGES

    layers = comparison.layer_names()
    fig, axes = plt.subplots(1, len(layers), figsize=(2.6 * len(layers), 2.6), sharey=True, squeeze=False)
    centres = (EDGES[:-1] + EDGES[1:]) / 2
    for ax, layer in zip(axes[0], layers):
        for arm in ("baseline", "fsta"):
            counts = sum(comparison.results[label].membrane[layer].sum(axis=0) for label in comparison.groups[arm])
            fired = 100 * counts[-1] / counts.sum()
            ax.plot(centres, 100 * counts[1:-1] / counts.sum(), label=f"{arm} (fired {fired:.0f} %)")
        ax.axvline(1.0, color="#999999", linewidth=0.8, linestyle="--")
        ax.set_title(layer, fontsize=9)
        ax.set_xlabel("u / θ (did not fire)")
        ax.legend(frameon=False, fontsize=6)
    axes[0, 0].set_ylabel("% of neurons")
    fig.tight_layout()
    return save_figure(fig, path)


def cka_rows(comparison: spikescope.Comparison, roles: dict[str, str]) -> pd.DataFrame:
    """Per layer: linear CKA with the same layer of the baseline's first seed, mean over each arm's models (the
    baseline's other seeds give the seed-to-seed level)."""
    layers = comparison.layer_names()
    rows = []
    for layer in layers:
        row = {"layer": layer}
        for arm in ARMS:
            values = [entry["matrix"][entry["reference_layers"].index(layer), entry["layers"].index(layer)]
                      for label, entry in comparison.cka.items() if comparison.group_of(label) == arm]
            row[arm if arm != "baseline" else "baseline (other seeds)"] = (
                f"{np.mean(values):.3f}" if values else "–")
        rows.append(row)
    return pd.DataFrame(with_roles(rows, roles))


def energy_changes(by_model: dict[str, dict]) -> pd.DataFrame:
    """Per energy model and arm: the paired change of the energy per image against the baseline, with and without
    FSTA's own energy, and whether it is lowered."""
    rows = []
    for model, statistics in by_model.items():
        for arm in ARMS[1:]:
            c = statistics["changes"][arm]["totals"]
            energy = c["energy_pj_per_image"]
            rows.append({"energy model": model, "arm − baseline": arm,
                         "energy (µJ)": interval(energy, 1e-6, 2) + f" ({energy['percent']:+.1f} %)",
                         "without FSTA's own (µJ)": interval(c["energy_pj_per_image_without_fsta"], 1e-6, 2),
                         "energy lowered": verdict(energy["ci_low"], energy["ci_high"], -1)})
    return pd.DataFrame(rows)


def energy_terms(comparisons: dict[str, spikescope.Comparison]) -> pd.DataFrame:
    """Per energy model and arm, means over seeds: the total, its terms, the ANN twin's total and the SNN/ANN
    ratio (docs/metrics.md, "Energy models")."""
    rows = []
    for model, comparison in comparisons.items():
        for arm in ARMS:
            totals = pd.DataFrame([comparison.results[label].energy_totals() for label in comparison.groups[arm]])
            mean = totals.mean()
            rows.append({"energy model": model, "arm": arm, "total (µJ)": f"{mean['energy_pj_per_image'] / 1e6:.2f}",
                         **{term: f"{mean[f'energy_{term}_pj_per_image'] / 1e6:.2f}" for term in TERMS},
                         "ANN twin (µJ)": f"{mean['ann_energy_pj_per_image'] / 1e6:.2f}",
                         "SNN / ANN": f"{mean['snn_ann_ratio']:.3f}"})
    return pd.DataFrame(rows)


def energy_reading(by_model: dict[str, dict]) -> str:
    """In words: FSTA's energy verdict under each model, and whether counting memory changes it."""
    verdicts = {}
    for model, statistics in by_model.items():
        energy = statistics["changes"]["fsta"]["totals"]["energy_pj_per_image"]
        verdicts[model] = (verdict(energy["ci_low"], energy["ci_high"], -1), interval(energy, 1e-6, 2))
    said = "; ".join(f"under {model}, {v} (change {i} µJ)" for model, (v, i) in verdicts.items())
    same = len({v for v, _ in verdicts.values()}) == 1
    return (f"FSTA lowers the energy per image: {said}. Counting addressing and memory "
            f"{'does not change' if same else 'changes'} the verdict.")


def main() -> None:
    args = arguments(__doc__).parse_args()
    started = time.time()
    config = recipe(args)
    paths = spikescope.train_arms(config, ARMS, seeds=range(args.seeds), out=runs_folder(args, config))
    folder = study_folder(args, "fsta")
    comparison, statistics = compare_groups(paths, args, "fsta", membrane=True)
    memory_aware, memory_statistics = compare_groups(paths, args, "fsta", energy="lemaire2022",
                                                     folder="comparison-lemaire2022")
    comparisons = {"fp32": comparison, "lemaire2022": memory_aware}
    by_model = {"fp32": statistics, "lemaire2022": memory_statistics}
    groups, changes = statistics["groups"], statistics["changes"]
    steps = step_times(config)

    totals = pd.DataFrame([{
        "arm": arm, "accuracy (%)": interval(groups[arm]["totals"]["accuracy"], 100, 2),
        "firing rate": interval(groups[arm]["totals"]["firing_rate"], digits=4),
        "energy (µJ/image)": interval(groups[arm]["totals"]["energy_pj_per_image"], 1e-6, 2),
        "energy without FSTA's MACs (µJ)": interval(groups[arm]["totals"]["energy_pj_per_image_without_fsta"],
                                                     1e-6, 2),
        "FSTA MACs (M/image)": f"{groups[arm]['totals']['fsta_macs_per_image']['mean'] / 1e6:.2f}",
        "training step": f"{1000 * steps[arm]:.0f} ms ({steps[arm] / steps['baseline']:.2f}x)",
    } for arm in ARMS])
    arm_verdicts = pd.DataFrame([{
        "arm": arm,
        "firing rate lowered": verdict(changes[arm]["totals"]["firing_rate"]["ci_low"],
                                       changes[arm]["totals"]["firing_rate"]["ci_high"], -1),
        "accuracy raised": verdict(changes[arm]["totals"]["accuracy"]["ci_low"],
                                   changes[arm]["totals"]["accuracy"]["ci_high"], +1),
        "energy lowered (with FSTA's MACs)": verdict(changes[arm]["totals"]["energy_pj_per_image"]["ci_low"],
                                                     changes[arm]["totals"]["energy_pj_per_image"]["ci_high"], -1)}
        for arm in ARMS[1:]])
    change_rows = []
    for arm in ARMS[1:]:
        c = changes[arm]["totals"]
        change_rows.append({
            "arm − baseline": arm,
            "accuracy (points)": interval(c["accuracy"], 100, 2) + f", p = {c['accuracy']['p_value']:.3f}",
            "firing rate": interval(c["firing_rate"], digits=4) + f" ({c['firing_rate']['percent']:+.1f} %), "
                                                                   f"p = {c['firing_rate']['p_value']:.3f}",
            "energy (µJ)": interval(c["energy_pj_per_image"], 1e-6, 2),
            "energy without FSTA's MACs (µJ)": interval(c["energy_pj_per_image_without_fsta"], 1e-6, 2)})
    roles = layer_roles(spikescope.load(paths["baseline"][0])[0])
    layer_rows = with_roles([{"layer": layer, **{arm: f"{changes[arm]['layers'][layer]['firing_rate']['percent']:+.1f}"
                                                      " %" for arm in ARMS[1:]}} for layer in comparison.layer_names()],
                            roles)
    energies = energy_by_model(paths, spikescope.make_loader(
        spikescope.load_dataset(config.data, "test", limit=args.test_limit), 100), args.device)
    energies.to_csv(folder / "energy-models.csv", index=False)

    fsta = changes["fsta"]["totals"]
    lowers = verdict(fsta["firing_rate"]["ci_low"], fsta["firing_rate"]["ci_high"], -1)
    raises = verdict(fsta["accuracy"]["ci_low"], fsta["accuracy"]["ci_high"], +1)
    if lowers == "supported" and raises == "supported":
        overall = "supported"
    elif lowers == "supported":
        overall = "partly supported: the firing rate drops, the accuracy gain is " + (
            "not there (accuracy drops)" if raises == "contradicted" else "not shown (its interval includes 0)")
    elif lowers == "contradicted":
        overall = f"not supported: FSTA raises the firing rate (accuracy: {raises})"
    else:
        overall = f"inconclusive: the firing-rate change's interval includes 0 (accuracy: {raises})"
    budget = mac_budget()
    drop = -fsta["firing_rate"]["mean"]
    scale_note = "; ".join(f"{row['network (T = 2, 32x32)']} under {row['energy model']} needs "
                           f"{row['firing-rate drop that pays for FSTA']}" for _, row in budget.iterrows())
    minutes = (time.time() - started) / 60
    training_minutes = training_seconds(paths) / 60
    first = spikescope.load(paths["baseline"][0])[1]
    readme = f"""# Claim 3: "FSTA lowers the firing rate while raising accuracy"

**Verdict: {overall}.** Firing rate lowered: {lowers}. Accuracy raised: {raises}.
FSTA (both branches) against the baseline: firing rate {interval(fsta['firing_rate'], digits=4)}
({fsta['firing_rate']['percent']:+.1f} %), accuracy {interval(fsta['accuracy'], 100, 2)} points; energy per image
{interval(fsta['energy_pj_per_image'], 1e-6, 2)} µJ with FSTA's own MACs and
{interval(fsta['energy_pj_per_image_without_fsta'], 1e-6, 2)} µJ without them (95% CI over seeds, paired by seed).

## Setting
- Data: {first['dataset']['name']}, the first {config.limit or 'all'} training images; every model analysed on
  the same first {args.test_limit:,} test images (also the images the training logged its test accuracy on; no
  model was selected on them).
- Model: {network_name(config)}, T = {config.T}; {config.epochs} epochs, Adam, peak learning rate {config.lr}
  with a cosine schedule, batch {config.batch_size}; seeds {', '.join(map(str, range(args.seeds)))} for every arm
  (the same initial weights of the shared layers and the same data order).
- Arms: {', '.join(ARMS)} (FSTA with one branch only for the last two).
- Energy: two models (docs/metrics.md, "Energy models"): `fp32`, compute only (45 nm, 4.6 pJ per MAC,
  0.9 pJ per AC), the convention of the paper; and `lemaire2022`, which adds addressing and the memory reads and
  writes of inputs and outputs, parameters and membrane potentials (Lemaire et al. 2022). The tables above the
  section "Energy under both models" use `fp32`.
- Compute: the {len(ARMS) * args.seeds} training runs took {training_minutes:.0f} min together (as they ran, with
  other work on the same 2 cores); this run of the script took {minutes:.0f} min (finished runs are reused).
  Training speed measured here, interleaved on the same batches: FSTA {steps['fsta'] / steps['baseline']:.2f}x
  the baseline's time per step, temporal-only {steps['fsta-temporal'] / steps['baseline']:.2f}x, spatial-only
  {steps['fsta-spatial'] / steps['baseline']:.2f}x.

## Totals (mean [95% CI] over seeds)
{markdown_table(totals)}

## Changes against the baseline (paired over seeds)
{markdown_table(pd.DataFrame(change_rows))}

Per arm, with the same rule (supported when the 95% CI of the paired change lies on the claimed side of 0):

{markdown_table(arm_verdicts)}

Firing rate change per layer (group means):

{markdown_table(pd.DataFrame(layer_rows))}

{firing_figure(comparison, statistics, folder / "firing_rate.png")}

## How FSTA lowers the firing rate: membrane potentials
Where the potentials u of the neurons that did not fire sit, in units of each layer's threshold θ, baseline →
FSTA (means over seeds; changes paired by seed, mean [95% CI]). Read at the spike decision
(docs/metrics.md, "Membrane potential").

{markdown_table(membrane_rows(statistics, comparison.layer_names(), roles))}

{membrane_reading(statistics, comparison.layer_names())}

{membrane_figure(comparison, folder / "membrane.png")}

## What FSTA changes in the representations: CKA with the baseline
Linear CKA of each layer's channel features with the same layer of the baseline's seed 0, on the same test
images (mean over each arm's models; 1 = the same representation up to a rotation and a scale). The baseline's
other seeds show how much two baseline trainings differ anyway.

{markdown_table(cka_rows(comparison, roles))}

## Energy under both models
{energy_reading(by_model)}

Paired changes against the baseline (95% CI over seeds):

{markdown_table(energy_changes(by_model))}

Where the energy goes (µJ per image, means over seeds): operations, addressing, and memory of inputs and outputs
(`inout`), parameters (`params`) and membrane potentials (`potentials`); the ANN twin is the same architecture run
once per image as a dense network under the same model.

{markdown_table(energy_terms(comparisons))}

The comparison under `lemaire2022` is in
[comparison-lemaire2022/comparison.html](comparison-lemaire2022/comparison.html).

### Under every energy model
The same networks on the same images, their operation and memory counts taken in one pass and priced under each
of spikescope's energy models (docs/metrics.md, "Energy models"; per seed in energy-models.csv):

{markdown_table(energy_change_rows(energies))}

## FSTA's cost at paper scale (no training)
{markdown_table(budget)}

The last column is the drop of the spike-fed layers' input firing rate (in absolute spikes per neuron per
timestep) at which the energy FSTA saves in those layers pays for its own, under each model (a spike-fed layer's
energy is proportional to its input events; the neurons' own updates are left out). FSTA's MACs are counted
analytically as the module computes them (docs/metrics.md, "Synaptic operations and energy"). Here FSTA lowered
the firing rate by {drop:.3f} on average; at paper scale the break-even drop is {scale_note}: the larger the
network, the smaller FSTA's share of the compute, so the energy verdict measured on {network_name(config)} need not
hold for ResNet-19.

## What this does and does not show
- {args.seeds} seeds, {config.epochs} epochs on {config.limit or 'all'} images: a small-compute replication on
  {first['dataset']['name']}, not the paper's CIFAR/ResNet recipe (hundreds of epochs on a GPU). The script scales
  up with `--device cuda --arch resnet20 --data cifar10 --limit 0 --epochs ...`.
- The interactive comparison (per-layer firing, energy split, orientation, similarity, spectrum differences)
  is in [comparison/comparison.html](comparison/comparison.html); all numbers in comparison/comparison.json.
"""
    (folder / "README.md").write_text(readme)
    print(readme.split("\n## Setting")[0])


if __name__ == "__main__":
    main()
