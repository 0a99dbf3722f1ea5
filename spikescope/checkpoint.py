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
  tracks              optional (train --track K): one dict per epoch (0 = untrained) and layer:
                      firing rate, orientation indices, mean similarity across timesteps
  state_dict          model weights and buffers
  training_state      optional: {"epoch", "optimizer", "processes"}, what `--resume` needs (the learning rate
                      follows from the epoch; "processes" is how many trained it, see spikescope.distributed;
                      files of spikescope 0.1 also hold a "scheduler" state, unused)
"""
from __future__ import annotations

import importlib
import pickle
from importlib import resources
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from . import __version__
from .atomic import atomic_path
from .errors import SpikescopeError, describe, warn
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


def load_file(path: str | Path, trust_pickle: bool = False) -> Any:
    """`torch.load` a file with `weights_only=True`; bad files become one-line errors.

    A file that holds pickled Python objects (a whole saved model) is refused unless
    `trust_pickle`, because unpickling runs whatever code the file names.
    """
    path = check_model_file(path)
    check_pytorch_file(path)
    try:
        with warnings.catch_warnings():  # torch warns about odd pickle protocols in corrupt files; we report instead
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if not _names_python_objects(path):
            raise SpikescopeError(f"{path} is a corrupt PyTorch file ({describe(error)})") from None
    except Exception as error:  # truncated zips, random bytes and bad pickles raise many types; all are bad input
        raise SpikescopeError(f"{path} is truncated or corrupt ({describe(error)})") from None
    if not trust_pickle:
        raise SpikescopeError(f"{path} holds pickled Python objects, and unpickling can run arbitrary code: if you "
                              "trust its source pass --trust-pickle (trust_pickle=True), or save model.state_dict() "
                              "and load it with --arch")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # the user's own classes may be missing or broken
        raise SpikescopeError(f"cannot unpickle {path} ({describe(error)})") from None


MODEL_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")


def check_model_file(path: str | Path) -> Path:
    """`path` as a Path if it is a file; otherwise a one-line error, which for a folder names the file to pass."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise SpikescopeError(f"checkpoint not found: {path}")
    inside = sorted(p for p in path.iterdir() if p.suffix in MODEL_SUFFIXES and p.is_file())
    example = path / "checkpoint.pt" if (path / "checkpoint.pt").is_file() else (inside[0] if inside else None)
    raise SpikescopeError(f"{path} is a folder; pass the checkpoint file inside it" + (
        f", such as {example}" if example else f" (it holds no {', '.join(MODEL_SUFFIXES)} file)"))


ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # torch.save's default zip container (a local header, or empty)
PICKLE_MAGIC = b"\x80"  # the legacy (pre-1.6) format starts with a pickle protocol opcode
OTHER_FORMATS = {b"\x93NUMPY": "a NumPy .npy array", b"\x89HDF": "an HDF5 file (Keras or h5py)",
                 b"{": "a JSON or text file"}


