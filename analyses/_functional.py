"""Claim 1 tested functionally: on which orientation of each layer's spike maps the decision depends.

A spectrum says what a layer emits; removing a band from the layer's maps on the way to the next layer
(`spikescope.frequency_ablation`) says what the decision uses. For each split (axis: the pure axes of the 2D-DCT,
u > 0 with v = 0 against v > 0 with u = 0; wedge: the halves u > v against v > u) and each layer, the loss of a
measure (accuracy: the drop in correct predictions; KL: the divergence of the ablated from the unablated class
probabilities, in nats) is taken for the band removed (R), for its energy-matched random controls (C, the mean of
the draws) and as the specific effect S = R - C, image by image. The functional orientation index

    FOI = (S_vert - S_horz) / (|R_vert| + |R_horz| + |C_vert| + |C_horz|)        in [-1, 1]

has the orientation index's sign: FOI > 0 when the decision depends more, beyond the power removed, on variation
along the height (vertical frequencies, horizontal stripes), FOI < 0 when on variation along the width (vertical
stripes). The denominator holds every effect measured, so FOI stays in [-1, 1] and is not inflated where both
specific effects are tiny. Reading (a) of the claim predicts FOI falling with depth (> 0 shallow, < 0 deep),
reading (b) rising (< 0 shallow, > 0 deep); spatial.py judges both with the rules of the descriptive test.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

import spikescope
from spikescope.atomic import atomic_path
from _report import interval, markdown_table, save_figure, with_roles

SIDES = ("vertical", "horizontal")  # the band of variation along the height, then along the width
LOSSES = {"accuracy": "accuracy_change", "KL": "kl"}  # measure -> against_controls column (a change or a loss)
GAIN_IS_LOSS = {"accuracy": -1.0, "KL": 1.0}  # sign that turns the column into a loss (an accuracy drop)
NEGLIGIBLE_KL = 1e-3  # nats: a band whose removal moves the predictions less than this has no effect to judge
STRIPES = {"vertical stripes": (0, "horizontal"), "horizontal stripes": (1, "vertical")}  # label, band they live in


def ablation_table(model: torch.nn.Module, loader, cache: Path, bands: str, draws: int, seed: int) -> pd.DataFrame:
    """`frequency_ablation(...).against_controls()` of one network, its controls drawn from its own `seed` (so that
    the draws vary over seeds), read from `cache` when an earlier run wrote it (the study is resumable), else
    measured and written there whole."""
    if cache.exists():
        return pd.read_csv(cache)
    table = spikescope.frequency_ablation(model, loader, bands=bands, draws=draws, seed=seed).against_controls()
    with atomic_path(cache) as partial:
        table.to_csv(partial, index=False)
    return table


def cache_path(folder: Path, network: str, images: int, bands: str, draws: int, seed: int) -> Path:
    """Where one network's ablation table is kept, named by what fixes it."""
    return folder / (f"frequency-{network.replace(' ', '-')}-{images}img-{bands.replace(',', '+')}-{draws}draws-"
                     f"seed{seed}.csv")


def functional_index(s_vert: float, s_horz: float, r_vert: float, r_horz: float, c_vert: float,
                     c_horz: float) -> float:
    """FOI = (S_vert - S_horz) / (|R_vert| + |R_horz| + |C_vert| + |C_horz|) (module docstring); in [-1, 1] because
    S = R - C; NaN when nothing had any effect."""
    total = abs(r_vert) + abs(r_horz) + abs(c_vert) + abs(c_horz)
    return (s_vert - s_horz) / total if total > 0 else math.nan


def dependence(table: pd.DataFrame, split: str, measure: str) -> pd.DataFrame:
    """Per layer (depth order) of one network: the losses R, C, S of the split's vertical and horizontal bands under
    `measure`, S's 95 % interval over images, and FOI."""
    column, sign = LOSSES[measure], GAIN_IS_LOSS[measure]
    rows = []
    for layer, group in table.groupby("layer", sort=False):
        bands = group.set_index("band")
        row = {"layer": layer}
        for side in SIDES:
            band = bands.loc[f"{split}_{side}"]
            low, high = sign * band[f"{column}_specific_ci_low"], sign * band[f"{column}_specific_ci_high"]
            row.update({f"R_{side}": sign * band[column], f"C_{side}": sign * band[f"{column}_control"],
                        f"S_{side}": sign * band[f"{column}_specific"], f"S_{side}_low": min(low, high),
                        f"S_{side}_high": max(low, high)})
        row["FOI"] = functional_index(row["S_vertical"], row["S_horizontal"], row["R_vertical"],
                                      row["R_horizontal"], row["C_vertical"], row["C_horizontal"])
        rows.append(row)
    return pd.DataFrame(rows).set_index("layer")


