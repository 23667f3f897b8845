"""The pluggable execution layer: `get_backend(name, **options)` and `available()`.

Importing this package registers the built-in backends; see `reference.py` for the smallest
complete one.
"""

from . import aer, reference, torch_statevector  # noqa: F401  (registration side effects)
from .base import Backend
from .registry import available, backend_class, get_backend, register

__all__ = ["Backend", "available", "backend_class", "get_backend", "register"]
