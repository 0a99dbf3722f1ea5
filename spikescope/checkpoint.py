"""The spikescope checkpoint: one `torch.save`d dict of plain data, always loaded with `weights_only=True`.

Keys (format version 1):
  format              "spikescope-checkpoint"
  format_version      1
  spikescope_version  version that wrote it
  arch, arch_kwargs   registry name and constructor kwargs (`models.build(arch, **arch_kwargs)`)
  T                   timesteps the model runs
  dataset             {"name", "mean", "std", "num_classes", "input_shape"}
  train_config        the training settings (`TrainConfig` as a dict)
  history             one dict per finished epoch: epoch, train_loss, train_accuracy,
                      test_accuracy, test_firing_rate, seconds
  state_dict          model weights and buffers
  training_state      optional: {"epoch", "optimizer", "scheduler"}, what `--resume` needs
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__
from .atomic import atomic_path
from .errors import SpikescopeError
from .models import build

FORMAT = "spikescope-checkpoint"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "arch", "arch_kwargs", "T", "dataset", "state_dict")


def save_checkpoint(checkpoint: dict[str, Any], path: str | Path) -> Path:
    """Write `checkpoint` atomically (temp file + rename); adds the format markers and version."""
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "spikescope_version": __version__, **checkpoint}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and validate a spikescope checkpoint safely; every kind of bad file is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise SpikescopeError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if "Unsupported global" in str(error):
            raise SpikescopeError(f"{path} holds pickled Python objects, which spikescope does not unpickle "
                                  "(unpickling can run arbitrary code)") from None
        raise SpikescopeError(f"{path} is not a PyTorch file ({_first_line(error)})") from None
    except Exception as error:  # truncated zips, random bytes and bad pickles raise many types; all are bad input
        raise SpikescopeError(f"{path} is not a readable PyTorch file, or it is truncated ({_first_line(error)})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise SpikescopeError(f"{path} is a PyTorch file but not a spikescope checkpoint (no format marker)")
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise SpikescopeError(f"{path} is an incomplete spikescope checkpoint (missing {', '.join(missing)})")
    if checkpoint["format_version"] > FORMAT_VERSION:
        raise SpikescopeError(f"{path} has checkpoint format {checkpoint['format_version']}; this spikescope "
                              f"({__version__}) reads up to {FORMAT_VERSION}: upgrade spikescope")
    return checkpoint


def load_weights(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """`model.load_state_dict(strict=True)` with mismatches reported as one line naming the first keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        raise SpikescopeError(f"weights in {source} do not fit the model: {'; '.join(parts)}")
    wrong_shape = [k for k, v in state_dict.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if wrong_shape:
        k = wrong_shape[0]
        raise SpikescopeError(f"weights in {source} do not fit the model: {k} has shape {tuple(state_dict[k].shape)}, "
                              f"the model needs {tuple(expected[k].shape)}")
    model.load_state_dict(state_dict)


def load(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model stored in a checkpoint, in eval mode on `device`; returns `(model, checkpoint)`."""
    checkpoint = read_checkpoint(path)
    model = build(checkpoint["arch"], **checkpoint["arch_kwargs"])
    load_weights(model, checkpoint["state_dict"], str(path))
    return model.to(device).eval(), checkpoint


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


BUNDLED_MODELS = {"baseline": "compact_cnn_baseline.pt", "fsta": "compact_cnn_fsta.pt"}


def bundled_checkpoint(name: str = "baseline") -> Path:
    """Path of a demo model shipped with spikescope: 'baseline' or 'fsta' (compact CNN, Fashion-MNIST, T=2)."""
    from importlib import resources

    if name not in BUNDLED_MODELS:
        raise SpikescopeError(f"unknown bundled model {name!r}; choose one of: {', '.join(BUNDLED_MODELS)}")
    return Path(str(resources.files("spikescope") / "bundled" / BUNDLED_MODELS[name]))