def check_pytorch_file(path: Path) -> None:
    """Refuse, in one line, a file that cannot be a PyTorch checkpoint, naming what it is where that is known.

    A zip container is checked for its central directory (present only in complete files) and for
    the `data.pkl` every `torch.save` archive holds, so truncation is named as such.
    """
    with open(path, "rb") as f:
        head = f.read(9)
    if head.startswith(ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            raise SpikescopeError(f"{path} is truncated or corrupt: not a complete PyTorch checkpoint (its zip "
                                  "directory is missing; was the copy cut short?)") from None
        if not any(name.endswith("data.pkl") for name in names):
            raise SpikescopeError(f"{path} is a zip archive but not a PyTorch checkpoint (no data.pkl inside)")
        return
    if head.startswith(PICKLE_MAGIC):
        return
    if head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < (1 << 32):  # a u64 header length, then JSON
        what = "a safetensors file (load it with safetensors, then torch.save the state dict)"
    else:
        what = next((name for magic, name in OTHER_FORMATS.items() if head.startswith(magic)), None)
        if what is None and head and all(32 <= b < 127 or b in b"\t\r\n" for b in head):
            what = "a text file"
    raise SpikescopeError(f"{path} is not a PyTorch checkpoint" + (f": it looks like {what}" if what else ""))


def _names_python_objects(path: Path) -> bool:
    """True if a file that `weights_only` refused names Python globals (a pickled object, not corruption)."""
    try:
        return bool(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # not a zip checkpoint at all
        return False


FIELD_TYPES = {"format_version": int, "arch": str, "arch_kwargs": dict, "T": int, "dataset": dict,
               "state_dict": dict, "train_config": dict, "history": list, "tracks": list, "training_state": dict}


def validate_checkpoint(checkpoint: Any, source: str) -> dict[str, Any]:
    """Check that a loaded object is a complete spikescope checkpoint this version can read."""
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise SpikescopeError(f"{source} is a PyTorch file but not a spikescope checkpoint (no format marker)")
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise SpikescopeError(f"{source} is an incomplete spikescope checkpoint (missing {', '.join(missing)})")
    for key, expected in FIELD_TYPES.items():
        if key in checkpoint and not isinstance(checkpoint[key], expected):
            raise SpikescopeError(f"{source} is a corrupt spikescope checkpoint: {key} is a "
                                  f"{type(checkpoint[key]).__name__}, not a {expected.__name__}")
    if checkpoint["T"] < 1 or _state_dict_in(checkpoint["state_dict"]) is not checkpoint["state_dict"]:
        raise SpikescopeError(f"{source} is a corrupt spikescope checkpoint (bad T or state_dict)")
    if checkpoint["format_version"] > FORMAT_VERSION:
        raise SpikescopeError(f"{source} has checkpoint format {checkpoint['format_version']}; this spikescope "
                              f"({__version__}) reads up to {FORMAT_VERSION}: upgrade spikescope")
    return checkpoint


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and validate a spikescope checkpoint safely; every kind of bad file is a one-line error."""
    return validate_checkpoint(load_file(path), str(path))


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


def import_factory(spec: str) -> Callable[..., nn.Module]:
    """The model constructor named by `spec`: 'package.module:callable', or a spikescope registry name."""
    if ":" not in spec:
        return lambda **kwargs: build(spec, **kwargs)
    module_name, _, attribute = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except ImportError as error:
        raise SpikescopeError(f"--arch {spec}: cannot import {module_name} ({describe(error)})") from None
    except AttributeError:
        raise SpikescopeError(f"--arch {spec}: {module_name} has no attribute {attribute!r}") from None
    if not callable(factory):
        raise SpikescopeError(f"--arch {spec}: {attribute} is not callable")
    return factory


def _state_dict_in(obj: Any) -> dict[str, torch.Tensor] | None:
    """`obj` itself if it is a state dict, or the state dict under its 'state_dict' / 'model' key."""
    for candidate in (obj, *(obj.get(k) for k in ("state_dict", "model") if isinstance(obj, dict))):
        if isinstance(candidate, dict) and candidate and all(
                isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in candidate.items()):
            return candidate
    return None


def load(path: str | Path, device: str | torch.device = "cpu", arch: str | None = None,
         arch_kwargs: dict[str, Any] | None = None, T: int | None = None,
         trust_pickle: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """Any model file spikescope accepts, as `(model in eval mode on device, metadata)`.

    - a spikescope checkpoint: architecture, T and dataset come from inside;
    - a plain state dict (or a dict holding one under 'state_dict' / 'model'): `arch` names the
      constructor ('package.module:factory' or a registry name), called with `arch_kwargs`;
    - a whole pickled model: only with `trust_pickle=True`, since unpickling runs code.
    The metadata (a spikescope checkpoint's keys without the weights) always holds "T" (from the
    file, the `T` argument or `model.T`) and "source".
    """
    obj = load_file(path, trust_pickle)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        checkpoint = validate_checkpoint(obj, str(path))
        if arch is not None or arch_kwargs:
            warn(f"{path} is a spikescope checkpoint and names its own architecture ({checkpoint['arch']}); "
                 "--arch and --arch-kw are ignored")
        model = build(checkpoint["arch"], **checkpoint["arch_kwargs"])
        load_weights(model, checkpoint["state_dict"], str(path))
        meta = {k: v for k, v in checkpoint.items() if k not in ("state_dict", "training_state")}
        meta["source"] = "spikescope checkpoint"
    elif isinstance(obj, nn.Module):
        model, meta = obj, {"arch": type(obj).__name__, "source": "pickled model (trusted)"}
    elif (state_dict := _state_dict_in(obj)) is not None:
        if arch is None:
            raise SpikescopeError(f"{path} is a plain state dict: pass --arch package.module:factory (and --T) "
                                  "to say which model it belongs to")
        factory = import_factory(arch)
        try:
            model = factory(**(arch_kwargs or {}))
        except (TypeError, ValueError, RuntimeError) as error:
            raise SpikescopeError(f"--arch {arch}: cannot call it with {arch_kwargs or {}} "
                                  f"({describe(error)})") from None
        if not isinstance(model, nn.Module):
            raise SpikescopeError(f"--arch {arch} returned a {type(model).__name__}, not a torch.nn.Module")
        load_weights(model, state_dict, str(path))
        meta = {"arch": arch, "arch_kwargs": arch_kwargs or {}, "source": "state dict"}
    else:
        raise SpikescopeError(f"{path} holds a {type(obj).__name__}: neither a spikescope checkpoint, a state dict "
                              "nor a model")
    meta["T"] = T or meta.get("T") or getattr(model, "T", None)
    return model.to(device).eval(), meta


BUNDLED_MODELS = {"baseline": "compact_cnn_baseline.pt", "fsta": "compact_cnn_fsta.pt"}


def bundled_checkpoint(name: str = "baseline") -> Path:
    """Path of a demo model shipped with spikescope: 'baseline' or 'fsta' (compact CNN, Fashion-MNIST, T=2)."""
    if name not in BUNDLED_MODELS:
        raise SpikescopeError(f"unknown bundled model {name!r}; choose one of: {', '.join(BUNDLED_MODELS)}")
    return Path(str(resources.files("spikescope") / "bundled" / BUNDLED_MODELS[name]))
