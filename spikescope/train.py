"""Training and evaluation: BPTT through the surrogate, one atomic checkpoint per epoch, exact resume.

Runs are deterministic on the CPU for a given seed: the only randomness is the weight init
(seeded once) and each epoch's shuffling (seeded by `seed` and the epoch number), and the learning
rate is a pure function of the step (a cosine from `lr` to 0 over each cycle), so a run resumed
from its last checkpoint ends with exactly the weights of an uninterrupted run. Exactly, that is,
with one intra-op thread (`OMP_NUM_THREADS=1`): with more, a CPU kernel now and then rounds
differently from one process to the next (1 run in 16 of the bundled CNN at two threads), and a
resumed run then drifts from the uninterrupted one as any two such runs do. A finished run
can be extended: the added epochs form a new cosine cycle that starts again at `lr`.

Under torchrun (N processes) the model is wrapped in DistributedDataParallel (gloo on the CPU,
nccl on CUDA). `batch_size` is the global batch: each process takes its own `batch_size / N` of
every global batch of the epoch's shuffled order (`shuffled_batches`), gradients are averaged
over the processes in rank order, and BatchNorm normalises each process's share while its
running statistics are rank 0's (DDP's buffer sync; SyncBatchNorm would need a GPU). So
a run with N processes is not bit-identical to one with 1 process (each BatchNorm sees other
batches), but it is deterministic for the same N and resumes exactly. Evaluation and tracking
are shared out among the processes and reduced; rank 0 alone writes the checkpoint (which records
the number of processes) and the tables while the others wait, and after every epoch the
processes compare parameter checksums.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from . import distributed
from .atomic import atomic_path, check_folder_creatable, remove_stale_temporaries
from .checkpoint import load_weights, read_checkpoint, save_checkpoint
from .data import ImageSet, load_dataset, make_loader
from .devices import resolve_device
from .errors import SpikescopeError, note
from .models import build
from .models.registry import data_kwargs
from .metrics.firing import FiringRate
from .modes import modes_kept
from .record import SpikeRecorder
from .tracking import track_layers

FIRING_RATE_DEFINITION = "spikes / (T x samples x neurons), pooled over all spiking layers"


@dataclass
class TrainConfig:
    """Everything that determines a training run (stored in the checkpoint as `train_config`)."""

    arch: str = "compact_cnn"
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    T: int = 2
    fsta: bool | str = False  # True or "both", "temporal", "spatial": FSTA (or one branch) before every neuron
    data: str = "fashion-mnist"
    data_root: str | None = None
    epochs: int = 1
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    limit: int | None = None
    test_limit: int | None = None
    seed: int = 0
    device: str = "cpu"
    out: str = "runs/train"
    restart_epochs: list[int] = field(default_factory=list)  # epochs that start a new cosine cycle (extensions)
    track: int = 0  # analyse this many fixed test images before training and after every epoch (tracks.csv)

    def validate(self) -> "TrainConfig":
        """Refuse settings that cannot train, each with a one-line error; returns self."""
        checks = [(self.T >= 1, f"--T must be at least 1, got {self.T}"),
                  (self.epochs >= 1, f"--epochs must be at least 1, got {self.epochs}"),
                  (self.batch_size >= 1, f"--batch-size must be positive, got {self.batch_size}"),
                  (self.lr > 0, f"--lr must be positive, got {self.lr}"),
                  (0 <= self.label_smoothing < 1, f"--label-smoothing must be in [0, 1), got {self.label_smoothing}"),
                  (self.momentum >= 0 and self.weight_decay >= 0, "--momentum and --weight-decay must be >= 0"),
                  (self.optimizer in ("sgd", "adam"), f"unknown optimizer {self.optimizer!r}; choose sgd or adam"),
                  (self.track >= 0, f"--track must be 0 or more images, got {self.track}")]
        for ok, message in checks:
            if not ok:
                raise SpikescopeError(message)
        return self

    @classmethod
    def from_checkpoint(cls, stored: dict[str, Any], source: str) -> "TrainConfig":
        """The configuration saved in a checkpoint's `train_config`."""
        try:
            return cls(**stored)
        except TypeError as error:
            raise SpikescopeError(f"{source} holds a training configuration this spikescope cannot read "
                                  f"({error})") from None


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable, device: torch.device | str = "cpu",
             progress: bool = False) -> dict[str, float]:
    """Accuracy, mean cross-entropy and mean firing rate (`FIRING_RATE_DEFINITION`) of `model` on `batches`, in
    eval mode; every module's own mode is restored afterwards.

    In a process group the batches are shared out as in `analyze` (batch i to process i % N) and the
    sums reduced, so every process returns the numbers of all batches.
    """
    correct = total = 0
    loss_sum = 0.0
    with modes_kept(model), distributed.together("evaluating"), SpikeRecorder(model.eval(),
                                                                            metrics=[FiringRate()]) as recorder:
        bar = tqdm(batches, desc="evaluate", disable=not progress or not distributed.is_main(), leave=False)
        for images, labels in distributed.shard(bar):
            images, labels = images.to(device), labels.to(device)
            logits = model(images)
            loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
            correct += (logits.argmax(1) == labels).sum().item()
            total += len(labels)
    loss_sum, correct, total = distributed.summed(loss_sum, correct, total)
    if total == 0:
        raise SpikescopeError("the evaluation set is empty")
    rates = recorder.metrics[0].all_reduce().compute().layers
    pooled = rates["spikes"].sum() / (rates["T"] * rates["samples"] * rates["neurons"]).sum()
    return {"accuracy": correct / total, "loss": loss_sum / total, "firing_rate": float(pooled), "samples": total}


