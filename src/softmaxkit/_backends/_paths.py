"""The path switch the torch and JAX backends share: ``with use_path(name): ...``.

Each backend keeps its current path in its module's ``_path`` ("auto" unless a test or
the benchmark forces one of its ``PATHS``) and reads it where it decides; this forces it
for a block and puts the previous one back.
"""

from __future__ import annotations

from types import ModuleType

from .._errors import SoftmaxkitValueError

__all__ = ["UsePath"]

_CURRENT = "_path"  # the backend module's global that holds its current path


class UsePath:
    """``with UsePath(backend_module, PATHS, name): ...`` runs that backend on path ``name``."""

    def __init__(self, backend: ModuleType, paths: tuple[str, ...], name: str) -> None:
        if name not in paths:
            raise SoftmaxkitValueError(f"`name` must be one of {paths}; got {name!r}")
        self.backend, self.name = backend, name

    def __enter__(self) -> None:
        self.previous = getattr(self.backend, _CURRENT)
        setattr(self.backend, _CURRENT, self.name)

    def __exit__(self, *exc: object) -> None:
        setattr(self.backend, _CURRENT, self.previous)
