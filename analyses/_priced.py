"""One network's operation and memory counts priced under every energy model spikescope has: one pass counts them
(`Energy`), each model prices the same counts, so the models differ only in what they charge."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

import spikescope
from spikescope.energy.models import ENERGY_MODELS
from spikescope.metrics.energy import Energy
from _report import interval, verdict


def priced_table(metric: Energy, model: str) -> pd.DataFrame:
    """The energy table of `metric`'s counts priced under energy model `model`."""
    again = Energy(model)
    again.load_state_dict(metric.state_dict())
    return again.compute().layers


def energy_by_model(paths: dict[str, list[Path]], loader, device: str = "cpu") -> pd.DataFrame:
    """Energy per image (pJ), with and without FSTA's own rows, of every arm's seeds under every energy model:
    one row per arm, seed and model."""
    rows = []
    for arm, runs in paths.items():
        for seed, path in enumerate(runs):
            metric = Energy("lemaire2022")  # the counts are the same under every model
            result = spikescope.analyze(spikescope.load(path)[0], loader, device=device,
                                        metrics=[spikescope.FiringRate(), metric])
            for model in ENERGY_MODELS:
                table = priced_table(metric, model)
                total = dataclasses.replace(result, energy=table).energy_totals()["energy_pj_per_image"]
                fsta = float(table.loc[table["kind"] == "fsta", "energy_pj_per_image"].sum())
                rows.append({"arm": arm, "seed": seed, "energy model": model, "energy_pj": total,
                             "energy_pj_without_fsta": total - fsta})
    return pd.DataFrame(rows)


def energy_change_rows(energies: pd.DataFrame, baseline: str = "baseline") -> pd.DataFrame:
    """Per energy model and arm: the paired change of the energy per image against `baseline` (µJ, 95% CI over
    seeds, paired by seed), without FSTA's own rows too, and whether the arm lowers the energy."""
    rows = []
    for (model, arm), group in energies.groupby(["energy model", "arm"], sort=False):
        if arm == baseline:
            continue
        base = energies.query("`energy model` == @model and arm == @baseline").sort_values("seed")
        group = group.sort_values("seed")
        change = spikescope.paired_difference(group["energy_pj"].tolist(), base["energy_pj"].tolist())
        without = spikescope.paired_difference(group["energy_pj_without_fsta"].tolist(), base["energy_pj"].tolist())
        percent = 100 * change["mean"] / base["energy_pj"].mean()
        rows.append({"energy model": model, "arm − baseline": arm,
                     "baseline (µJ)": f"{base['energy_pj'].mean() / 1e6:.2f}",
                     "change (µJ)": f"{interval(change, 1e-6, 3)} ({percent:+.1f} %)",
                     "without FSTA's own (µJ)": interval(without, 1e-6, 3),
                     "energy lowered": verdict(change["ci_low"], change["ci_high"], -1)})
    return pd.DataFrame(rows)