def functional_verdict(trained: str, learned: str) -> str:
    """One reading's functional verdict from the trend-form verdicts (`_report.verdict`) of FOI's depth trend in the
    trained networks and in what training adds (trained - untrained, seed by seed)."""
    if trained == "supported":
        return "supported, beyond the untrained networks" if learned == "supported" else \
            "not beyond the untrained networks (the trained networks show the trend, what training adds does not)"
    if trained == "contradicted":
        return "not supported (dependence moves with depth the other way)"
    return "not supported (no clear depth trend in the trained networks)"


def stripes_pass(frames: list[pd.DataFrame], stripes: str) -> pd.Series:
    """Per layer: how many networks (seeds) depend on the band their gratings' stripes live in (KL frames): removing
    the band moves the predictions (by `NEGLIGIBLE_KL` or more), its specific effect has its 95 % interval over
    images above 0, and FOI has the stripes' sign."""
    band = STRIPES[stripes][1]
    sign = 1 if band == "vertical" else -1
    return sum(((f[f"R_{band}"] >= NEGLIGIBLE_KL) & (f[f"S_{band}_low"] > 0) & (sign * f["FOI"] > 0)).astype(int)
               for f in frames)


def foi_summary(frames: list[pd.DataFrame], layer: str) -> dict:
    """FOI of one layer over seeds (`summarize`, within [-1, 1])."""
    return spikescope.summarize([f.loc[layer, "FOI"] for f in frames], bounds=(-1, 1))


