"""Training and evaluation: BPTT through the surrogate, one atomic checkpoint per epoch, exact resume.

Runs are deterministic on the CPU for a given seed: the only randomness is the weight init
(seeded once) and each epoch's shuffling (seeded by `seed` and the epoch number), so a run
resumed from its last checkpoint ends with exactly the weights of an uninterrupted run.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .checkpoint import load_weights, read_checkpoint, save_checkpoint
from .data import ImageSet, load_dataset, make_loader
from .errors import SpikescopeError
from .models import build
from .metrics.firing import FiringRate
from .record import SpikeRecorder

FIRING_RATE_DEFINITION = "spikes / (T x samples x neurons), pooled over all spiking layers"


@dataclass
class TrainConfig:
    """Everything that determines a training run (stored in the checkpoint as `train_config`)."""

    arch: str = "compact_cnn"
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    T: int = 2
    fsta: bool = False
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

    def validate(self) -> "TrainConfig":
        """Refuse settings that cannot train, each with a one-line error; returns self."""
        checks = [(self.T >= 1, f"--T must be at least 1, got {self.T}"),
                  (self.epochs >= 1, f"--epochs must be at least 1, got {self.epochs}"),
                  (self.batch_size >= 1, f"--batch-size must be positive, got {self.batch_size}"),
                  (self.lr > 0, f"--lr must be positive, got {self.lr}"),
                  (0 <= self.label_smoothing < 1, f"--label-smoothing must be in [0, 1), got {self.label_smoothing}"),
                  (self.momentum >= 0 and self.weight_decay >= 0, "--momentum and --weight-decay must be >= 0"),
                  (self.optimizer in ("sgd", "adam"), f"unknown optimizer {self.optimizer!r}; choose sgd or adam")]
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


def resolve_device(name: str) -> torch.device:
    """`torch.device(name)`, refusing CUDA when this machine has none."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SpikescopeError("--device cuda was asked for, but no CUDA GPU is available; use --device cpu")
    return device


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable, device: torch.device | str = "cpu",
             progress: bool = False) -> dict[str, float]:
    """Accuracy, mean cross-entropy and mean firing rate (`FIRING_RATE_DEFINITION`) of `model` on `batches`."""
    was_training = model.training
    model.eval()
    correct = total = 0
    loss_sum = 0.0
    try:
        with SpikeRecorder(model, metrics=[FiringRate()]) as recorder:
            for images, labels in tqdm(batches, desc="evaluate", disable=not progress, leave=False):
                images, labels = images.to(device), labels.to(device)
                logits = model(images)
                loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
                correct += (logits.argmax(1) == labels).sum().item()
                total += len(labels)
    finally:
        model.train(was_training)
    if total == 0:
        raise SpikescopeError("the evaluation set is empty")
    rates = recorder.metrics[0].compute().layers
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


def train(config: TrainConfig, resume_from: str | Path | None = None, progress: bool = True) -> Path:
    """Train `config` (or continue the run in checkpoint `resume_from`); returns the checkpoint path.

    The checkpoint `<out>/checkpoint.pt` is rewritten atomically after every epoch; a resumed run
    keeps its own settings (only `config.device` applies) and writes next to `resume_from`.
    """
    state = None
    if resume_from is not None:
        state = read_checkpoint(resume_from)
        if "training_state" not in state:
            raise SpikescopeError(f"{resume_from} holds no training state to resume from")
        stored = TrainConfig.from_checkpoint(state["train_config"], str(resume_from))
        config = dataclasses.replace(stored, device=config.device, out=str(Path(resume_from).parent))
    config.validate()
    device = resolve_device(config.device)
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        return _run(config, state, device, progress)
    finally:
        torch.use_deterministic_algorithms(deterministic)


