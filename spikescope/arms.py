"""Paired training: several arms (baseline, FSTA, one FSTA branch) under one recipe, for several seeds.

Every run of a seed shares everything but its arm: the same initial weights of the shared layers, the
same data order, the same schedule. Runs live in `<out>/<arm>/seed<k>/`; a finished run is kept and
skipped, an unfinished one is resumed, so a study continues where it stopped.

    paths = spikescope.train_arms(TrainConfig(data="fashion-mnist", epochs=3), ["baseline", "fsta"], seeds=[0, 1, 2])
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

from .checkpoint import read_checkpoint
from .errors import SpikescopeError
from .train import TrainConfig, train

ARMS = {"baseline": False, "fsta": "both", "fsta-temporal": "temporal", "fsta-spatial": "spatial"}


def run_folder(out: str | Path, arm: str, seed: int) -> Path:
    """Where the run of `arm` with `seed` lives."""
    return Path(out) / arm / f"seed{seed}"


def finished(checkpoint: Path, config: TrainConfig) -> bool:
    """True if `checkpoint` holds a run of `config` that trained all its epochs; an error if it holds another run."""
    state = read_checkpoint(checkpoint)
    stored = {**dataclasses.asdict(TrainConfig()), **state["train_config"]}  # settings added since: defaults
    stored = {k: v for k, v in stored.items() if k not in ("out", "device")}
    wanted = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("out", "device")}
    if stored != wanted:
        differing = sorted(k for k in wanted if stored.get(k) != wanted[k])
        raise SpikescopeError(f"{checkpoint} holds a run with other settings ({', '.join(differing)}); move it away "
                              "or choose another --out")
    return state["training_state"]["epoch"] >= config.epochs


def train_arms(config: TrainConfig, arms: Sequence[str] = ("baseline", "fsta"), seeds: Sequence[int] = (0, 1, 2),
               out: str | Path = "runs/arms", progress: bool = True) -> dict[str, list[Path]]:
    """Train every arm of `ARMS` named in `arms` for every seed with `config`'s recipe; returns the checkpoints
    by arm, in seed order. Finished runs are skipped and unfinished ones resumed. Everything (the arms, the
    seeds, the recipe, the runs already there) is checked before the first run starts."""
    check_arms(arms, seeds)
    config.validate()
    runs = [(arm, dataclasses.replace(config, fsta=ARMS[arm], seed=seed, out=str(run_folder(out, arm, seed))))
            for seed in seeds for arm in arms]  # seed-major: an interrupted study has whole pairs to compare
    done = {run.out: finished(Path(run.out) / "checkpoint.pt", run) for _, run in runs
            if (Path(run.out) / "checkpoint.pt").exists()}
    paths: dict[str, list[Path]] = {}
    for arm, run in runs:
        checkpoint = Path(run.out) / "checkpoint.pt"
        if run.out not in done:
            train(run, progress=progress)
        elif not done[run.out]:
            train(run, resume_from=checkpoint, progress=progress)
        paths.setdefault(arm, []).append(checkpoint)
    return paths


def check_arms(arms: Sequence[str], seeds: Sequence[int]) -> None:
    """One-line errors for unknown or repeated arms and for missing or repeated seeds: a repeated arm would
    be compared with itself, which gives statistics that mean nothing."""
    unknown = [arm for arm in arms if arm not in ARMS]
    if unknown or not arms:
        raise SpikescopeError(f"unknown arm {unknown[0] if unknown else '(none)'}; choose from {', '.join(ARMS)}")
    twice = next((arm for arm in arms if list(arms).count(arm) > 1), None)
    if twice is not None:
        raise SpikescopeError(f"--arms names {twice} twice; name each arm once")
    if not seeds or len(set(seeds)) != len(seeds):
        raise SpikescopeError(f"give at least one seed, each once; got {list(seeds)}")
