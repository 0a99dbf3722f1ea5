"""Models by name: the name and kwargs stored in a checkpoint rebuild the same network."""
from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence

from torch import nn

from ..errors import SpikescopeError, describe

_FACTORIES: dict[str, Callable[..., nn.Module]] = {}


def register(name: str, factory: Callable[..., nn.Module]) -> None:
    """Make `build(name, **kwargs)` call `factory(**kwargs)`."""
    _FACTORIES[name] = factory


def available() -> list[str]:
    """Names that `build` accepts."""
    return sorted(_FACTORIES)


def build(name: str, **kwargs: Any) -> nn.Module:
    """Construct the registered model `name`; unknown names and bad kwargs are user errors."""
    if name not in _FACTORIES:
        raise SpikescopeError(f"unknown architecture {name!r}; available: {', '.join(available())}")
    try:
        return _FACTORIES[name](**kwargs)
    except (TypeError, ValueError, RuntimeError) as error:  # wrong names, types or sizes of arguments
        raise SpikescopeError(f"cannot build {name!r} with {kwargs}: {describe(error)}") from None


def data_kwargs(name: str, input_shape: Sequence[int], num_classes: int) -> dict[str, Any]:
    """The constructor arguments of architecture `name` that follow from the data `[C, H, W]`: channels and
    classes, and the image size for architectures whose layers depend on it (those that take `image_size`)."""
    height, width = input_shape[1:]
    offered = {"in_channels": input_shape[0], "num_classes": num_classes,
               "image_size": height if height == width else [height, width]}
    accepted = inspect.signature(_FACTORIES[name]).parameters if name in _FACTORIES else {}
    return {key: value for key, value in offered.items() if key in accepted}


def takes_time_first_input(model: nn.Module) -> bool:
    """True for spikescope's own models: each takes `[B, ...]` images (repeated T times inside) or `[T, B, ...]`."""
    return type(model).__module__.startswith(__package__ + ".")
