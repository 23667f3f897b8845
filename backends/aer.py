"""Aer executors behind a SamplerV2-style primitive.

Aer's and Qiskit's stock V2 samplers always draw shots, and qiskit-ml's exact sampler binds and
post-processes one circuit at a time. `AerExactSampler` keeps the SamplerV2 interface
(``run(pubs, shots=None)`` -> `PrimitiveResult`) but, when no shots are asked for, returns the exact
probabilities from Aer's statevector method for a whole batch of parameter sets in one call of
Aer's controller: the circuit is transpiled and assembled once, angle arrays are bound inside Aer,
experiments run in parallel.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from qiskit import QuantumCircuit, transpile
from qiskit.circuit import ParameterExpression
from qiskit.primitives import BasePrimitiveJob, BaseSamplerV2, DataBin, PrimitiveResult, SamplerPubResult
from qiskit.primitives.containers.sampler_pub import SamplerPub, SamplerPubLike
from qiskit.providers import JobStatus
from qiskit_aer import AerSimulator
from qiskit_aer.backends.aer_compiler import assemble_circuits, generate_aer_config
from qiskit_aer.noise import NoiseModel, depolarizing_error

from .base import Backend, BackendError
from .counts import sample_probabilities
from .devices import cached_noise_model, check_device_name, fake_device, to_isa
from .mitigation import MitigationOptions, ReadoutMitigator, calibration_cost, needs_device_readout
from .noisy_simulation import (
    MAX_DENSITY_QUBITS,
    DensityProgram,
    NoisySimulation,
    active_qubits,
    density_program,
    device_simulation,
    exact_distribution,
    sample,
)
from .options import BackendOptions, DeviceOptions, ShotsOptions, option
from .registry import register
from .torch_statevector import TorchStatevectorBackend, TorchStatevectorOptions

BASIS = ["rx", "ry", "rz", "h", "x", "y", "z", "s", "sdg", "t", "tdg", "sx", "p", "cx", "cz", "swap"]
ONE_QUBIT_GATES = ["rx", "ry", "rz", "h", "x", "y", "z", "s", "sdg", "t", "tdg", "sx", "p"]
TWO_QUBIT_GATES = ["cx", "cz", "swap"]
# How aer_noisy draws its shots: Aer's trajectories (every shot simulated), or S multinomial draws from
# the exact noisy distribution of Aer's density matrix (the same distribution of counts; at most
# MAX_DENSITY_QUBITS qubits after compaction); auto takes the density matrix where it fits.
NOISY_SAMPLING = ("auto", "trajectories", "density")


@dataclass
class Prepared:
    """A circuit made ready for aer_noisy: its noisy simulation, simulator, M3 and density program."""

    circuit: QuantumCircuit
    simulation: NoisySimulation
    simulator: AerSimulator
    mitigator: ReadoutMitigator | None
    density: DensityProgram | None


def check_aer_device(device: str) -> str:
    """``device`` ("CPU" or "GPU") if this qiskit-aer build can simulate on it, else a BackendError.

    The GPU needs the ``qiskit-aer-gpu`` build (CUDA); the stock wheel only offers the CPU.
    """
    available = AerSimulator().available_devices()
    if device not in available:
        raise BackendError(
            f"aer_device {device}: this qiskit-aer build simulates on {', '.join(available)} only "
            "(install qiskit-aer-gpu for GPU)"
        )
    return device


def check_noise(noise: str) -> str | None:
    """Why ``noise`` names no noise model (neither 'depolarizing' nor a known fake device), or None."""
    if noise.startswith("fake_"):
        return check_device_name(noise)
    return None if noise == "depolarizing" else f"{noise!r} is not 'depolarizing' or a fake device such as fake_torino"


@dataclass(frozen=True)
class AerOptions(BackendOptions):
    aer_device: str = option(
        "CPU", "Aer simulation device (GPU needs the qiskit-aer-gpu build)", choices=("CPU", "GPU")
    )


@dataclass(frozen=True)
class AerShotsOptions(ShotsOptions, AerOptions):
    pass


@dataclass(frozen=True)
class NoiseOptions(AerOptions, DeviceOptions):
    """The noise model of `aer_noisy` and `aer_density`: depolarizing rates or a fake device's."""

    noise: str = option(
        "depolarizing",
        "depolarizing (the rates below) or a fake IBM device, e.g. fake_torino",
        check=check_noise,
    )
    depolarizing_1q: float = option(1e-3, "depolarizing probability after each 1-qubit gate", minimum=0, maximum=1)
    depolarizing_2q: float = option(1e-2, "depolarizing probability after each 2-qubit gate", minimum=0, maximum=1)
    readout_error: float = option(0.0, "probability that a measured bit flips", minimum=0, maximum=1)


