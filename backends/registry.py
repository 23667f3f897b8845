"""Backends by name: one module per executor family, one `register` call per backend.

Third-party packages add backends through the ``qtrain_qiskit.backends`` entry-point group; each
entry point names a module whose import registers its classes.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from importlib.metadata import entry_points
from typing import TypeVar

from .base import Backend
from .options import CONTEXT, BackendOptions

_BACKENDS: dict[str, type[Backend]] = {}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
ENTRY_POINT_GROUP = "qtrain_qiskit.backends"

B = TypeVar("B", bound=type[Backend])


def _check_constructor(cls: type[Backend]) -> None:
    """The constructor takes the ``Options`` object as ``options`` and each context value by its name,
    needs nothing else, and takes no option as a keyword of its own.

    Checked once, at registration, so that a renamed parameter fails loudly instead of a run value
    being dropped on the way from the configuration to the backend, and an option's default is
    written once (in its ``Options`` field), never again as a constructor keyword.
    """
    where = f"backend {cls.name!r}"
    if not (isinstance(cls.Options, type) and issubclass(cls.Options, BackendOptions)):
        raise ValueError(f"{where}: Options must be a BackendOptions dataclass, got {cls.Options!r}")
    options = [f.name for f in dataclasses.fields(cls.Options)]
    clash = sorted(set(options) & set(CONTEXT)) or sorted(set(cls.context) - set(CONTEXT))
    if clash:
        raise ValueError(f"{where}: {clash[0]!r} is not an option name (run values: {', '.join(CONTEXT)})")
    parameters = inspect.signature(cls).parameters
    first = next(iter(parameters.values()), None)
    if first is None or first.name != "options" or first.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD:
        raise ValueError(f"{where}: the constructor's first parameter must be options ({cls.Options.__name__})")
    repeated = [key for key in options if key in parameters]
    if repeated:
        raise ValueError(
            f"{where}: the constructor takes {repeated[0]!r}, which {cls.Options.__name__} declares: "
            "read it from self.options (one default, in the Options field)"
        )
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for key in cls.context:
        if key not in parameters and not takes_any:
            raise ValueError(f"{where}: the constructor takes no {key!r}, which its context declares")
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    for key, parameter in parameters.items():
        if parameter.default is inspect.Parameter.empty and key not in ("options", *cls.context):
            if parameter.kind not in variadic:
                raise ValueError(f"{where}: the constructor needs {key!r}, which neither its options nor context give")


def register(cls: B) -> B:
    """Class decorator adding a backend under ``cls.name``; duplicate or malformed names are refused,
    and so is a constructor that does not take the options the class declares."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"backend name must match {_NAME.pattern}, got {name!r}")
    if name in _BACKENDS and _BACKENDS[name] is not cls:
        raise ValueError(f"backend {name!r} is already registered by {_BACKENDS[name].__qualname__}")
    _check_constructor(cls)
    _BACKENDS[name] = cls
    return cls


_plugins_loaded = False


def _load_plugins() -> None:
    """Import every entry-point plugin once per process (the configuration asks on every Config())."""
    global _plugins_loaded
    if not _plugins_loaded:
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            entry.load()
        _plugins_loaded = True


def available() -> list[str]:
    """Names of every registered backend, sorted."""
    _load_plugins()
    return sorted(_BACKENDS)


def registered() -> dict[str, type[Backend]]:
    """Every registered backend class by name, in registration order (plugins included)."""
    _load_plugins()
    return dict(_BACKENDS)


def backend_class(name: str) -> type[Backend]:
    """The class registered under ``name``; an unknown name lists the known ones."""
    if name not in _BACKENDS:
        _load_plugins()
    if name not in _BACKENDS:
        raise ValueError(f"unknown backend {name!r}; available: {', '.join(available())}")
    return _BACKENDS[name]


def get_backend(name: str, **values: object) -> Backend:
    """The backend registered under ``name``, for scripts and tests: the keys of its ``Options`` make
    (and validate) the options object, the rest (``seed``, ``device``, ...) go to the constructor."""
    cls = backend_class(name)
    keys = {f.name for f in dataclasses.fields(cls.Options)}
    options = cls.Options(**{key: value for key, value in values.items() if key in keys})
    return cls(options, **{key: value for key, value in values.items() if key not in keys})


def options_for(name: str, settings: object) -> BackendOptions:
    """Backend ``name``'s options object made (and so validated) from the same-named attributes of
    ``settings`` (a run's execution section): the one place a backend's options are read from a run."""
    cls = backend_class(name)
    return cls.Options(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(cls.Options)})
