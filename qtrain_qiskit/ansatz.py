"""The one definition of the Quantum-Train circuit.

Every executor (the exact torch engine, Aer, IBM Runtime) consumes the `QuantumCircuit` built
here; none re-declares the ansatz.
"""

from __future__ import annotations

import math

from qiskit.circuit import ParameterVector, QuantumCircuit

ENTANGLEMENTS = ("linear", "circular", "none")


def qubits_for(num_weights: int) -> int:
    """Smallest N with 2^N >= num_weights: each generated weight needs its own basis state."""
    if num_weights < 1:
        raise ValueError(f"a target model needs at least one weight, got {num_weights}")
    return max(1, math.ceil(math.log2(num_weights)))


def build_ansatz(
    num_qubits: int,
    num_blocks: int,
    entanglement: str = "linear",
    *,
    num_weights: int | None = None,
) -> QuantumCircuit:
    """Build the parameterized Quantum-Train ansatz.

    Each block is an RY on every qubit followed by a CNOT chain q -> q+1 (``"circular"`` adds the
    wrap-around CNOT from the last qubit to qubit 0; ``"none"`` has no CNOT at all: a product state,
    the separable ablation of the circuit). The circuit is unmeasured: executors decide
    how to obtain the 2^N computational-basis probabilities.

    Parameter order: one ``ParameterVector`` named ``theta`` of length ``num_blocks * num_qubits``;
    ``theta[b * num_qubits + q]`` is the RY angle of qubit ``q`` in block ``b``. Qiskit sorts
    vector elements by index, so ``circuit.parameters`` is in exactly this order.

    ``num_weights`` (the target's M) is checked against the register: 2^N < M cannot address
    every weight.
    """
    if num_qubits < 1:
        raise ValueError(f"num_qubits must be >= 1, got {num_qubits}")
    if num_blocks < 1:
        raise ValueError(f"num_blocks must be >= 1, got {num_blocks}")
    if entanglement not in ENTANGLEMENTS:
        raise ValueError(f"entanglement must be one of {', '.join(ENTANGLEMENTS)}, got {entanglement!r}")
    if num_weights is not None and 2**num_qubits < num_weights:
        raise ValueError(
            f"{num_qubits} qubits address 2^{num_qubits} = {2**num_qubits} weights, but the target "
            f"has {num_weights}: use at least {qubits_for(num_weights)} qubits"
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