def _optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


def _dataset_meta(dataset: ImageSet) -> dict[str, Any]:
    return {"name": dataset.name, **dataset.normalisation(), "num_classes": len(dataset.classes),
            "input_shape": list(dataset.images.shape[1:])}


def cosine_lr(peak: float, step: int, steps: int) -> float:
    """The learning rate `step` steps into a cosine cycle of `steps` steps that anneals `peak` to 0."""
    return peak * (1 + math.cos(math.pi * step / steps)) / 2


def cycle_of(config: TrainConfig, epoch: int) -> tuple[int, int]:
    """First and last epoch of the cosine cycle holding `epoch`: one cycle, plus one per extension."""
    starts = sorted({1, *config.restart_epochs})
    start = max(s for s in starts if s <= epoch)
    later = [s for s in starts if s > epoch]
    return start, (later[0] - 1 if later else config.epochs)


def shuffled_batches(size: int, batch_size: int, seed: int, rank: int = 0, processes: int = 1) -> list[list[int]]:
    """Process `rank`'s batches of one epoch: a permutation of `range(size)` drawn from `seed` (the order of
    `make_loader(shuffle=True, seed=seed)`) cut into global batches of `batch_size`, of which each process
    takes its own equal consecutive part. A last partial batch is split equally too; the fewer than
    `processes` images left over sit that epoch out."""
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed)).tolist()
    batches = []
    for start in range(0, size, batch_size):
        share = len(order[start:start + batch_size]) // processes
        if share:
            batches.append(order[start + rank * share:start + (rank + 1) * share])
    return batches


def _resumed_config(state: dict[str, Any], source: str, epochs: int | None, device: str | None) -> TrainConfig:
    """The stored configuration, extended to `epochs` if given; only a finished run can be extended."""
    if "training_state" not in state:
        raise SpikescopeError(f"{source} holds no training state to resume from")
    stored = TrainConfig.from_checkpoint(state["train_config"], source)
    done = state["training_state"]["epoch"]
    total = stored.epochs if epochs is None else epochs
    restarts = list(stored.restart_epochs)
    if done >= stored.epochs and total <= done:
        raise SpikescopeError(f"{source} has finished its {done} epochs; pass --epochs N with N > {done} to extend "
                              "it with a new cosine cycle")
    if total != stored.epochs:
        if done < stored.epochs:
            raise SpikescopeError(f"{source} stopped at epoch {done} of {stored.epochs}: resume it to the end first "
                                  "(without --epochs), then extend it")
        restarts.append(stored.epochs + 1)
    return dataclasses.replace(stored, device=device or stored.device, out=str(Path(source).parent), epochs=total,
                               restart_epochs=restarts)


