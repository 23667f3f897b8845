"""Fast, faithful noisy simulation of a measured circuit with Aer.

A device noise model covers all of a 100+ qubit device, and thermal relaxation makes every shot its
own trajectory. Three things make a 13-qubit, 4096-shot evaluation take seconds instead of minutes,
without changing the noise on the qubits the circuit uses:

- compaction: the ISA circuit is rewritten onto its active physical qubits only, and the device's
  noise model is restricted (and relabelled) to them, delay relaxation included;
- Aer options: gate fusion below the 14-qubit default threshold, and shot branching;
- readout errors applied in numpy after sampling (qiskit-aer 0.18 returns wrong counts when shot
  branching meets readout errors), per measured bit, from the device's confusion matrices.

Restricting the model reads `NoiseModel`'s per-qubit tables (private attributes of qiskit-aer 0.18);
tests compare the result with Aer's simulation of the whole-device model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from qiskit import QuantumCircuit
from qiskit.providers import BackendV2
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel
from qiskit_aer.noise.passes import RelaxationNoisePass

AER_OPTIONS = {
    "method": "statevector",  # automatic would switch small circuits to density matrices
    "fusion_threshold": 2,  # the default (14) turns fusion off for 13 qubits
    "fusion_max_qubit": 4,
    "shot_branching_enable": True,
    "max_parallel_experiments": 1,
}
IDLE = ("barrier", "delay")


@dataclass
class NoisySimulation:
    """A measured circuit, the gate noise to simulate it with, and each clbit's readout matrix."""

    circuit: QuantumCircuit
    noise_model: NoiseModel
    readout: np.ndarray  # (num_clbits, 2, 2): readout[k, true, read]

    def simulator(self, device: str = "CPU") -> AerSimulator:
        # Without gate noise Aer samples all shots from one statevector, and that sampling depends
        # on its thread count: one thread keeps seeded results identical in any process pool.
        threads = {"max_parallel_threads": 1} if self.noise_model.is_ideal() else {}
        return AerSimulator(noise_model=self.noise_model, device=device, **AER_OPTIONS, **threads)


def active_qubits(circuit: QuantumCircuit) -> list[int]:
    """Physical qubits touched by anything but barriers and delays (scheduling pads every qubit)."""
    return sorted(
        {circuit.find_bit(q).index for ins in circuit.data if ins.operation.name not in IDLE for q in ins.qubits}
    )


def shared_active_qubits(circuits: list[QuantumCircuit]) -> list[int]:
    """Physical qubits that any of ``circuits`` touches (the union of their `active_qubits`)."""
    return sorted({qubit for circuit in circuits for qubit in active_qubits(circuit)})


def _compact(circuit: QuantumCircuit, active: list[int]) -> QuantumCircuit:
    index = {physical: k for k, physical in enumerate(active)}
    out = QuantumCircuit(len(active), global_phase=circuit.global_phase, name=circuit.name)
    for register in circuit.cregs:
        out.add_register(register)  # the same clbits: clbit k stays logical qubit k
    for ins in circuit.data:
        qubits = [index[p] for p in (circuit.find_bit(q).index for q in ins.qubits) if p in index]
        if ins.operation.name in IDLE and not qubits:
            continue
        out.append(ins.operation, qubits, ins.clbits)
    return out


def _restricted_gate_noise(full: NoiseModel, active: list[int], relabel: bool = True) -> NoiseModel:
    """``full``'s gate errors and relaxation on the ``active`` qubits only: relabelled 0..k-1 (for the
    compacted circuit), or on their physical indices (for the whole-device ISA circuit)."""
    index = {physical: k if relabel else physical for k, physical in enumerate(active)}
    model = NoiseModel(basis_gates=full.basis_gates)
    for name, error in full._default_quantum_errors.items():
        model.add_all_qubit_quantum_error(error, name, warnings=False)
    for name, per_qubits in full._local_quantum_errors.items():
        for qubits, error in per_qubits.items():
            if all(q in index for q in qubits):
                model.add_quantum_error(error, name, [index[q] for q in qubits], warnings=False)
    chosen = np.asarray(active) if relabel else slice(None)
    for noise_pass in full._custom_noise_passes:
        if not isinstance(noise_pass, RelaxationNoisePass):
            raise NotImplementedError(f"cannot restrict noise pass {type(noise_pass).__name__}")
        model._custom_noise_passes.append(
            RelaxationNoisePass(
                list(noise_pass._t1s[chosen]),
                list(noise_pass._t2s[chosen]),
                dt=noise_pass._dt,
                op_types=noise_pass._ops,
                excited_state_populations=list(noise_pass._p1s[chosen]),
            )
        )
    return model


def device_simulator(device: BackendV2, full: NoiseModel, circuits: list[QuantumCircuit]) -> AerSimulator:
    """An Aer simulator of ``device`` for its ISA ``circuits``: the device's target, and its noise
    (gates, relaxation, readout) on the qubits they touch only, simulated as one density matrix.

    What the runtime's local mode runs a job on. Given the fake device itself it rebuilds a noise
    model of the whole device for every job and sends it to Aer (30-45 s a job for 7 qubits); the
    noise on idle qubits changes nothing in the counts. The density matrix of the active qubits (Aer
    truncates the others) gives every shot from one simulation, with the same distribution of counts
    as the trajectories.
    """
    active = shared_active_qubits(circuits)
    model = _restricted_gate_noise(full, active, relabel=False)
    for qubit in active:
        error = full._local_readout_errors.get((qubit,), full._default_readout_error)
        if error is not None:
            model.add_readout_error(error, [qubit], warnings=False)
    return AerSimulator.from_backend(device, noise_model=model, method="density_matrix")


