"""The quantum stage of a QT model, in one table: what each stage executes, trains and is built from.

Every control of a comparison changes this stage alone (same target, mapping, trainer, data,
seeds), so each figure stands beside its controls. Adding a stage is one row here: the CLI
choices, `--compare`, the comparison report, the parameter count and the backend checks read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import nn

from .generator import EnergyGenerator, generator_size
from .model import FixedProbabilities, NoCircuit

if TYPE_CHECKING:
    from qiskit import QuantumCircuit


@dataclass(frozen=True)
class StageInputs:
    """What a stage may be built from. ``quantum_layer`` builds the backend (prepared) on demand,
    so the stages that execute no circuit never construct one."""

    circuit: QuantumCircuit
    seed: int
    quantum_layer: Callable[[], nn.Module]


@dataclass(frozen=True)
class Stage:
    name: str
    runs_circuit: bool  # executes the ansatz on the configured backend
    measured: bool  # its P is a distribution the run can sample under --train-shots
    build: Callable[[StageInputs], nn.Module]
    trainable: Callable[[QuantumCircuit], int]  # its trainable parameters, without building it
    entanglement: str | None = None  # forces the ansatz's CNOT pattern
    probability_input: bool = True  # the mapping reads a feature of P
    refuses: tuple[str, ...] = ()  # circuit keys it cannot honour: a non-default value is an error


def _angles(circuit: QuantumCircuit) -> int:
    return circuit.num_parameters


def _nothing(circuit: QuantumCircuit) -> int:
    return 0


STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage("trained", True, True, lambda s: s.quantum_layer(), _angles),  # the trained circuit
        Stage(  # the circuit frozen at its initial angles
            "frozen",
            True,
            True,
            lambda s: s.quantum_layer().requires_grad_(False),
            _nothing,
        ),
        Stage(  # a fixed Dirichlet(1) probability vector per seed (no circuit)
            "random_vector",
            False,
            False,
            lambda s: FixedProbabilities(s.circuit.num_qubits, s.seed),
            _nothing,
        ),
        Stage(  # the ansatz without CNOTs, trained
            "separable",
            True,
            True,
            lambda s: s.quantum_layer(),
            _angles,
            entanglement="none",
        ),
        Stage(  # a classical energy model of P with the circuit's parameter count, trained (no circuit)
            "classical_generator",
            False,
            True,
            lambda s: EnergyGenerator(s.circuit.num_qubits, s.circuit.num_parameters),
            lambda circuit: generator_size(circuit.num_qubits, circuit.num_parameters),
            refuses=("entanglement", "init", "init_scale"),
        ),
        Stage(  # the mapping sees the basis bits only
            "none",
            False,
            False,
            lambda s: NoCircuit(),
            _nothing,
            probability_input=False,
        ),
    )
}

QUANTUM_STAGES = tuple(STAGES)
NO_CIRCUIT = tuple(name for name, stage in STAGES.items() if not stage.runs_circuit)
