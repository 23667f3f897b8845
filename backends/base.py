"""The one interface every executor implements.

A backend turns a parameterized Qiskit circuit and a batch of parameter values into the 2^N
computational-basis probabilities. It knows nothing about torch training: the QNN
(`qtrain_qiskit.qnn`) is the only place where backends and autograd meet.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Protocol

import numpy as np
from qiskit import QuantumCircuit

from .options import BackendOptions, ShotsOptions


class BackendError(RuntimeError):
    """Execution cannot go on (no account, device too small, job failed after retries)."""


class JobLedger(Protocol):
    """Where paid executions record their job ids, so that a resumed run fetches instead of re-paying."""

    def lookup(self, key: str) -> str | None:
        """The job id recorded for a request digest, if any."""

    def record(self, key: str, job_id: str, info: dict[str, Any]) -> None:
        """Persist ``job_id`` for ``key`` before its result is awaited."""


class Backend(ABC):
    """Executes a circuit and returns outcome probabilities in Qiskit's little-endian order.

    Subclasses set ``name`` (the registry key) and ``exact`` (True when probabilities carry no
    shot noise), implement `_probabilities`, and may implement `_vjp` for exact reverse-mode
    gradients. ``Options`` declares the configuration keys: the constructor takes one ``Options``
    object (kept as ``self.options``, each default written only in its field) and, as keywords, the
    run values ``context`` names (seed, torch device, job ledger); `register` refuses a constructor
    that disagrees. What a run costs (`shots_per_circuit`, `calibration_shots`) is asked of the
    class with the options, before anything is built. Constructors stay cheap: per-circuit
    preparation (transpiling, compiling) happens lazily on first use and is cached, so it runs once
    per run, not once per step.
    """

    name: ClassVar[str]
    Options: ClassVar[type[BackendOptions]] = BackendOptions
    context: ClassVar[tuple[str, ...]] = ()  # names from `options.CONTEXT` the constructor takes
    exact: ClassVar[bool] = True
    noisy: ClassVar[bool] = False  # exact probabilities of a noisy circuit (not the ideal ones)
    paid: ClassVar[bool] = False  # executions cost money or queue time: checkpoint every step
    default_max_shots: ClassVar[int | None] = None  # shot budget applied when none is given
    # Probabilities as differentiable torch operations (`torch_probabilities(circuit, values)`):
    # the QNN then skips numpy and the connector, and autograd is the adjoint gradient.
    torch_native: ClassVar[bool] = False
    # The widest circuit it can run (memory, not devices: those are checked in `prepare`), and why.
    max_qubits: ClassVar[int | None] = None
    max_qubits_reason: ClassVar[str] = "runs circuits"
    # The generator a sampling backend draws its shots from; a state_dict does not hold it, so
    # checkpoints save it through `random_state` and a resumed run draws what an uninterrupted one would.
    rng: np.random.Generator | None = None

    def __init__(self, options: BackendOptions | None = None) -> None:
        """A backend run with ``options`` (its ``Options`` defaults when None); subclasses taking run values
        add them as keywords after it."""
        options = self.Options() if options is None else options
        if not isinstance(options, self.Options):
            raise TypeError(f"backend {self.name!r} takes {self.Options.__name__}, got {type(options).__name__}")
        self.options = options

    def random_state(self) -> dict[str, Any] | None:
        """The sampling generator's state (None for a backend that draws nothing)."""
        return None if self.rng is None else self.rng.bit_generator.state

    def set_random_state(self, state: dict[str, Any] | None) -> None:
        if self.rng is not None and state is not None:
            self.rng.bit_generator.state = state

    @classmethod
    def from_options(cls, options: BackendOptions, **context: Any) -> Backend:
        """The backend for validated ``options`` and the run values in ``context`` it declares."""
        return cls(options, **{key: context[key] for key in cls.context if key in context})

    # --- what a run costs, asked of the class before anything is built (the shot budget and its cap)
    @classmethod
    def shots_per_circuit(cls, options: BackendOptions) -> int:
        """Shots one circuit execution draws under ``options``: the shared ``shots`` option where the
        backend reads it, else 0 (a sampling backend with its own notion of shots answers here)."""
        return options.shots if isinstance(options, ShotsOptions) else 0

    @classmethod
    def calibration_shots(cls, options: BackendOptions, measured_qubits: int) -> int:
        """Shots spent once per process before the run, calibrating ``measured_qubits`` (readout
        mitigation); none unless the backend calibrates."""
        return 0

    def prepare(self, circuit: QuantumCircuit) -> object:  # noqa: B027 - optional hook
        """Resolve devices and credentials and compile ``circuit``, before any execution.

        Called once when a run is set up, so that a missing account, a device with too few
        qubits or an uncompilable circuit fails before anything is spent.
        """

    def probabilities(self, circuit: QuantumCircuit, parameter_values: np.ndarray) -> np.ndarray:
        """Return probabilities of shape (batch, 2^num_qubits) for values of shape (batch, P).

        P is ``circuit.num_parameters`` and columns follow ``circuit.parameters`` order.
        """
        values = self._check_values(circuit, parameter_values)
        return self._probabilities(circuit, values)

    @classmethod
    def supports_vjp(cls) -> bool:
        """Whether `vjp` is available (exact reverse-mode gradient, the `adjoint` method)."""
        return cls._vjp is not Backend._vjp

    def vjp(self, circuit: QuantumCircuit, parameter_values: np.ndarray, grad_output: np.ndarray) -> np.ndarray:
        """Vector-Jacobian product sum_k g[b, k] dP[b, k]/dtheta[b, j], shape (batch, P).

        Training needs only this product, which one reverse pass gives, never the full
        (batch, 2^N, P) Jacobian.
        """
        values = self._check_values(circuit, parameter_values)
        grad = np.asarray(grad_output, dtype=np.float64).reshape(len(values), 2**circuit.num_qubits)
        return self._vjp(circuit, values, grad)

    @abstractmethod
    def _probabilities(self, circuit: QuantumCircuit, values: np.ndarray) -> np.ndarray: ...

    def _vjp(self, circuit: QuantumCircuit, values: np.ndarray, grad: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"backend {self.name!r} has no exact vector-Jacobian product")

    @staticmethod
    def _check_values(circuit: QuantumCircuit, parameter_values: np.ndarray) -> np.ndarray:
        values = np.asarray(parameter_values, dtype=np.float64)
        if values.ndim == 1:
            values = values[None, :]
        if values.ndim != 2 or values.shape[1] != circuit.num_parameters:
            raise ValueError(
                f"parameter_values must have shape (batch, {circuit.num_parameters}), got {np.shape(parameter_values)}"
            )
        return values