@dataclass(frozen=True)
class AerNoisyOptions(NoiseOptions, ShotsOptions, MitigationOptions):
    noisy_sampling: str = option(
        "auto",
        "trajectories, density (shots drawn from the noisy P, <= 10 qubits) or auto",
        choices=NOISY_SAMPLING,
    )

    def check(self) -> None:
        if self.mitigation != "none" and not self.noise.startswith("fake_"):
            reason = needs_device_readout(
                AerNoisyBackend, self.mitigation, f"aer_noisy --noise {self.noise} has no device readout"
            )
            raise ValueError(f"mitigation: {reason}")


@dataclass
class _AerProgram:
    """A circuit assembled for Aer's controller once: each run only sets the bound angle arrays.

    ``angles`` lists, for every parameterized gate argument, (Aer's key, parameter column, scale,
    offset): the angle is scale * value + offset, so binding is array arithmetic rather than one
    Qiskit expression evaluation per row. None where an angle is not affine in one parameter (Aer's
    own conversion then binds it).
    """

    circuit: QuantumCircuit  # the caller's circuit (identity-checked by the cache)
    prepared: QuantumCircuit  # unmeasured, with a statevector snapshot, transpiled for Aer
    assembled: list  # Aer's circuit objects, built once
    index_maps: list
    angles: list[tuple[tuple[int, int], int, float, float]] | None
    config: object = None  # Aer's run configuration, built once; each run sets its parameterizations
    keys: list = field(default_factory=list)  # the angles as arrays: Aer keys, columns, scales, offsets
    columns: np.ndarray | None = None
    scales: np.ndarray | None = None
    offsets: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.angles:
            keys, columns, scales, offsets = zip(*self.angles, strict=True)
            self.keys, self.columns = list(keys), np.array(columns, dtype=np.int64)
            self.scales, self.offsets = np.array(scales), np.array(offsets)

    def bindings(self, values: np.ndarray) -> list:
        """[Aer key, angles of every row] per parameterized gate argument: one array expression for all."""
        angles = values[:, self.columns] * self.scales + self.offsets
        return [[key, row] for key, row in zip(self.keys, angles.T.tolist(), strict=True)]


def _affine_angles(prepared: QuantumCircuit, index_map: list | None, parameters: list) -> list | None:
    """(Aer key, column, scale, offset) per parameterized gate argument, or None if one is not affine."""
    from .torch_statevector import _angle_reference  # the torch engine reads angles the same way

    if isinstance(prepared.global_phase, ParameterExpression) and prepared.global_phase.parameters:
        return None
    columns, angles = {p: j for j, p in enumerate(parameters)}, []
    for position, instruction in enumerate(prepared.data):
        if not instruction.operation.is_parameterized():
            continue
        for argument, value in enumerate(instruction.operation.params):
            try:
                reference = _angle_reference(value, columns)
            except ValueError:
                return None
            if reference is not None:
                angles.append(((index_map[position] if index_map else position, argument), *reference))
    return angles