def train(config: TrainConfig | None = None, resume_from: str | Path | None = None, progress: bool = True,
          epochs: int | None = None) -> Path:
    """Train `config` (or continue the run in checkpoint `resume_from`); returns the checkpoint path.

    The checkpoint `<out>/checkpoint.pt` and the per-epoch `history.csv` are rewritten atomically
    after every epoch. A resumed run keeps its own settings (only `config.device` applies) and
    writes next to `resume_from`; `epochs` larger than a finished run's extends it with a new
    cosine cycle. Under torchrun every process calls this alike and joins the process group itself
    (see the module's docstring); each returns the checkpoint path.
    """
    state = None
    if resume_from is not None:
        state = read_checkpoint(resume_from)
        if distributed.is_main():  # the run's one writer
            _tidy_after_kill(Path(resume_from), state)
        config = _resumed_config(state, str(resume_from), epochs, config.device if config else None)
    if config is None:
        raise SpikescopeError("train needs a TrainConfig or a checkpoint to resume from")
    config.validate()
    distributed.init_from_environment(config.device)
    processes = distributed.world_size()
    if config.batch_size % processes:
        raise SpikescopeError(f"--batch-size {config.batch_size} (the global batch) does not split evenly among "
                              f"{processes} processes: choose a multiple of {processes}")
    if config.track and config.track < processes:
        raise SpikescopeError(f"--track {config.track} gives fewer images than the {processes} processes that share "
                              "them out: track at least one image per process")
    run_folder = check_folder_creatable(config.out, deepest_entry=".checkpoint.pt.XXXXXXXX.tmp")  # atomic_path
    if state is None and (run_folder / "checkpoint.pt").exists():
        raise SpikescopeError(f"--out {run_folder} already holds a run (checkpoint.pt): continue it with --resume "
                              f"{run_folder / 'checkpoint.pt'}, or choose another --out")
    if state is not None:
        trained_with = state["training_state"].get("processes", 1)
        if trained_with != processes:
            so_far = f"{trained_with} process{'' if trained_with == 1 else 'es'}"
            note(f"{resume_from} was trained with {so_far} so far and continues with {processes}: "
                 "a valid run, but not the one an uninterrupted run would have given")
    device = resolve_device(config.device)
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        return _run(config, state, device, progress)
    finally:
        torch.use_deterministic_algorithms(deterministic)


def _arch_kwargs(config: TrainConfig, train_set: ImageSet) -> dict[str, Any]:
    """The architecture's arguments: what follows from the data (channels, classes, image size), then the
    run's own (--arch-kw, which may override them), T and FSTA."""
    return {**data_kwargs(config.arch, train_set.images.shape[1:], len(train_set.classes)), **config.arch_kwargs,
            "T": config.T, "fsta": config.fsta}


def initial_model(config: TrainConfig) -> nn.Module:
    """The network `train(config)` starts from, before any step: the untrained reference of a trained run
    (same architecture, same seed, same initial weights), in evaluation mode on the CPU."""
    train_set = load_dataset(config.data, "train", config.data_root, config.limit, seed=config.seed)
    torch.manual_seed(config.seed)
    return build(config.arch, **_arch_kwargs(config, train_set)).eval()


