"""Aer executors behind a SamplerV2-style primitive.

Aer's and Qiskit's stock V2 samplers always draw shots, and qiskit-ml's exact sampler binds and
post-processes one circuit at a time. `AerExactSampler` keeps the SamplerV2 interface
(``run(pubs, shots=None)`` -> `PrimitiveResult`) but, when no shots are asked for, returns the exact
probabilities from Aer's statevector method for a whole batch of parameter sets in one Aer job:
the circuit is transpiled once, parameters are bound inside Aer, experiments run in parallel.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from qiskit import QuantumCircuit, transpile
from qiskit.primitives import BaseSamplerV2, DataBin, PrimitiveJob, PrimitiveResult, SamplerPubResult
from qiskit.primitives.containers.sampler_pub import SamplerPub, SamplerPubLike
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel, depolarizing_error

from .base import Backend, BackendError
from .counts import sample_probabilities
from .devices import check_device_name, device_noise_model, fake_device, to_isa
from .mitigation import MitigationOptions, ReadoutMitigator, needs_device_readout
from .noisy_simulation import (
    MAX_DENSITY_QUBITS,
    DensityProgram,
    NoisySimulation,
    density_program,
    device_simulation,
    exact_distribution,
    sample,
)
from .options import BackendOptions, DeviceOptions, ShotsOptions, option
from .registry import register
from .torch_statevector import TorchStatevectorBackend

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
        "aer_noisy noise: 'depolarizing' (the rates below) or a fake IBM device, e.g. fake_torino",
        check=check_noise,
    )
    depolarizing_1q: float = option(
        1e-3, "aer_noisy depolarizing probability after each 1-qubit gate", minimum=0, maximum=1
    )
    depolarizing_2q: float = option(
        1e-2, "aer_noisy depolarizing probability after each 2-qubit gate", minimum=0, maximum=1
    )
    readout_error: float = option(0.0, "aer_noisy probability that a measured bit flips", minimum=0, maximum=1)


@dataclass(frozen=True)
class AerNoisyOptions(NoiseOptions, ShotsOptions, MitigationOptions):
    noisy_sampling: str = option(
        "auto",
        "aer_noisy shots: trajectories (Aer simulates every shot), density (S multinomial draws from the exact "
        "noisy distribution of Aer's density matrix: the same distribution of counts, at most 10 qubits), or "
        "auto (density where the circuit fits)",
        choices=NOISY_SAMPLING,
    )

    def check(self) -> None:
        if self.mitigation != "none" and not self.noise.startswith("fake_"):
            reason = needs_device_readout(
                AerNoisyBackend, self.mitigation, f"aer_noisy --noise {self.noise} has no device readout"
            )
            raise ValueError(f"mitigation: {reason}")


class AerExactSampler(BaseSamplerV2):
    """SamplerV2-compatible primitive whose pub results hold exact ``probabilities``.

    Each pub result's ``data.probabilities`` has shape (*pub.shape, 2^num_qubits), outcomes in
    Qiskit's little-endian order, over all qubits of the (unmeasured) circuit.
    """

    def __init__(self, *, seed: int | None = None, device: str = "CPU") -> None:
        self._simulator = AerSimulator(
            method="statevector", device=check_aer_device(device), max_parallel_experiments=0, seed_simulator=seed
        )
        self._prepared: dict[int, tuple[QuantumCircuit, QuantumCircuit]] = {}

    def run(self, pubs: Iterable[SamplerPubLike], *, shots: int | None = None) -> PrimitiveJob:
        if shots is not None:
            raise ValueError("AerExactSampler computes exact probabilities; use the aer_shots backend for shots")
        coerced = [SamplerPub.coerce(pub) for pub in pubs]
        for pub in coerced:
            if pub.shots is not None:
                raise ValueError("AerExactSampler computes exact probabilities; pubs must not ask for shots")
        job = PrimitiveJob(self._run, coerced)
        job._submit()
        return job

    def _prepare(self, circuit: QuantumCircuit) -> QuantumCircuit:
        """Unmeasured copy with a probability snapshot, transpiled for Aer once per circuit."""
        cached = self._prepared.get(id(circuit))
        if cached is None or cached[0] is not circuit:
            bare = circuit.remove_final_measurements(inplace=False)
            bare.save_probabilities()
            cached = (circuit, transpile(bare, self._simulator, optimization_level=0))
            self._prepared[id(circuit)] = cached
        return cached[1]

    def _run(self, pubs: list[SamplerPub]) -> PrimitiveResult:
        return PrimitiveResult([self._run_pub(pub) for pub in pubs], metadata={"version": 2})

    def _run_pub(self, pub: SamplerPub) -> SamplerPubResult:
        prepared = self._prepare(pub.circuit)
        parameters = list(pub.circuit.parameters)
        binds, count = None, 1  # a parameterless circuit runs once and is broadcast
        if parameters:
            values = pub.parameter_values.as_array(parameters).reshape(-1, len(parameters))
            binds, count = [{p: values[:, j] for j, p in enumerate(parameters)}], len(values)
        result = self._simulator.run([prepared], parameter_binds=binds).result()
        probs = np.stack([np.asarray(result.data(i)["probabilities"]) for i in range(count)])
        probs = np.broadcast_to(probs, (pub.size, probs.shape[1])).reshape(*pub.shape, probs.shape[1])
        return SamplerPubResult(DataBin(probabilities=probs, shape=pub.shape), metadata={"shots": None})


@register
class AerStatevectorBackend(Backend):
    """Exact probabilities from Aer's statevector method (the reference execution path).

    Aer has no reverse-mode gradient for probabilities, so the `adjoint` vector-Jacobian product
    is computed by exact reverse-mode simulation of the same circuit in the torch engine (CPU,
    float64); tests check it against parameter shift run on Aer itself.
    """

    name = "aer_statevector"
    exact = True
    Options = AerOptions
    context = ("seed",)

    def __init__(self, seed: int | None = None, aer_device: str = "CPU") -> None:
        self.sampler = AerExactSampler(seed=seed, device=aer_device)
        self._reverse_mode = TorchStatevectorBackend(device="cpu", precision="float64")

    def _probabilities(self, circuit: QuantumCircuit, values: np.ndarray) -> np.ndarray:
        return self.sampler.run([(circuit, values)]).result()[0].data.probabilities

    def _vjp(self, circuit: QuantumCircuit, values: np.ndarray, grad: np.ndarray) -> np.ndarray:
        return self._reverse_mode.vjp(circuit, values, grad)


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

    def __init__(self, shots: int = 1024, seed: int | None = None, aer_device: str = "CPU") -> None:
        self.shots = shots
        self.sampler = AerExactSampler(seed=seed, device=aer_device)
        self.rng = np.random.default_rng(seed)

    def _probabilities(self, circuit: QuantumCircuit, values: np.ndarray) -> np.ndarray:
        exact = self.sampler.run([(circuit, values)]).result()[0].data.probabilities
        return sample_probabilities(exact, self.shots, self.rng)


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
    _device_models: ClassVar[dict[str, NoiseModel]] = {}  # building one takes seconds: once per process

    def __init__(
        self,
        noise: str = "depolarizing",
        shots: int = 1024,
        seed: int | None = None,
        depolarizing_1q: float = 1e-3,
        depolarizing_2q: float = 1e-2,
        readout_error: float = 0.0,
        aer_device: str = "CPU",
        mitigation: str = "none",
        noisy_sampling: str = "auto",
        optimization_level: int = 2,
    ) -> None:
        if noisy_sampling not in NOISY_SAMPLING:
            raise ValueError(f"noisy_sampling must be one of {', '.join(NOISY_SAMPLING)}, got {noisy_sampling!r}")
        self.noise, self.shots, self.seed, self.device = noise, shots, seed, check_aer_device(aer_device)
        self.rates = (depolarizing_1q, depolarizing_2q, readout_error)
        self.mitigation, self.noisy_sampling = mitigation, noisy_sampling
        self.optimization_level = optimization_level
        self.rng = np.random.default_rng(seed)
        self._prepared: dict[int, Prepared] = {}

    def prepare(self, circuit: QuantumCircuit) -> NoisySimulation:
        return self._ready(circuit).simulation

    def _ready(self, circuit: QuantumCircuit) -> Prepared:
        """``circuit`` prepared once (cached by identity): simulation, simulator, M3, density program."""
        cached = self._prepared.get(id(circuit))
        if cached is None or cached.circuit is not circuit:
            mitigator = None
            if self.noise == "depolarizing":
                simulation = depolarizing_simulation(circuit, *self.rates)
            else:
                device = fake_device(self.noise)
                if self.noise not in self._device_models:
                    self._device_models[self.noise] = device_noise_model(device)
                isa = to_isa(circuit, device, seed=self.seed, optimization_level=self.optimization_level)
                simulation = device_simulation(isa, self._device_models[self.noise])
                if self.mitigation == "mthree":
                    mitigator = ReadoutMitigator(device, isa, self.shots)
            cached = Prepared(
                circuit, simulation, simulation.simulator(self.device), mitigator, self._density(simulation)
            )
            self._prepared[id(circuit)] = cached
        return cached

    def _density(self, simulation: NoisySimulation) -> DensityProgram | None:
        """The density-matrix program that `density` (or `auto`, where it fits) samples from."""
        if self.noisy_sampling == "trajectories":
            return None
        try:
            return density_program(simulation, self.device)
        except ValueError as exc:  # wider than MAX_DENSITY_QUBITS after compaction
            if self.noisy_sampling == "auto":
                return None
            raise BackendError(f"{self.name}: {exc}") from None

    def _probabilities(self, circuit: QuantumCircuit, values: np.ndarray) -> np.ndarray:
        prepared = self._ready(circuit)
        if prepared.density is None:
            frequencies = sample(prepared.simulation, prepared.simulator, values, self.shots, self.rng)
        else:  # the same multinomial distribution of counts as the trajectories, ~10x faster at 7 qubits
            frequencies = sample_probabilities(exact_distribution(prepared.density, values), self.shots, self.rng)
        mitigator = prepared.mitigator
        return frequencies if mitigator is None else mitigator.correct(frequencies, self.shots)


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

    def __init__(
        self,
        noise: str = "depolarizing",
        seed: int | None = None,
        depolarizing_1q: float = 1e-3,
        depolarizing_2q: float = 1e-2,
        readout_error: float = 0.0,
        aer_device: str = "CPU",
        optimization_level: int = 2,
    ) -> None:
        super().__init__(
            noise,
            1,
            seed,
            depolarizing_1q,
            depolarizing_2q,
            readout_error,
            aer_device,
            noisy_sampling="density",
            optimization_level=optimization_level,
        )

    def _probabilities(self, circuit: QuantumCircuit, values: np.ndarray) -> np.ndarray:
        return exact_distribution(self._ready(circuit).density, values)
