"""The pluggable execution layer: `get_backend(name, **options)` and `available()`.

Importing this package registers the built-in backends; see `reference.py` for the smallest
complete one.
"""

from . import aer, ibm_runtime, reference, torch_statevector  # noqa: F401  (registration side effects)
from .base import Backend, BackendError, JobLedger
from .registry import available, backend_class, get_backend, register

__all__ = ["Backend", "BackendError", "JobLedger", "available", "backend_class", "get_backend", "register"]