def figure(curves: dict[str, dict[str, list[pd.DataFrame]]], path: Path) -> str:
    """FOI (KL) by depth, mean and 95 % CI over seeds: one panel per group of curves (split, or the gratings)."""
    fig, axes = plt.subplots(1, len(curves), figsize=(4 * len(curves), 3.2), sharey=True)
    for ax, (title, lines) in zip(np.atleast_1d(axes), curves.items()):
        for label, frames in lines.items():
            layers = list(frames[0].index)
            stats = [foi_summary(frames, layer) for layer in layers]
            depth = np.arange(1, len(layers) + 1)
            line, = ax.plot(depth, [s["mean"] for s in stats], marker="o", label=label)
            ax.fill_between(depth, [s["ci_low"] for s in stats], [s["ci_high"] for s in stats], alpha=0.15,
                            color=line.get_color())
        ax.axhline(0, color="#999999", linewidth=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("depth (spiking layer)")
        ax.legend(frameon=False, fontsize=7)
    np.atleast_1d(axes)[0].set_ylabel("FOI (KL): > 0 along the height")
    return save_figure(fig, path)


def foi_cell(frames: list[pd.DataFrame], layer: str) -> str:
    """FOI of one layer, mean [95 % CI] (n)."""
    return interval(foi_summary(frames, layer), digits=2, bounds=(-1, 1))


def difference_cell(trained: list[pd.DataFrame], untrained: list[pd.DataFrame], layer: str) -> str:
    """Trained minus untrained FOI of one layer, paired seed by seed, with the paired t-test's p."""
    paired = spikescope.paired_difference([f.loc[layer, "FOI"] for f in trained],
                                          [f.loc[layer, "FOI"] for f in untrained])
    return f"{interval(paired, digits=2, bounds=(-2, 2))}, p = {paired['p_value']:.3f}"


def loss_cell(frames: list[pd.DataFrame], layer: str, column: str, scale: float) -> str:
    """One loss column of one layer over seeds, mean [95 % CI], times `scale` (100: accuracy points)."""
    return interval(spikescope.summarize([f.loc[layer, column] for f in frames]), scale=scale,
                    digits=1 if scale == 100 else 3)


def per_layer_rows(found: dict, roles: dict[str, str]) -> list[dict]:
    """Per split, measure and layer: FOI of the trained and untrained networks, their paired difference, and the
    trained networks' specific losses of both bands (accuracy in points, KL in nats)."""
    rows = []
    for (split, measure), frames in found.items():
        trained, untrained = frames["trained"], frames["untrained"]
        scale = 100 if measure == "accuracy" else 1  # accuracy in points
        for layer in trained[0].index:
            rows.append({"split": split, "measure": measure, "layer": layer,
                         "FOI trained": foi_cell(trained, layer), "FOI untrained": foi_cell(untrained, layer),
                         "trained − untrained (paired)": difference_cell(trained, untrained, layer),
                         **{f"S {side} (trained)": loss_cell(trained, layer, f"S_{side}", scale) for side in SIDES}})
    return with_roles(rows, roles)


def control_rows(stripes_found: dict, roles: dict[str, str]) -> tuple[list[dict], bool]:
    """Per split and layer, one column per kind of stripes: the layer's FOI over the gratings networks and how many
    of them depend on the stripes' band (`stripes_pass`); and whether all of them do at every depth."""
    rows, passes = [], True
    for split, by_stripes in stripes_found.items():
        cells: dict[str, dict] = {}
        for stripes, frames in by_stripes.items():
            counts = stripes_pass(frames, stripes)
            passes &= bool((counts == len(frames)).all())
            for layer in frames[0].index:
                cells.setdefault(layer, {"split": split, "layer": layer})[f"{stripes} ({STRIPES[stripes][1]})"] = \
                    f"{foi_cell(frames, layer)}; {counts[layer]}/{len(frames)} depend"
        rows += cells.values()
    return with_roles(rows, roles), passes


def write_rows(found: dict, stripes_found: dict, path: Path) -> None:
    """Every network's per-layer losses and FOI, one row per network, seed, split, measure and layer (CSV)."""
    rows = [f.assign(network=network, seed=seed, split=split, measure=measure).reset_index()
            for (split, measure), by_network in found.items() for network, fs in by_network.items()
            for seed, f in enumerate(fs)]
    rows += [f.assign(network=f"gratings, {stripes}", seed=seed, split=split, measure="KL").reset_index()
             for split, by_stripes in stripes_found.items() for stripes, fs in by_stripes.items()
             for seed, f in enumerate(fs)]
    pd.concat(rows).to_csv(path, index=False)


def section(found: dict, stripes_found: dict, verdicts: pd.DataFrame, folder: Path,
            roles: dict[str, str]) -> tuple[str, bool]:
    """The report's functional section (figure, FOI per layer, verdicts, gratings control; functional.csv and
    functional.png written to `folder`), and whether the gratings control passes."""
    write_rows(found, stripes_found, folder / "functional.csv")
    curves = {f"{split} split (Fashion-MNIST)": frames for (split, measure), frames in found.items()
              if measure == "KL"}
    curves["axis split (gratings control)"] = stripes_found["axis"]
    control, passes = control_rows(stripes_found, roles)
    outcome = ("passes: every gratings network depends on its stripes' band at every depth, on both splits" if passes
               else "FAILS: not every gratings network depends on its stripes' band at every depth (see the counts)")
    return f"""## Functional test: on which orientation does the decision depend? (per layer, over seeds)
{figure(curves, folder / "functional.png")}

FOI per layer, mean [95% CI] over seeds; trained − untrained paired seed by seed (p: paired t-test); S = the
specific loss of removing the band: its loss minus its energy-matched controls' (accuracy drop in points, or KL in
nats), mean [95% CI] over seeds. Per-seed values (R, C, S, FOI): functional.csv.

{markdown_table(pd.DataFrame(per_layer_rows(found, roles)))}

### Verdicts per measure, split and reading
{markdown_table(verdicts)}

### Control: the gratings networks (KL)
Per kind of stripes (and the band they live in): FOI mean [95% CI] over the networks, and how many of them depend on
the stripes' band.
{markdown_table(pd.DataFrame(control))}

A network depends on its stripes' band at a layer when removing that band moves its predictions (KL of at least
{NEGLIGIBLE_KL} nats), the band's specific KL effect has its 95% interval over images above 0 and FOI has the
stripes' sign (vertical stripes vary along the width: FOI < 0). The control
{outcome}.
""", passes
