"""Claim 2 of the FSTA paper: "feature learning barely differs across timesteps", so that "increasing the
time steps has limited effect on feature learning".

The baseline network (the compact CNN unless --arch says otherwise) trained at T = 1, 2 and 4 with one recipe and
the same seeds. For T = 2 and 4:
the T x T similarity of every layer between timesteps, of the spike patterns (mean per-sample cosine),
of their frequency content (cosine of the DCT power spectra without DC) and of the whole representation
(linear CKA of the channel features), averaged over seeds.
For T = 1, 2, 4: accuracy and firing rate with 95% confidence intervals and paired changes. Writes
reports/temporal/.

    python analyses/temporal.py                      # defaults: about 25 minutes on 2 CPU cores
    python analyses/temporal.py --seeds 5 --limit 0 --epochs 10 --device cuda

Resumable: finished runs are kept (runs/studies/...), so a rerun only analyses.
"""
from __future__ import annotations

import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import spikescope
from _recipe import arguments, network_name, recipe, runs_folder
from _report import compare_groups, interval, layer_roles, markdown_table, save_figure, study_folder, with_roles

STEPS = (1, 2, 4)
SIMILAR = 0.9  # the threshold spikescope's single-model claim check uses for "barely differs"
LIMITED = 0.01  # an accuracy change within 1 point counts as a "limited effect"


def lowest_off_diagonal(matrix: np.ndarray) -> float:
    values = matrix[~np.eye(len(matrix), dtype=bool)]
    return float(np.nanmin(values)) if np.isfinite(values).any() else float("nan")


def similarity_rows(comparison: spikescope.Comparison, group: str) -> list[dict]:
    """Per layer: the lowest off-diagonal spike cosine, spectral (no DC) cosine and linear CKA, mean and 95% CI
    over the seeds."""
    rows = []
    for layer in comparison.layer_names():
        matrices = [comparison.results[label].similarity[layer] for label in comparison.groups[group]]
        lowest = {name: spikescope.summarize([lowest_off_diagonal(m[key]) for m in matrices])
                  for name, key in (("spike", "spike_cosine"), ("spectral", "spectral_cosine_ac"), ("cka", "cka"))}
        rows.append({"T": group, "layer": layer, **lowest})
    return rows


