"""The one definition of the Quantum-Train circuit.

Every executor (the exact torch engine, Aer, IBM Runtime) consumes the `QuantumCircuit` built
here; none re-declares the ansatz.
"""

from __future__ import annotations

import math

import torch
from qiskit.circuit import ParameterVector, QuantumCircuit

ENTANGLEMENTS = ("linear", "circular", "none")


def states_for(num_weights: int, weights_per_state: int = 1) -> int:
    """Basis states that generate ``num_weights`` weights, k per state: ceil(M / k)."""
    return math.ceil(num_weights / weights_per_state)


def qubits_for(num_weights: int, weights_per_state: int = 1) -> int:
    """Smallest N with 2^N >= ceil(M / k): each basis state generates k weights (k = 1: one each)."""
    if num_weights < 1:
        raise ValueError(f"a target model needs at least one weight, got {num_weights}")
    return max(1, math.ceil(math.log2(states_for(num_weights, weights_per_state))))


def build_ansatz(
    num_qubits: int,
    num_blocks: int,
    entanglement: str = "linear",
    *,
    num_weights: int | None = None,
    weights_per_state: int = 1,
) -> QuantumCircuit:
    """Build the parameterized Quantum-Train ansatz.

    Each block is an RY on every qubit followed by a CNOT chain q -> q+1 (``"circular"`` adds the
    wrap-around CNOT from the last qubit to qubit 0; ``"none"`` has no CNOT at all: a product state,
    the separable ablation of the circuit). The circuit is unmeasured: executors decide
    how to obtain the 2^N computational-basis probabilities.

    Parameter order: one ``ParameterVector`` named ``theta`` of length ``num_blocks * num_qubits``;
    ``theta[b * num_qubits + q]`` is the RY angle of qubit ``q`` in block ``b``. Qiskit sorts
    vector elements by index, so ``circuit.parameters`` is in exactly this order.

    ``num_weights`` (the target's M, generated ``weights_per_state`` = k per basis state) is checked
    against the register: 2^N < ceil(M / k) cannot address every weight.
    """
    if num_qubits < 1:
        raise ValueError(f"num_qubits must be >= 1, got {num_qubits}")
    if num_blocks < 1:
        raise ValueError(f"num_blocks must be >= 1, got {num_blocks}")
    if entanglement not in ENTANGLEMENTS:
        raise ValueError(f"entanglement must be one of {', '.join(ENTANGLEMENTS)}, got {entanglement!r}")
    states = states_for(num_weights, weights_per_state) if num_weights is not None else 0
    if 2**num_qubits < states:
        raise ValueError(
            f"{num_qubits} qubits address 2^{num_qubits} = {2**num_qubits} basis states, but the target's "
            f"{num_weights} weights at {weights_per_state} per state need {states}: "
            f"use at least {qubits_for(num_weights, weights_per_state)} qubits"
        )

    theta = ParameterVector("theta", num_blocks * num_qubits)
    circuit = QuantumCircuit(num_qubits, name=f"qt_ansatz_{num_qubits}q_{num_blocks}b")
    for block in range(num_blocks):
        for qubit in range(num_qubits):
            circuit.ry(theta[block * num_qubits + qubit], qubit)
        for qubit in range(num_qubits - 1 if entanglement != "none" else 0):
            circuit.cx(qubit, qubit + 1)
        if entanglement == "circular" and num_qubits > 2:
            circuit.cx(num_qubits - 1, 0)
    return circuit


ANGLE_INITS = ("uniform", "normal")


def initial_angles(count: int, scheme: str, scale: float) -> torch.Tensor:
    """Starting circuit angles from torch's global RNG (seed it for reproducible runs)."""
    if scheme == "normal":
        return torch.randn(count) * scale
    return (torch.rand(count) * 2 - 1) * scale
