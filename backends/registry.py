"""Backends by name: one module per executor family, one `register` call per backend.

Third-party packages add backends through the ``qtrain_qiskit.backends`` entry-point group; each
entry point names a module whose import registers its classes.
"""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from typing import TypeVar

from .base import Backend

_BACKENDS: dict[str, type[Backend]] = {}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
ENTRY_POINT_GROUP = "qtrain_qiskit.backends"

B = TypeVar("B", bound=type[Backend])


def register(cls: B) -> B:
    """Class decorator adding a backend under ``cls.name``; duplicate or malformed names are refused."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"backend name must match {_NAME.pattern}, got {name!r}")
    if name in _BACKENDS and _BACKENDS[name] is not cls:
        raise ValueError(f"backend {name!r} is already registered by {_BACKENDS[name].__qualname__}")
    _BACKENDS[name] = cls
    return cls


def _load_plugins() -> None:
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        entry.load()


def available() -> list[str]:
    """Names of every registered backend, sorted."""
    _load_plugins()
    return sorted(_BACKENDS)


def backend_class(name: str) -> type[Backend]:
    """The class registered under ``name``; an unknown name lists the known ones."""
    if name not in _BACKENDS:
        _load_plugins()
    if name not in _BACKENDS:
        raise ValueError(f"unknown backend {name!r}; available: {', '.join(available())}")
    return _BACKENDS[name]


def get_backend(name: str, **options: object) -> Backend:
    """Instantiate the backend registered under ``name`` with its keyword options."""
    return backend_class(name)(**options)
