"""The pluggable execution layer: `get_backend(name, **values)`, `available()`, `options_for()`.

Importing this package registers the built-in backends; see `reference.py` for the smallest
complete one.
"""

from . import aer, ibm_runtime, reference, torch_density, torch_statevector  # noqa: F401  (registration side effects)
from .base import Backend, BackendError, JobLedger
from .options import BackendOptions, option
from .registry import (
    available,
    backend_class,
    get_backend,
    options_for,
    register,
    registered,
)

__all__ = [
    "Backend",
    "BackendError",
    "BackendOptions",
    "JobLedger",
    "available",
    "backend_class",
    "get_backend",
    "option",
    "options_for",
    "register",
    "registered",
]
