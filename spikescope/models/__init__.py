"""The model zoo: `build(name, **kwargs)` for every registered architecture."""
from . import compact, resnet  # noqa: F401  (importing registers the architectures)
from .registry import available, build, register

__all__ = ["available", "build", "register"]