class _FinishedJob(BasePrimitiveJob):
    """A primitive job whose result was computed when it was submitted.

    The exact sampler's work is one synchronous call of Aer's controller; a worker thread per call
    (`PrimitiveJob`) only adds its start and hand-over, once per training step.
    """

    def __init__(self, result: PrimitiveResult) -> None:
        super().__init__(job_id=str(uuid.uuid4()))
        self._result = result

    def result(self) -> PrimitiveResult:
        return self._result

    def status(self) -> JobStatus:
        return JobStatus.DONE

    def done(self) -> bool:
        return True

    def running(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return False

    def in_final_state(self) -> bool:
        return True

    def cancel(self) -> bool:
        return False


class AerExactSampler(BaseSamplerV2):
    """SamplerV2-compatible primitive whose pub results hold exact ``probabilities``.

    Each pub result's ``data.probabilities`` has shape (*pub.shape, 2^num_qubits), outcomes in
    Qiskit's little-endian order, over all qubits of the (unmeasured) circuit.

    Aer simulates the statevector (``save_statevector``); the circuit is transpiled and assembled
    into Aer's circuit objects once, and each run hands Aer's controller the bound angle arrays
    directly (no job object, no `Result` conversion). The final statevectors of the latest run are
    kept (`final_states`), so an exact reverse pass can start from them instead of simulating again.
    """

    def __init__(self, *, seed: int | None = None, device: str = "CPU") -> None:
        self._simulator = AerSimulator(
            method="statevector", device=check_aer_device(device), max_parallel_experiments=0, seed_simulator=seed
        )
        self._programs: dict[int, _AerProgram] = {}
        self._last: tuple[QuantumCircuit, np.ndarray, np.ndarray] | None = None

    def run(self, pubs: Iterable[SamplerPubLike], *, shots: int | None = None) -> BasePrimitiveJob:
        """Run the pubs now (one synchronous Aer call each) and return the finished job."""
        if shots is not None:
            raise ValueError("AerExactSampler computes exact probabilities; use the aer_shots backend for shots")
        coerced = [SamplerPub.coerce(pub) for pub in pubs]
        for pub in coerced:
            if pub.shots is not None:
                raise ValueError("AerExactSampler computes exact probabilities; pubs must not ask for shots")
        return _FinishedJob(self._run(coerced))

    def final_states(self, circuit: QuantumCircuit, values: np.ndarray) -> np.ndarray | None:
        """The statevectors (B, 2^n) the latest run computed, if it ran ``circuit`` at exactly ``values``."""
        if self._last is None or self._last[0] is not circuit or not np.array_equal(self._last[1], values):
            return None
        return self._last[2]

    def _program(self, circuit: QuantumCircuit) -> _AerProgram:
        """Unmeasured copy with a statevector snapshot, transpiled and assembled for Aer once per circuit."""
        cached = self._programs.get(id(circuit))
        if cached is None or cached.circuit is not circuit:
            bare = circuit.remove_final_measurements(inplace=False)
            bare.save_statevector()
            prepared = transpile(bare, self._simulator, optimization_level=0)
            assembled, index_maps = assemble_circuits([prepared], self._simulator.configuration().basis_gates)
            angles = _affine_angles(prepared, index_maps[0], list(circuit.parameters))
            config = generate_aer_config([prepared], self._simulator.options)
            cached = _AerProgram(circuit, prepared, list(assembled), list(index_maps), angles, config)
            self._programs[id(circuit)] = cached
        return cached

    def statevectors(self, circuit: QuantumCircuit, values: np.ndarray) -> np.ndarray:
        """Final statevectors (B, 2^n) of ``circuit`` for parameter values (B, P) (B = 1 without parameters)."""
        program = self._program(circuit)
        if program.angles is not None:
            bindings = program.bindings(values)
        else:
            binds = [{p: values[:, j] for j, p in enumerate(circuit.parameters)}]
            bindings = self._simulator._convert_binds([program.prepared], binds, program.index_maps)[0]
        config = program.config  # the simulator's options never change after construction
        config.parameterizations = [bindings] if circuit.num_parameters else []
        for aer_circuit in program.assembled:
            aer_circuit.circ_id = 0
        output = self._simulator._execute_circuits(program.assembled, None, config)
        if not output.get("success", False):
            raise BackendError(f"aer_statevector: Aer failed: {output.get('status', 'no status')}")
        states = np.stack([np.asarray(result["data"]["statevector"]) for result in output["results"]])
        self._last = (circuit, values.copy(), states)
        return states

    def probabilities(self, circuit: QuantumCircuit, values: np.ndarray) -> np.ndarray:
        """Exact probabilities (B, 2^n) for parameter values (B, P): what `run` returns per pub, without
        the pub and result containers (their coercion and checks cost as much as Aer's own run at 7 qubits)."""
        states = self.statevectors(circuit, values)
        probs = states.real**2 + states.imag**2
        return probs if circuit.num_parameters else np.repeat(probs, max(len(values), 1), axis=0)  # ran once

    def _run(self, pubs: list[SamplerPub]) -> PrimitiveResult:
        return PrimitiveResult([self._run_pub(pub) for pub in pubs], metadata={"version": 2})

    def _run_pub(self, pub: SamplerPub) -> SamplerPubResult:
        parameters = list(pub.circuit.parameters)
        values = np.zeros((1, 0))  # a parameterless circuit runs once and is broadcast
        if parameters:
            values = pub.parameter_values.as_array(parameters).reshape(-1, len(parameters))
        probs = self.probabilities(pub.circuit, values)
        probs = np.broadcast_to(probs, (pub.size, probs.shape[1])).reshape(*pub.shape, probs.shape[1])
        return SamplerPubResult(DataBin(probabilities=probs, shape=pub.shape), metadata={"shots": None})


@register
class AerStatevectorBackend(Backend):
    """Exact probabilities from Aer's statevector method (the reference execution path).

    Aer has no reverse-mode gradient for probabilities. The `adjoint` vector-Jacobian product is the
    torch engine's reverse sweep (CPU, float64) started from the final statevector Aer computed in
    the forward pass, so a training step simulates the circuit once; tests check it against
    parameter shift run on Aer itself.
    """

    name = "aer_statevector"
    exact = True
    Options = AerOptions
    context = ("seed",)

    def __init__(self, options: AerOptions | None = None, *, seed: int | None = None) -> None:
        super().__init__(options)
        self.sampler = AerExactSampler(seed=seed, device=self.options.aer_device)
        self._reverse_mode = TorchStatevectorBackend(TorchStatevectorOptions(precision="float64"), device="cpu")

    def _probabilities(self, circuit: QuantumCircuit, values: np.ndarray) -> np.ndarray:
        return self.sampler.probabilities(circuit, values)  # the primitive's `run` without its containers

    def _vjp(self, circuit: QuantumCircuit, values: np.ndarray, grad: np.ndarray) -> np.ndarray:
        states = self.sampler.final_states(circuit, values)
        return self._reverse_mode.vjp_from_state(circuit, values, grad, states)


@register
class AerShotsBackend(Backend):
    """Finite-shot estimates: ``shots`` draws per circuit from Aer's exact final distribution.

    For terminal measurements of a noiseless circuit this is exactly what Aer's measurement
    sampling does (one statevector, then draws), without its per-shot bitstring conversion; tests
    compare the statistics with Aer's own `SamplerV2`. Seeded once: successive calls draw fresh,
    reproducible noise.
    """

    name = "aer_shots"
    exact = False
    Options = AerShotsOptions
    context = ("seed",)

    def __init__(self, options: AerShotsOptions | None = None, *, seed: int | None = None) -> None:
        super().__init__(options)
        self.sampler = AerExactSampler(seed=seed, device=self.options.aer_device)
        self.rng = np.random.default_rng(seed)

    def _probabilities(self, circuit: QuantumCircuit, values: np.ndarray) -> np.ndarray:
        exact = self.sampler.probabilities(circuit, values)
        return sample_probabilities(exact, self.options.shots, self.rng)


def depolarizing_simulation(circuit: QuantumCircuit, one_qubit: float, two_qubit: float, readout: float):
    """Uniform depolarizing noise after every gate of the logical circuit, symmetric readout flips."""
    model = NoiseModel()
    if one_qubit > 0:
        model.add_all_qubit_quantum_error(depolarizing_error(one_qubit, 1), ONE_QUBIT_GATES)
    if two_qubit > 0:
        model.add_all_qubit_quantum_error(depolarizing_error(two_qubit, 2), TWO_QUBIT_GATES)
    measured = transpile(circuit.measure_all(inplace=False), basis_gates=BASIS, optimization_level=0)
    flips = np.tile([[1 - readout, readout], [readout, 1 - readout]], (measured.num_clbits, 1, 1))
    return NoisySimulation(measured, model, flips)


@register
class AerNoisyBackend(Backend):
    """Aer with a noise model: parametric depolarizing noise, or a fake IBM device's.

    ``noise="depolarizing"`` applies the given rates to the logical circuit. A fake device name
    (``fake_torino``, ...) transpiles with the same pass manager as the hardware path and simulates
    the device's noise on the qubits the circuit uses (see `noisy_simulation`). With a fake device,
    ``mitigation="mthree"`` calibrates M3 on it when the circuit is prepared and corrects every
    sample's frequencies (see `mitigation`).
    """

    name = "aer_noisy"
    exact = False
    Options = AerNoisyOptions
    context = ("seed",)

    def __init__(self, options: AerNoisyOptions | None = None, *, seed: int | None = None) -> None:
        super().__init__(options)
        self.seed, self.device = seed, check_aer_device(self.options.aer_device)
        self.rng = np.random.default_rng(seed)
        self._prepared: dict[int, Prepared] = {}

    @classmethod
    def calibration_shots(cls, options: AerNoisyOptions, measured_qubits: int) -> int:
        """M3's calibration on the fake device (``noise``), under ``--mitigation mthree``."""
        return calibration_cost(options.mitigation, options.noise, measured_qubits, options.shots)

    def prepare(self, circuit: QuantumCircuit) -> NoisySimulation:
        return self._ready(circuit).simulation

    def _ready(self, circuit: QuantumCircuit) -> Prepared:
        """``circuit`` prepared once (cached by identity): simulation, simulator, M3, density program."""
        cached = self._prepared.get(id(circuit))
        if cached is None or cached.circuit is not circuit:
            options, mitigator = self.options, None
            if options.noise == "depolarizing":
                rates = (options.depolarizing_1q, options.depolarizing_2q, options.readout_error)
                simulation = depolarizing_simulation(circuit, *rates)
            else:
                device = fake_device(options.noise)
                isa = to_isa(circuit, device, seed=self.seed, optimization_level=options.optimization_level)
                model = cached_noise_model(options.noise, device, active_qubits(isa))
                simulation = device_simulation(isa, model)
                mitigator = self._mitigator(device, isa)
            cached = Prepared(
                circuit, simulation, simulation.simulator(self.device), mitigator, self._density(simulation)
            )
            self._prepared[id(circuit)] = cached
        return cached

    def _sampling(self) -> str:
        """How shots are drawn (`NOISY_SAMPLING`): the option here; aer_density always reads the density matrix."""
        return self.options.noisy_sampling

    def _mitigator(self, device: object, isa: QuantumCircuit) -> ReadoutMitigator | None:
        """M3 calibrated on the fake device's measured qubits, under ``--mitigation mthree``."""
        return ReadoutMitigator(device, isa, self.options.shots) if self.options.mitigation == "mthree" else None

    def _density(self, simulation: NoisySimulation) -> DensityProgram | None:
        """The density-matrix program that `density` (or `auto`, where it fits) samples from."""
        if self._sampling() == "trajectories":
            return None
        try:
            return density_program(simulation, self.device)
        except ValueError as exc:  # wider than MAX_DENSITY_QUBITS after compaction
            if self._sampling() == "auto":
                return None
            raise BackendError(f"{self.name}: {exc}") from None

    def _probabilities(self, circuit: QuantumCircuit, values: np.ndarray) -> np.ndarray:
        prepared, shots = self._ready(circuit), self.options.shots
        if prepared.density is None:
            frequencies = sample(prepared.simulation, prepared.simulator, values, shots, self.rng)
        else:  # the same multinomial distribution of counts as the trajectories, ~10x faster at 7 qubits
            frequencies = sample_probabilities(exact_distribution(prepared.density, values), shots, self.rng)
        mitigator = prepared.mitigator
        return frequencies if mitigator is None else mitigator.correct(frequencies, shots)


@register
class AerDensityBackend(AerNoisyBackend):
    """The exact noisy distribution (no shot noise) of the same noisy simulation as `aer_noisy`.

    Aer's density-matrix method runs the compacted device circuit (or the depolarizing one) under
    the noise model, and readout errors are applied exactly to the probabilities. This is what
    makes noise-aware training differentiable without shot noise: with the noise channels fixed
    (IBM devices put angles in virtual RZ gates; depolarizing noise does not depend on the angle),
    each probability is still a first-order trigonometric polynomial in each angle, so the
    parameter-shift rule stays exact. Up to `noisy_simulation.MAX_DENSITY_QUBITS` qubits.
    """

    name = "aer_density"
    exact = True  # no shot noise: --train-shots may add the measurement's
    noisy = True
    Options = NoiseOptions
    max_qubits = MAX_DENSITY_QUBITS
    max_qubits_reason = "holds a density matrix"

    @classmethod
    def calibration_shots(cls, options: NoiseOptions, measured_qubits: int) -> int:
        return 0  # an exact distribution: no counts, nothing to calibrate

    def _sampling(self) -> str:
        return "density"

    def _mitigator(self, device: object, isa: QuantumCircuit) -> None:
        return None

    def _probabilities(self, circuit: QuantumCircuit, values: np.ndarray) -> np.ndarray:
        return exact_distribution(self._ready(circuit).density, values)
