"""IBM Quantum hardware through qiskit-ibm-runtime's current sampler.

The account comes from the environment (``QISKIT_IBM_TOKEN``, ``QISKIT_IBM_INSTANCE``) or a saved
account; nothing here stores or prints it. ``ibm_backend`` names a device, or is left empty for
the least busy one; a ``fake_*`` name runs the very same code path in the runtime's local testing
mode (a fake device, simulated with its noise) — which is how it is tested without an account.

Circuits are transpiled once per run into ISA circuits. Each call is one job (split only past
``max_circuits_per_job``), retried with exponential backoff on transient failures. Every job id
is written to the job ledger (the run directory's ``jobs.jsonl``) before its result is awaited,
keyed by a digest of what was asked, so an interrupted run that asks again fetches the job by id
instead of paying for it twice.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from qiskit import QuantumCircuit

from .base import Backend, BackendError, JobLedger
from .counts import probabilities_from_bits
from .devices import cached_noise_model, check_device_name, fake_device, to_isa
from .mitigation import MitigationOptions, ReadoutMitigator, calibration_cost
from .noisy_simulation import device_simulator, shared_active_qubits
from .options import DeviceOptions, ShotsOptions, option
from .registry import register

MODES = ("job", "batch", "session")
DEFAULT_MAX_SHOTS = 10_000_000  # a run estimated above this needs an explicit --max-shots


def _permanent(exc: Exception) -> bool:
    """Errors a retry cannot fix: credentials, bad input, unknown device."""
    from qiskit_ibm_runtime.exceptions import IBMAccountError, IBMInputValueError, IBMNotAuthorizedError

    return isinstance(exc, (IBMAccountError, IBMInputValueError, IBMNotAuthorizedError, ValueError, TypeError))


@dataclass(frozen=True)
class IBMRuntimeOptions(ShotsOptions, MitigationOptions, DeviceOptions):
    ibm_backend: str | None = option(
        None, "ibm_runtime device name (default: least busy); fake_* runs locally", check=check_device_name
    )
    ibm_mode: str = option("job", "ibm_runtime execution mode", choices=MODES)
    dynamical_decoupling: bool = option(False, "ibm_runtime: dynamical decoupling on idle qubits")
    twirling: bool = option(False, "ibm_runtime: measurement twirling")
    max_retries: int = option(
        3, "ibm_runtime: retries of a failed job (exponential backoff) before stopping", minimum=0
    )
    retry_backoff: float = option(2.0, "ibm_runtime: seconds before the first retry (doubling after)", minimum=0)


@register
class IBMRuntimeBackend(Backend):
    """Sampled probabilities from an IBM Quantum device (or a fake one, locally)."""

    name = "ibm_runtime"
    exact = False
    paid: ClassVar[bool] = True
    default_max_shots: ClassVar[int] = DEFAULT_MAX_SHOTS
    Options = IBMRuntimeOptions
    context = ("seed", "job_ledger")

    def __init__(
        self,
        options: IBMRuntimeOptions | None = None,
        *,
        seed: int | None = None,
        job_ledger: JobLedger | None = None,
        service: Any = None,
        max_circuits_per_job: int = 10_000,
    ) -> None:
        """``service`` (a runtime service; by default the saved account's) and ``max_circuits_per_job``
        are not configuration keys: tests and callers with their own account pass them."""
        super().__init__(options)
        self.seed, self.ledger, self._service = seed, job_ledger, service
        self.max_circuits_per_job = max_circuits_per_job
        # the runtime's error suppression of the next jobs (`error_suppression` switches it between a trial's variants)
        self.suppression = {
            "dynamical_decoupling": {"enable": self.options.dynamical_decoupling},
            "twirling": {"enable_measure": self.options.twirling},
        }
        self._device: Any = None
        self._simulator: Any = None  # local mode: what the runtime's local service simulates jobs on
        self._mode: Any = None
        self.request_tag = ""  # distinguishes otherwise identical requests in the ledger (a trial's repeats)
        self._isa: dict[int, tuple[QuantumCircuit, QuantumCircuit, bytes]] = {}  # id -> (logical, ISA, digest)
        self._mitigators: dict[int, ReadoutMitigator] = {}  # id -> M3 calibrated on the ISA's measured qubits

    @classmethod
    def calibration_shots(cls, options: IBMRuntimeOptions, measured_qubits: int) -> int:
        """M3's calibration on ``ibm_backend`` (none named: the least busy real device), under mthree."""
        return calibration_cost(options.mitigation, options.ibm_backend or "", measured_qubits, options.shots)

    @property
    def device_name(self) -> str | None:
        return self.options.ibm_backend

    # --- preparation: account, device, ISA circuit (before any circuit runs)
    @property
    def local(self) -> bool:
        return bool(self.device_name and self.device_name.startswith("fake_"))

    def service(self) -> Any:
        if self._service is None:
            from qiskit_ibm_runtime import QiskitRuntimeService

            try:
                self._service = QiskitRuntimeService()
            except Exception as exc:  # account missing or rejected: say how to provide one
                raise BackendError(
                    f"no usable IBM Quantum account ({type(exc).__name__}): set QISKIT_IBM_TOKEN and "
                    "QISKIT_IBM_INSTANCE or save an account with QiskitRuntimeService.save_account(); "
                    "--ibm-backend fake_torino runs locally without one"
                ) from None
        return self._service

    def device(self, min_qubits: int = 1) -> Any:
        if self._device is None:
            if self.local:
                self._device = fake_device(self.device_name)
            elif self.device_name:
                self._device = self.service().backend(self.device_name)
            else:
                self._device = self.service().least_busy(operational=True, simulator=False, min_num_qubits=min_qubits)
        if self._device.num_qubits < min_qubits:
            raise BackendError(
                f"{self._device.name} has {self._device.num_qubits} qubits; the circuit needs {min_qubits}"
            )
        return self._device

    def prepare(self, circuit: QuantumCircuit) -> QuantumCircuit:
        cached = self._isa.get(id(circuit))
        if cached is None or cached[0] is not circuit:
            level = self.options.optimization_level
            isa = to_isa(circuit, self.device(circuit.num_qubits), seed=self.seed, optimization_level=level)
            cached = (circuit, isa, _circuit_digest(circuit))
            self._isa[id(circuit)] = cached
            if self.local:  # (re)built at the next job, after the plan and the budget guard
                self._simulator, self._mode = None, None
        return cached[1]

    def _local_simulator(self) -> Any:
        """The fake device's simulator for the prepared circuits (`noisy_simulation.device_simulator`): the
        same runtime code path, seconds instead of tens of seconds a job. Its noise model is built once
        per process."""
        circuits = [isa for _, isa, _ in self._isa.values()]
        active = shared_active_qubits(circuits)
        model = cached_noise_model(self.device_name, self.device(), active)  # shared with aer_noisy / aer_density
        return device_simulator(self.device(), model, circuits)

    def error_suppression(self, *, dynamical_decoupling: bool, twirling: bool) -> None:
        """Dynamical decoupling and measurement twirling of the next jobs (a trial's variants share one batch)."""
        self.suppression = {
            "dynamical_decoupling": {"enable": dynamical_decoupling},
            "twirling": {"enable_measure": twirling},
        }

    def runtime_mode(self) -> Any:
        """The batch or session that calibration jobs share with the run's (opened now), None in job or local mode."""
        self._sampler()
        return None if self.local or self.options.ibm_mode == "job" else self._mode

    def _local_seed(self) -> int | None:
        """The local simulator's seed: the run's, varied by the request tag so that repeats draw afresh."""
        if self.seed is None or not self.request_tag:
            return self.seed
        return int.from_bytes(hashlib.sha256(f"{self.seed}|{self.request_tag}".encode()).digest()[:4], "big") >> 1

    def calibration_target(self) -> Any:
        """What M3 calibrates on: the device (locally, the same simulator the jobs run on)."""
        if self.local and self._simulator is None and self._isa:
            self._simulator = self._local_simulator()
        return self._simulator if self.local and self._simulator is not None else self.device()

    def _mitigator(self, circuit: QuantumCircuit, isa: QuantumCircuit) -> ReadoutMitigator | None:
        """M3 for this circuit's measured qubits, calibrated on its first execution: after the run's
        budget guard (not at preparation), in the batch or session the run's own jobs share."""
        if self.options.mitigation != "mthree":
            return None
        if id(circuit) not in self._mitigators:
            try:
                target, shots = self.calibration_target(), self.options.shots
                self._mitigators[id(circuit)] = ReadoutMitigator(
                    target, isa, shots, runtime_mode=self.runtime_mode(), ledger=self.ledger
                )
            except Exception as exc:  # a failed calibration job: one line, nothing of the run spent yet
                raise BackendError(
                    f"M3 calibration on {self.device().name} failed: {type(exc).__name__}: "
                    f"{str(exc).splitlines()[0] if str(exc) else ''}"
                ) from None
        return self._mitigators[id(circuit)]

    def _sampler(self) -> Any:
        from qiskit_ibm_runtime import Batch, Session
        from qiskit_ibm_runtime.executor_sampler import Sampler

        if self._mode is None:
            device = self.calibration_target()
            self._mode = {
                "job": lambda: device,
                "batch": lambda: Batch(backend=device),
                "session": lambda: Session(backend=device),
            }[self.options.ibm_mode]()
        options = {"default_shots": self.options.shots, **self.suppression}
        if self.local:  # the local simulator ignores DD and twirling options with a warning
            options = {"default_shots": self.options.shots, "simulator": {"seed_simulator": self._local_seed()}}
        return Sampler(mode=self._mode, options=options)

    # --- execution
    def _probabilities(self, circuit: QuantumCircuit, values: np.ndarray) -> np.ndarray:
        isa = self.prepare(circuit)
        mitigator = self._mitigator(circuit, isa)
        chunks = np.array_split(values, max(1, -(-len(values) // self.max_circuits_per_job)))
        frequencies = np.concatenate([self._run_with_retries(circuit, isa, chunk) for chunk in chunks])
        return frequencies if mitigator is None else mitigator.correct(frequencies, self.options.shots)

    def _request_key(self, circuit: QuantumCircuit, values: np.ndarray) -> str:
        digest = hashlib.sha256()
        digest.update(self._isa[id(circuit)][2])
        digest.update(np.ascontiguousarray(values, dtype=np.float64).tobytes())
        options = self.options  # the same digest as before options were one object: recorded jobs stay found
        settings = f"{options.shots}|{options.ibm_backend}|{self.seed}|{options.optimization_level}|{self.suppression}"
        digest.update((settings + (f"|{self.request_tag}" if self.request_tag else "")).encode())
        return digest.hexdigest()

    def _run_with_retries(self, circuit: QuantumCircuit, isa: QuantumCircuit, values: np.ndarray) -> np.ndarray:
        key = self._request_key(circuit, values)
        recorded = self.ledger.lookup(key) if self.ledger is not None else None
        if recorded is not None and not self.local:
            try:
                return self._bits_to_probabilities(self.service().job(recorded).result())
            except Exception:  # the recorded job is gone or failed: run it again
                pass
        shots, retries = self.options.shots, self.options.max_retries
        for attempt in range(retries + 1):
            try:
                job = self._sampler().run([(isa, values)], shots=shots)
                if self.ledger is not None:
                    self.ledger.record(key, job.job_id(), {"circuits": len(values), "shots": shots})
                return self._bits_to_probabilities(job.result())
            except Exception as exc:
                if _permanent(exc) or attempt == retries:
                    raise BackendError(
                        f"ibm_runtime job failed after {attempt + 1} attempt(s): {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}"
                    ) from None
                time.sleep(self.options.retry_backoff * 2**attempt)
        raise AssertionError("unreachable")

    @staticmethod
    def _bits_to_probabilities(result: Any) -> np.ndarray:
        return probabilities_from_bits(result[0].data.meas).reshape(-1, 2 ** result[0].data.meas.num_bits)


def _circuit_digest(circuit: QuantumCircuit) -> bytes:
    """A stable digest of the logical circuit (the ISA circuit follows from it, the device and the
    seed; its serialized form is not byte-stable, parameter expressions print in varying order)."""
    digest = hashlib.sha256()
    for instruction in circuit.data:
        qubits = [circuit.find_bit(q).index for q in instruction.qubits]
        digest.update(f"{instruction.operation.name}{qubits}{[str(p) for p in instruction.operation.params]};".encode())
    return digest.digest()