def _run(config: TrainConfig, state: dict[str, Any] | None, device: torch.device, progress: bool) -> Path:
    rank, processes = distributed.rank(), distributed.world_size()
    progress = progress and distributed.is_main()
    local_batch = config.batch_size // processes
    train_set = load_dataset(config.data, "train", config.data_root, config.limit, seed=config.seed)
    test_set = load_dataset(config.data, "test", config.data_root, config.test_limit, seed=config.seed)
    torch.manual_seed(config.seed)
    arch_kwargs = _arch_kwargs(config, train_set)
    model = build(config.arch, **arch_kwargs).to(device)
    optimizer = _optimizer(config, model)
    steps_per_epoch = len(shuffled_batches(len(train_set), config.batch_size, 0, rank, processes))
    history: list[dict[str, float]] = []
    tracks: list[dict[str, Any]] = []
    first_epoch = 1
    if state is not None:
        load_weights(model, state["state_dict"], "the checkpoint")
        optimizer.load_state_dict(state["training_state"]["optimizer"])
        history, tracks = list(state["history"]), list(state.get("tracks", []))
        first_epoch = state["training_state"]["epoch"] + 1
    network = distributed.data_parallel(model, device)  # what the training steps run through
    out = Path(config.out) / "checkpoint.pt"
    test_batches = make_loader(test_set, local_batch)
    tracked = (make_loader(test_set.subset(config.track), min(local_batch, -(-config.track // processes)))
               if config.track else None)
    if tracked is not None and first_epoch == 1:
        tracks = track_layers(model, tracked, 0, config.T)  # the untrained network: epoch 0
    for epoch in range(first_epoch, config.epochs + 1):
        started = time.perf_counter()
        torch.manual_seed(_epoch_seed(config.seed, epoch))
        loader = DataLoader(train_set, batch_size=None, sampler=shuffled_batches(
            len(train_set), config.batch_size, _epoch_seed(config.seed, epoch), rank, processes))
        start, end = cycle_of(config, epoch)
        first_step, cycle_steps = (epoch - start) * steps_per_epoch, (end - start + 1) * steps_per_epoch

        def lr_at(batch: int) -> float:
            return cosine_lr(config.lr, first_step + batch, cycle_steps)

        train_stats = _train_epoch(network, loader, optimizer, lr_at, config, device,
                                   f"epoch {epoch}/{config.epochs}", progress)
        distributed.share_buffers(model)
        distributed.check_same_weights(model, f"after epoch {epoch}")
        test_stats = evaluate(model, test_batches, device, progress)
        record = {"epoch": epoch, **train_stats, "test_accuracy": test_stats["accuracy"],
                  "test_loss": test_stats["loss"], "test_firing_rate": test_stats["firing_rate"],
                  "seconds": time.perf_counter() - started}
        history.append(record)
        if tracked is not None:
            tracks += track_layers(model, tracked, epoch, config.T)
        if distributed.is_main():
            save_checkpoint({
                "arch": config.arch, "arch_kwargs": arch_kwargs, "T": config.T, "dataset": _dataset_meta(train_set),
                "train_config": dataclasses.asdict(config), "history": history, "tracks": tracks,
                "state_dict": model.state_dict(),
                "training_state": {"epoch": epoch, "optimizer": optimizer.state_dict(), "processes": processes},
            }, out)
            _write_tables(out, history, tracks)
        distributed.barrier()
        if progress:
            tqdm.write(f"epoch {epoch}: train loss {record['train_loss']:.4f}, train acc {record['train_accuracy']:.2%}"
                       f" | test acc {record['test_accuracy']:.2%}, firing rate {record['test_firing_rate']:.4f}"
                       f" ({FIRING_RATE_DEFINITION}) | {record['seconds']:.0f} s")
    return out


def _tidy_after_kill(checkpoint: Path, state: dict[str, Any]) -> None:
    """A run killed outright may have left half-written files and tables one epoch behind its checkpoint."""
    for name in (checkpoint.name, "history.csv", "tracks.csv"):
        remove_stale_temporaries(checkpoint.with_name(name))
    _write_tables(checkpoint, state["history"], state.get("tracks", []))


def _write_tables(checkpoint: Path, history: list[dict[str, float]], tracks: list[dict[str, Any]]) -> None:
    """`history.csv` (one row per finished epoch) and, when tracking, `tracks.csv` (one row per epoch and
    layer) next to the checkpoint, as in the checkpoint's `history` and `tracks`."""
    tables = {"history.csv": history, **({"tracks.csv": tracks} if tracks else {})}
    for name, rows in tables.items():
        with atomic_path(checkpoint.with_name(name)) as tmp:
            pd.DataFrame(rows).to_csv(tmp, index=False)


def _train_epoch(model: nn.Module, loader, optimizer: torch.optim.Optimizer, lr_at: Callable[[int], float],
                 config: TrainConfig, device: torch.device, description: str, progress: bool) -> dict[str, float]:
    """One pass over `loader`; batch `i` trains with learning rate `lr_at(i)`. Loss and accuracy are over the
    batches of every process."""
    model.train()
    loss_sum = 0.0
    correct = seen = 0
    bar = tqdm(loader, desc=description, disable=not progress, unit="batch")
    for index, (images, labels) in enumerate(bar):
        images, labels = images.to(device), labels.to(device)
        logits = model(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(index)
        optimizer.step()
        loss_sum += loss.item() * len(labels)
        correct += (logits.argmax(1) == labels).sum().item()
        seen += len(labels)
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.1%}", refresh=False)
    loss_sum, correct, seen = distributed.summed(loss_sum, correct, seen)
    return {"train_loss": loss_sum / seen, "train_accuracy": correct / seen}
