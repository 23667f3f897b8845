"""qtrain-qiskit: Quantum-Train on Qiskit.

Importing the package is cheap and imports no quantum library: `targets` (the classical models)
must load where Qiskit is absent. The quantum pieces are imported on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "build_ansatz": "ansatz",
    "qubits_for": "ansatz",
    "QuantumTrain": "model",
    "build_model": "build",
    "MappingModel": "mapping",
    "ProbabilityQNN": "qnn",
    "VJPTorchConnector": "qnn",
    "Config": "config",
    "train": "trainer",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
