"""Gradient methods for circuit probabilities, on the Qiskit side (numpy, no torch).

Training only needs the vector-Jacobian product g . dP/dtheta. `adjoint` asks the backend for it
directly (one reverse pass). `param_shift` builds all 2P shifted parameter sets and sends them to
the backend in one batched call, then contracts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter

from backends import Backend

SHIFT_GATES = ("rx", "ry", "rz", "p")  # exp(-i theta G / 2) with G^2 = 1, up to a global phase


class GradientMethod(ABC):
    """How dP/dtheta is obtained for one parameter vector."""

    name: str

    def check(self, circuit: QuantumCircuit, backend: Backend) -> None:  # noqa: B027 - optional hook
        """Refuse a circuit or backend this method cannot differentiate, before anything runs."""

    @abstractmethod
    def jacobian(self, circuit: QuantumCircuit, backend: Backend, values: np.ndarray) -> np.ndarray:
        """dP/dtheta of shape (2^N, P) at ``values`` of shape (P,)."""

    def vjp(self, circuit: QuantumCircuit, backend: Backend, values: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """g . dP/dtheta of shape (P,) for ``grad`` of shape (2^N,)."""
        return grad @ self.jacobian(circuit, backend, values)


class ParamShiftGradient(GradientMethod):
    """Exact two-term shift rule; unbiased under shot noise. All 2P circuits in one backend call."""

    name = "param_shift"

    def check(self, circuit: QuantumCircuit, backend: Backend) -> None:
        uses: dict[Parameter, int] = {p: 0 for p in circuit.parameters}
        for instruction in circuit.data:
            for value in instruction.operation.params:
                if not hasattr(value, "parameters"):
                    continue
                if instruction.operation.name not in SHIFT_GATES or value not in uses:
                    raise ValueError(
                        f"param_shift needs every parameter alone in one of {', '.join(SHIFT_GATES)}; "
                        f"found {instruction.operation.name}({value})"
                    )
                uses[value] += 1
        repeated = [p.name for p, count in uses.items() if count != 1]
        if repeated:
            raise ValueError(f"param_shift needs each parameter in exactly one gate; repeated: {repeated[:5]}")

    def jacobian(self, circuit: QuantumCircuit, backend: Backend, values: np.ndarray) -> np.ndarray:
        shifts = np.pi / 2 * np.eye(len(values))
        probs = backend.probabilities(circuit, np.concatenate([values + shifts, values - shifts]))
        plus, minus = np.split(probs, 2)
        return ((plus - minus) / 2).T


class AdjointGradient(GradientMethod):
    """Exact reverse mode: the backend returns g . dP/dtheta from one reverse pass."""

    name = "adjoint"

    def check(self, circuit: QuantumCircuit, backend: Backend) -> None:
        if not backend.supports_vjp:
            raise ValueError(
                f"gradient 'adjoint' needs an exact backend with a reverse pass; {backend.name!r} has none "
                "(use param_shift)"
            )

    def jacobian(self, circuit: QuantumCircuit, backend: Backend, values: np.ndarray) -> np.ndarray:
        # One reverse pass gives one row of the Jacobian; P columns by the (exact) shift rule are
        # far cheaper than 2^N reverse passes. Only stock TorchConnector ever asks for this.
        return ParamShiftGradient().jacobian(circuit, backend, values)

    def vjp(self, circuit: QuantumCircuit, backend: Backend, values: np.ndarray, grad: np.ndarray) -> np.ndarray:
        return backend.vjp(circuit, values[None], grad[None])[0]


GRADIENTS: dict[str, type[GradientMethod]] = {"adjoint": AdjointGradient, "param_shift": ParamShiftGradient}


def get_gradient(name: str) -> GradientMethod:
    """A gradient method by name; unknown names list the known ones."""
    if name not in GRADIENTS:
        raise ValueError(f"unknown gradient {name!r}; available: {', '.join(GRADIENTS)}")
    return GRADIENTS[name]()