def _run(config: TrainConfig, state: dict[str, Any] | None, device: torch.device, progress: bool) -> Path:
    train_set = load_dataset(config.data, "train", config.data_root, config.limit, seed=config.seed)
    test_set = load_dataset(config.data, "test", config.data_root, config.test_limit, seed=config.seed)
    torch.manual_seed(config.seed)
    arch_kwargs = {"in_channels": train_set.images.shape[1], "num_classes": len(train_set.classes),
                   **config.arch_kwargs, "T": config.T, "fsta": config.fsta}
    model = build(config.arch, **arch_kwargs).to(device)
    optimizer = _optimizer(config, model)
    steps_per_epoch = -(-len(train_set) // config.batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * steps_per_epoch)
    history: list[dict[str, float]] = []
    first_epoch = 1
    if state is not None:
        load_weights(model, state["state_dict"], "the checkpoint")
        optimizer.load_state_dict(state["training_state"]["optimizer"])
        scheduler.load_state_dict(state["training_state"]["scheduler"])
        history = list(state["history"])
        first_epoch = state["training_state"]["epoch"] + 1
    out = Path(config.out) / "checkpoint.pt"
    test_batches = make_loader(test_set, config.batch_size)
    for epoch in range(first_epoch, config.epochs + 1):
        started = time.perf_counter()
        torch.manual_seed(_epoch_seed(config.seed, epoch))
        loader = make_loader(train_set, config.batch_size, shuffle=True, seed=_epoch_seed(config.seed, epoch))
        train_stats = _train_epoch(model, loader, optimizer, scheduler, config, device,
                                   f"epoch {epoch}/{config.epochs}", progress)
        test_stats = evaluate(model, test_batches, device, progress)
        record = {"epoch": epoch, **train_stats, "test_accuracy": test_stats["accuracy"],
                  "test_loss": test_stats["loss"], "test_firing_rate": test_stats["firing_rate"],
                  "seconds": time.perf_counter() - started}
        history.append(record)
        save_checkpoint({
            "arch": config.arch, "arch_kwargs": arch_kwargs, "T": config.T, "dataset": _dataset_meta(train_set),
            "train_config": dataclasses.asdict(config), "history": history,
            "state_dict": model.state_dict(),
            "training_state": {"epoch": epoch, "optimizer": optimizer.state_dict(),
                               "scheduler": scheduler.state_dict()},
        }, out)
        if progress:
            tqdm.write(f"epoch {epoch}: train loss {record['train_loss']:.4f}, train acc {record['train_accuracy']:.2%}"
                       f" | test acc {record['test_accuracy']:.2%}, firing rate {record['test_firing_rate']:.4f}"
                       f" ({FIRING_RATE_DEFINITION}) | {record['seconds']:.0f} s")
    return out


def _train_epoch(model: nn.Module, loader, optimizer: torch.optim.Optimizer, scheduler, config: TrainConfig,
                 device: torch.device, description: str, progress: bool) -> dict[str, float]:
    model.train()
    loss_sum = 0.0
    correct = seen = 0
    bar = tqdm(loader, desc=description, disable=not progress, unit="batch")
    for images, labels in bar:
        images, labels = images.to(device), labels.to(device)
        logits = model(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        loss_sum += loss.item() * len(labels)
        correct += (logits.argmax(1) == labels).sum().item()
        seen += len(labels)
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.1%}", refresh=False)
    return {"train_loss": loss_sum / seen, "train_accuracy": correct / seen}


def evaluate_checkpoint(path: str | Path, data: str | None = None, data_root: str | None = None,
                        limit: int | None = None, batch_size: int = 256, device: str = "cpu",
                        progress: bool = False) -> dict[str, float]:
    """Accuracy, loss and firing rate of a saved model on a test set (default: the dataset it was trained on)."""
    from .checkpoint import load

    model, checkpoint = load(path, resolve_device(device))
    dataset = load_dataset(data or checkpoint["dataset"]["name"], "test", data_root, limit)
    return evaluate(model, make_loader(dataset, batch_size), device, progress)
