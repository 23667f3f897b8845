"""The minimal reference backend: Qiskit's own `Statevector`, one bound circuit at a time.

Read this first to see the whole backend contract. It is slow (it rebinds and simulates every row
separately) and exists as the independent reference the fast executors are tested against.

A backend with options declares them as an ``Options`` dataclass (`options.option` fields, each default
written there once) and takes that object as its constructor's ``options``; this one has none, so it
keeps `Backend`'s constructor, and its run costs no shots (`Backend.shots_per_circuit` answers 0).
"""

from __future__ import annotations

import numpy as np
from qiskit import QuantumCircuit
from qiskit.quantum_info import Statevector

from .base import Backend
from .registry import register


@register
class QiskitStatevectorBackend(Backend):
    """No options (``Options`` stays the empty `BackendOptions`), no reverse pass, no seed."""

    name = "qiskit_statevector"
    exact = True

    def _probabilities(self, circuit: QuantumCircuit, values: np.ndarray) -> np.ndarray:
        return np.stack([Statevector(circuit.assign_parameters(row)).probabilities() for row in values])