def _readout_matrices(full: NoiseModel, circuit: QuantumCircuit, active: list[int]) -> np.ndarray:
    readout = np.tile(np.eye(2), (circuit.num_clbits, 1, 1))
    for ins in circuit.data:
        if ins.operation.name == "measure":
            physical = active[circuit.find_bit(ins.qubits[0]).index]
            error = full._local_readout_errors.get((physical,), full._default_readout_error)
            if error is not None:
                readout[circuit.find_bit(ins.clbits[0]).index] = np.asarray(error.probabilities)
    return readout


def device_simulation(isa: QuantumCircuit, full_model: NoiseModel) -> NoisySimulation:
    """Compact an ISA circuit and restrict the device's noise model to its active qubits."""
    active = active_qubits(isa)
    compact = _compact(isa, active)
    return NoisySimulation(
        compact, _restricted_gate_noise(full_model, active), _readout_matrices(full_model, compact, active)
    )


def sample(
    simulation: NoisySimulation, simulator: AerSimulator, values: np.ndarray, shots: int, rng: np.random.Generator
) -> np.ndarray:
    """Frequencies (batch, 2^num_clbits) of ``shots`` noisy shots per row of parameter values."""
    circuit = simulation.circuit
    parameters = list(circuit.parameters)
    binds = [{p: values[:, j] for j, p in enumerate(parameters)}] if parameters else None
    result = simulator.run(
        circuit, shots=shots, parameter_binds=binds, seed_simulator=int(rng.integers(2**31))
    ).result()
    num_bits = circuit.num_clbits
    flips = simulation.readout[:, [0, 1], [1, 0]]  # P(read 1 | 0), P(read 0 | 1) per clbit
    rows = []
    for i in range(len(values) if parameters else 1):
        counts = result.data(i)["counts"]  # hex outcome -> count, over the outcomes seen (<= shots)
        outcomes = np.repeat([int(key, 16) for key in counts], list(counts.values()))
        bits = (outcomes[:, None] >> np.arange(num_bits)) & 1
        flipped = bits ^ (rng.random(bits.shape) < flips[np.arange(num_bits), bits])
        rows.append(np.bincount(flipped @ (1 << np.arange(num_bits)), minlength=2**num_bits) / shots)
    return np.stack(rows)


MAX_DENSITY_QUBITS = 10  # a 2^N x 2^N complex density matrix: 16 MB at 10 qubits, 1 GB (and minutes) at 13


@dataclass
class DensityProgram:
    """The unmeasured circuit with a probability snapshot of the measured qubits, for Aer's density matrix."""

    circuit: QuantumCircuit
    readout: np.ndarray  # (num_bits, 2, 2), as in NoisySimulation
    simulator: AerSimulator


def density_program(simulation: NoisySimulation, device: str = "CPU") -> DensityProgram:
    """Replace the measurements by a probability snapshot of the measured qubits in clbit order.

    Raises ValueError when the (compacted) circuit is wider than `MAX_DENSITY_QUBITS`.
    """
    circuit = simulation.circuit
    if circuit.num_qubits > MAX_DENSITY_QUBITS:
        raise ValueError(
            f"the exact noisy distribution needs a {circuit.num_qubits}-qubit density matrix; at most "
            f"{MAX_DENSITY_QUBITS} qubits are supported (use fewer qubits or more weights per state)"
        )
    measured = {
        circuit.find_bit(ins.clbits[0]).index: circuit.find_bit(ins.qubits[0]).index
        for ins in circuit.data
        if ins.operation.name == "measure"
    }
    bare = circuit.remove_final_measurements(inplace=False)
    bare.save_probabilities(qubits=[measured[k] for k in range(circuit.num_clbits)])
    simulator = AerSimulator(method="density_matrix", noise_model=simulation.noise_model, device=device)
    return DensityProgram(bare, simulation.readout, simulator)


def exact_distribution(program: DensityProgram, values: np.ndarray) -> np.ndarray:
    """Noisy outcome probabilities (batch, 2^num_bits) without shot noise, readout errors included.

    Readout acts on each measured bit independently: P_read = (R_0 x ... x R_{n-1})^T P_true, applied
    one bit (tensor axis) at a time.
    """
    parameters = list(program.circuit.parameters)
    binds = [{p: values[:, j] for j, p in enumerate(parameters)}] if parameters else None
    result = program.simulator.run(program.circuit, parameter_binds=binds).result()
    num_bits = len(program.readout)
    rows = []
    for i in range(len(values) if parameters else 1):
        probs = np.asarray(result.data(i)["probabilities"]).reshape((2,) * num_bits)
        for bit in range(num_bits):  # bit k is axis num_bits - 1 - k of the little-endian index
            axis = num_bits - 1 - bit
            probs = np.moveaxis(np.tensordot(program.readout[bit].T, probs, axes=([1], [axis])), 0, axis)
        rows.append(probs.reshape(-1))
    return np.stack(rows)