def similarity_figure(comparison: spikescope.Comparison, groups: list[str], path) -> str:
    layers = comparison.layer_names()
    fig, axes = plt.subplots(len(groups), 3, figsize=(12, 2.8 * len(groups)), squeeze=False)
    names = {"spike_cosine": "spike cosine", "spectral_cosine_ac": "spectral (no DC) cosine", "cka": "linear CKA"}
    for row, group in enumerate(groups):
        for col, key in enumerate(names):
            ax = axes[row, col]
            for layer in layers:
                mean = np.mean([comparison.results[m].similarity[layer][key] for m in comparison.groups[group]],
                               axis=0)
                ax.plot(mean[0], marker="o", label=layer)
            ax.set_title(f"{group}: {names[key]} of t=0 with t'", fontsize=9)
            ax.set_xlabel("t'")
            ax.set_ylim(0, 1.02)
            ax.axhline(SIMILAR, color="#999999", linewidth=0.8, linestyle="--")
    axes[0, 2].legend(frameon=False, fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def main() -> None:
    args = arguments(__doc__).parse_args()
    started = time.time()
    paths = {}
    for steps in STEPS:
        config = recipe(args, T=steps)
        paths[f"T={steps}"] = spikescope.train_arms(config, ["baseline"], seeds=range(args.seeds),
                                                    out=runs_folder(args, config))["baseline"]
    folder = study_folder(args, "temporal")
    comparison, statistics = compare_groups(paths, args, "temporal")
    groups, changes = statistics["groups"], statistics["changes"]

    similarity = [row for group in ("T=2", "T=4") for row in similarity_rows(comparison, group)]
    table = pd.DataFrame(with_roles([{"layer": r["layer"], "T": r["T"],
                                      "lowest spike cosine": interval(r["spike"], bounds=(-1, 1)),
                                      "lowest spectral cosine (no DC)": interval(r["spectral"], bounds=(-1, 1)),
                                      "lowest linear CKA": interval(r["cka"], bounds=(0, 1))}
                                     for r in similarity], layer_roles(spikescope.load(paths["T=2"][0])[0])))
    cka_low = float(np.nanmin([r["cka"]["mean"] for r in similarity]))
    representations = ("alike" if cka_low >= SIMILAR else
                        f"less alike than the rule asks (mean lowest CKA {cka_low:.3f} < {SIMILAR})")
    spectral_low = min(r["spectral"]["ci_low"] for r in similarity)
    spike_low = min(r["spike"]["mean"] for r in similarity)
    frequency = ("supported" if spectral_low >= SIMILAR else
                 f"not supported (a spectral cosine's interval reaches {spectral_low:.3f} < {SIMILAR})")
    patterns = ("supported" if spike_low >= SIMILAR else
                f"not supported (mean lowest spike cosine {spike_low:.3f} < {SIMILAR})")
    accuracy = pd.DataFrame([{"T": g, "accuracy (%)": interval(groups[g]["totals"]["accuracy"], 100, 2),
                              "firing rate": interval(groups[g]["totals"]["firing_rate"], digits=4),
                              "energy (µJ/image)": interval(groups[g]["totals"]["energy_pj_per_image"], 1e-6, 2)}
                             for g in groups])
    gains = pd.DataFrame([{"change": f"{g} − T=1", "accuracy (points)": interval(c["totals"]["accuracy"], 100, 2)
                           + f", p = {c['totals']['accuracy']['p_value']:.3f}",
                           "firing rate": interval(c["totals"]["firing_rate"], digits=4)}
                          for g, c in changes.items()])
    per_seed = {g: comparison.totals().query("group == @g")["accuracy"].tolist() for g in groups}
    step = spikescope.paired_difference(per_seed["T=4"], per_seed["T=2"])  # T=4 against T=2, seed by seed
    if -LIMITED <= step["ci_low"] and step["ci_high"] <= LIMITED:
        limited = "supported"
    elif step["ci_low"] > LIMITED or step["ci_high"] < -LIMITED:
        limited = "not supported"
    else:
        limited = "inconclusive (the interval reaches beyond ±1 point)"
    figure = similarity_figure(comparison, ["T=2", "T=4"], folder / "similarity.png")
    minutes = (time.time() - started) / 60
    config = recipe(args)
    readme = f"""# Claim 2: "feature learning barely differs across timesteps"

**Verdict.** The frequency content is alike across timesteps: **{frequency}**. The spike patterns
themselves are alike: **{patterns}**. Whole representations (linear CKA of the layers' channel features
between timesteps): **{representations}**. "Increasing T has limited effect" (accuracy, T = 4 against T = 2 within
±{100 * LIMITED:.0f} point): **{limited}** — T = 4 − T = 2: {interval(step, 100, 2)} points.

Rule: a cosine of at least {SIMILAR} between every pair of timesteps counts as "barely differs" (the same rule
as `spikescope analyze`'s claim check); the spectral verdict uses the lower end of the 95% CI over seeds,
the spike-pattern verdict the mean.

## Setting
- Data: Fashion-MNIST, the first {config.limit or 'all'} training images; every model analysed on the same
  first {args.test_limit:,} test images.
- Model: baseline {network_name(config)} (no FSTA) at T = 1, 2 and 4; {config.epochs} epochs, Adam, peak learning rate
  {config.lr}, cosine schedule, batch {config.batch_size}; seeds {', '.join(map(str, range(args.seeds)))}.
- Compute: {minutes:.0f} min in this run of the script (finished runs are reused).

## Similarity across timesteps (lowest off-diagonal entry of each T x T matrix, mean [95% CI] over seeds)
{markdown_table(table)}

{figure}

## Accuracy and firing rate against T
{markdown_table(accuracy)}

{markdown_table(gains)}

Changes are paired by seed; T = 4 − T = 2: {interval(step, 100, 2)} points, p = {step['p_value']:.3f}.

## What this does and does not show
- Cosines compare each layer's spike vectors and spectra between timesteps of the same images; they say
  nothing about whether a longer simulation learns different features *in the weights*. The spectral cosine
  without DC removes the firing-rate-like DC term, which alone pushes the full cosine towards 1.
- Linear CKA compares how the images are laid out in a layer's channel space at two timesteps (each
  channel's spikes averaged over positions, centred over the images): 1 when the timesteps represent the
  images alike up to a rotation and a scale, whatever the firing rates. Its line in the verdict applies the
  spike-pattern rule (the mean lowest entry at least 0.9).
- {args.seeds} seeds, {config.epochs} epochs on {config.limit or 'all'} images, {config.data}: far from the
  paper's training budget. The interactive comparison is in [comparison/comparison.html](comparison/comparison.html).
"""
    (folder / "README.md").write_text(readme)
    print(readme.split("\n## Setting")[0])


if __name__ == "__main__":
    main()
