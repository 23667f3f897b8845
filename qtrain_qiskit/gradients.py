"""Gradient methods for circuit probabilities, on the Qiskit side (numpy, no torch): their names,
their implementations, and which one a backend runs (`gradient_method`).

Training only needs the vector-Jacobian product g . dP/dtheta. `adjoint` asks the backend for it
directly (one reverse pass). `param_shift` builds all 2P shifted parameter sets and sends them to
the backend in one batched call, then contracts. `spsa` estimates it from 2 circuits per resample,
whatever P is: the method for hardware budgets.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter

from .backends import Backend, backend_class

SHIFT_GATES = ("rx", "ry", "rz", "p")  # exp(-i theta G / 2) with G^2 = 1, up to a global phase


class GradientMethod(ABC):
    """How dP/dtheta is obtained for one parameter vector."""

    name: str

    def check(self, circuit: QuantumCircuit, backend: Backend) -> None:  # noqa: B027 - optional hook
        """Refuse a circuit or backend this method cannot differentiate, before anything runs."""

    @abstractmethod
    def circuits_per_step(self, num_params: int) -> int:
        """Circuit executions one gradient costs (for shot budgets), besides the forward pass."""

    @abstractmethod
    def jacobian(self, circuit: QuantumCircuit, backend: Backend, values: np.ndarray) -> np.ndarray:
        """dP/dtheta of shape (2^N, P) at ``values`` of shape (P,)."""

    def vjp(self, circuit: QuantumCircuit, backend: Backend, values: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """g . dP/dtheta of shape (P,) for ``grad`` of shape (2^N,)."""
        return grad @ self.jacobian(circuit, backend, values)

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to continue this method's random sequence (none for exact rules)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 - stateless by default
        """Continue from `state_dict`'s output."""


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

    def circuits_per_step(self, num_params: int) -> int:
        return 2 * num_params

    def jacobian(self, circuit: QuantumCircuit, backend: Backend, values: np.ndarray) -> np.ndarray:
        shifts = np.pi / 2 * np.eye(len(values))
        probs = backend.probabilities(circuit, np.concatenate([values + shifts, values - shifts]))
        plus, minus = np.split(probs, 2)
        return ((plus - minus) / 2).T


class AdjointGradient(GradientMethod):
    """Exact reverse mode: the backend returns g . dP/dtheta from one reverse pass."""

    name = "adjoint"

    def check(self, circuit: QuantumCircuit, backend: Backend) -> None:
        gradient_method(type(backend), self.name)  # refuses a backend without a reverse pass

    def circuits_per_step(self, num_params: int) -> int:
        return 0  # the reverse pass is classical simulation work, not circuit executions

    def jacobian(self, circuit: QuantumCircuit, backend: Backend, values: np.ndarray) -> np.ndarray:
        # One reverse pass gives one row of the Jacobian; P columns by the (exact) shift rule are
        # far cheaper than 2^N reverse passes. Only stock TorchConnector ever asks for this.
        return ParamShiftGradient().jacobian(circuit, backend, values)

    def vjp(self, circuit: QuantumCircuit, backend: Backend, values: np.ndarray, grad: np.ndarray) -> np.ndarray:
        return backend.vjp(circuit, values[None], grad[None])[0]


class SPSAGradient(GradientMethod):
    """Simultaneous-perturbation estimate from 2 circuits per resample, averaged over resamples.

    Directions are Rademacher (+-1 per angle); the perturbation shrinks as c_k = c / (k + 1)^decay
    with the step k. Under shot noise the difference P(theta + c D) - P(theta - c D) must stand out
    of a sampling error of order sqrt(P / shots), so c is a tenth of a radian, not the 1e-6 of
    qiskit-ml's SPSA defaults (meant for exact simulators, where such a c measures only noise).
    """

    name = "spsa"

    def __init__(
        self, perturbation: float = 0.15, decay: float = 0.101, resamples: int = 1, seed: int | None = None
    ) -> None:
        self.perturbation, self.decay, self.resamples = perturbation, decay, resamples
        self.rng = np.random.default_rng(seed)
        self.step = 0

    def circuits_per_step(self, num_params: int) -> int:
        return 2 * self.resamples

    def state_dict(self) -> dict[str, Any]:
        # the step sets the perturbation's decay, the generator the directions
        return {"step": self.step, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step, self.rng.bit_generator.state = state["step"], state["rng"]

    def _differences(
        self, circuit: QuantumCircuit, backend: Backend, values: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        c = self.perturbation / (self.step + 1) ** self.decay
        self.step += 1
        directions = self.rng.choice([-1.0, 1.0], size=(self.resamples, len(values)))
        probs = backend.probabilities(circuit, np.concatenate([values + c * directions, values - c * directions]))
        plus, minus = np.split(probs, 2)
        return (plus - minus) / (2 * c), directions  # (R, 2^N), (R, P); 1 / D_i = D_i for +-1

    def jacobian(self, circuit: QuantumCircuit, backend: Backend, values: np.ndarray) -> np.ndarray:
        differences, directions = self._differences(circuit, backend, values)
        return differences.T @ directions / self.resamples

    def vjp(self, circuit: QuantumCircuit, backend: Backend, values: np.ndarray, grad: np.ndarray) -> np.ndarray:
        differences, directions = self._differences(circuit, backend, values)
        return (differences @ grad) @ directions / self.resamples


GRADIENTS: dict[str, type[GradientMethod]] = {
    "adjoint": AdjointGradient,
    "param_shift": ParamShiftGradient,
    "spsa": SPSAGradient,
}


def get_gradient(name: str, **options: object) -> GradientMethod:
    """A gradient method by name with its options; unknown names list the known ones.

    ``auto`` is not a method: `gradient_method` resolves it for a backend first.
    """
    if name not in GRADIENTS:
        raise ValueError(f"unknown gradient {name!r}; available: {', '.join(GRADIENTS)}")
    return GRADIENTS[name](**options)


def gradient_method(backend: str | type[Backend], requested: str = "auto") -> str:
    """The gradient a run on ``backend`` uses when ``requested`` is asked for, or a one-line refusal.

    ``auto`` is the exact reverse pass (``adjoint``) where the backend has one, parameter shift
    otherwise; ``param_shift`` and ``spsa`` need only probabilities, so every backend runs them.
    """
    cls = backend_class(backend) if isinstance(backend, str) else backend
    if requested == "auto":
        return "adjoint" if cls.supports_vjp() else "param_shift"
    if requested not in GRADIENTS:
        raise ValueError(f"grad: {requested!r} is not one of auto, {', '.join(GRADIENTS)}")
    if requested == "adjoint" and not cls.supports_vjp():
        raise ValueError(
            f"grad: adjoint needs an exact backend with a reverse pass; {cls.name} has none (use param_shift or spsa)"
        )
    return requested


def for_backend(gradient: str | GradientMethod, backend: Backend) -> GradientMethod:
    """A method object for ``gradient`` on ``backend``: a name (``auto`` too) as `gradient_method` answers."""
    return get_gradient(gradient_method(type(backend), gradient)) if isinstance(gradient, str) else gradient
