"""Train/eval modes of a model's modules, saved and restored, so a helper that switches modes leaves each module
as it found it (a frozen BatchNorm in a training network stays frozen)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import nn


@contextmanager
def modes_kept(model: nn.Module) -> Iterator[None]:
    """Inside the block modes may change at will; afterwards (also after an exception) every module of `model` is
    back in its own mode, not in its parent's."""
    modes = {module: module.training for module in model.modules()}
    try:
        yield
    finally:
        for module, training in modes.items():
            module.training = training
