"""Conformance suite: every registered exact backend against Qiskit's `Statevector`."""

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.quantum_info import Statevector
from qtrain_qiskit.backends import Backend, register

from qtrain_qiskit import backends
from qtrain_qiskit.ansatz import build_ansatz

# The fast exact executors, each checked against the reference backend's Statevector (which is
# itself checked against closed forms below, not against itself).
EXACT = [
    name
    for name in backends.available()
    if backends.backend_class(name).exact and not backends.backend_class(name).noisy and name != "qiskit_statevector"
]
ONE_QUBIT_PARAM = ("ry", "rx", "rz", "p")
ONE_QUBIT_FIXED = ("h", "x", "y", "z", "s", "sdg", "t", "sx")
TWO_QUBIT = ("cx", "cz", "swap")


def random_circuit(num_qubits: int, depth: int, seed: int) -> QuantumCircuit:
    """Random layers of every gate the torch engine claims, with affine parameter expressions."""
    rng = np.random.default_rng(seed)
    theta = ParameterVector("t", num_qubits * depth)
    circuit, k = QuantumCircuit(num_qubits), 0
    for _ in range(depth):
        for qubit in range(num_qubits):
            name = rng.choice(ONE_QUBIT_PARAM + ONE_QUBIT_FIXED)
            if name in ONE_QUBIT_PARAM:
                angle = theta[k] if rng.random() < 0.5 else 1.7 * theta[k] - 0.4
                getattr(circuit, name)(angle, qubit)
                k += 1
            else:
                getattr(circuit, name)(qubit)
        for _ in range(num_qubits - 1):
            a, b = (int(q) for q in rng.permutation(num_qubits)[:2])
            getattr(circuit, rng.choice(TWO_QUBIT))(a, b)
    return circuit


def reference(circuit: QuantumCircuit, values: np.ndarray) -> np.ndarray:
    return np.stack([Statevector(circuit.assign_parameters(row)).probabilities() for row in values])


# Options beside the defaults: the torch engine trains in float32, and is checked here at float64.
PRECISE = {"torch_statevector": {"precision": "float64"}}


@pytest.fixture(params=EXACT)
def backend(request) -> Backend:
    return backends.get_backend(request.param, **PRECISE.get(request.param, {}))


@pytest.mark.parametrize(("num_qubits", "depth", "seed"), [(1, 3, 0), (2, 3, 1), (3, 4, 2), (5, 3, 3), (6, 2, 4)])
def test_matches_statevector_on_random_circuits(backend, num_qubits, depth, seed):
    circuit = random_circuit(num_qubits, depth, seed)
    values = np.random.default_rng(seed).uniform(-np.pi, np.pi, (3, circuit.num_parameters))
    probs = backend.probabilities(circuit, values)
    assert probs.shape == (3, 2**num_qubits)
    assert probs.dtype == np.float64
    np.testing.assert_allclose(probs, reference(circuit, values), atol=1e-10, rtol=0)


def irregular_circuit() -> QuantumCircuit:
    """Starts with two-qubit gates, leaves qubits idle, stacks gates on one qubit, repeats a parameter."""
    theta = ParameterVector("t", 3)
    circuit = QuantumCircuit(4)
    circuit.x(1)
    circuit.cx(1, 3)
    circuit.cz(0, 3)
    circuit.ry(theta[0], 2)
    circuit.rx(theta[1], 2)
    circuit.h(2)
    circuit.barrier()
    circuit.swap(2, 0)
    circuit.rz(theta[2], 0)
    circuit.ry(0.5 * theta[0] + 1.0, 3)
    circuit.cx(3, 2)
    return circuit


def test_matches_statevector_on_an_irregular_circuit(backend):
    circuit = irregular_circuit()
    values = np.random.default_rng(3).uniform(-np.pi, np.pi, (2, circuit.num_parameters))
    np.testing.assert_allclose(backend.probabilities(circuit, values), reference(circuit, values), atol=1e-10, rtol=0)


def test_matches_statevector_on_the_reference_ansatz(backend):
    circuit = build_ansatz(13, 2)
    values = np.random.default_rng(7).uniform(-np.pi, np.pi, (1, circuit.num_parameters))
    np.testing.assert_allclose(backend.probabilities(circuit, values), reference(circuit, values), atol=1e-10, rtol=0)


def test_little_endian_outcome_order(backend):
    # X on qubit 0 of 3 -> outcome '001' = index 1; X on qubit 2 -> index 4.
    for qubit, index in ((0, 1), (1, 2), (2, 4)):
        theta = ParameterVector("t", 1)
        circuit = QuantumCircuit(3)
        circuit.ry(theta[0], qubit)
        probs = backend.probabilities(circuit, np.array([[np.pi]]))[0]
        assert probs[index] == pytest.approx(1.0, abs=1e-12)


def test_one_dimensional_values_are_one_row(backend):
    circuit = build_ansatz(2, 1)
    assert backend.probabilities(circuit, np.zeros(2)).shape == (1, 4)


def test_wrong_parameter_count_is_refused(backend):
    with pytest.raises(ValueError, match=r"shape \(batch, 4\)"):
        backend.probabilities(build_ansatz(2, 2), np.zeros((1, 3)))


def test_vjp_matches_finite_differences_where_offered(backend):
    if not backend.supports_vjp():
        pytest.skip(f"{backend.name} has no reverse pass")
    circuit = random_circuit(3, 3, 11)
    rng = np.random.default_rng(5)
    values, grad = rng.uniform(-2, 2, circuit.num_parameters), rng.normal(size=8)
    eps = 1e-6
    numeric = np.array(
        [
            grad @ (reference(circuit, [values + eps * e])[0] - reference(circuit, [values - eps * e])[0]) / (2 * eps)
            for e in np.eye(len(values))
        ]
    )
    np.testing.assert_allclose(backend.vjp(circuit, values[None], grad[None])[0], numeric, rtol=1e-6, atol=1e-9)


def test_registry_lists_and_refuses():
    assert {"aer_statevector", "torch_statevector", "qiskit_statevector"} <= set(backends.available())
    with pytest.raises(
        ValueError, match=r"unknown backend .nope.; available: aer_density, aer_noisy, aer_shots, aer_statevector"
    ):
        backends.get_backend("nope")

    class Clash(Backend):
        name = "aer_statevector"

        def _probabilities(self, circuit, values):
            raise NotImplementedError

    with pytest.raises(ValueError, match="already registered"):
        register(Clash)
    Clash.name = "Bad Name"
    with pytest.raises(ValueError, match="must match"):
        register(Clash)


def test_aer_sampler_is_a_sampler_v2_with_exact_probabilities():
    sampler = backends.get_backend("aer_statevector").sampler
    circuit = build_ansatz(3, 2)
    values = np.random.default_rng(0).uniform(-1, 1, (2, 4, circuit.num_parameters))
    result = sampler.run([(circuit, values)]).result()
    probs = result[0].data.probabilities
    assert probs.shape == (2, 4, 8)
    np.testing.assert_allclose(probs.reshape(8, 8), reference(circuit, values.reshape(8, -1)), atol=1e-12)
    with pytest.raises(ValueError, match="aer_shots"):
        sampler.run([(circuit, values)], shots=100)


def test_torch_engine_refuses_unsupported_gates():
    circuit = QuantumCircuit(3)
    circuit.ccx(0, 1, 2)
    with pytest.raises(ValueError, match="cannot simulate gate 'ccx'"):
        backends.get_backend("torch_statevector").probabilities(circuit, np.zeros((1, 0)))


def test_reference_backend_matches_closed_forms():
    """RY(a) on q0, CNOT q0->q1, RY(b) on q1: P(q1 q0) in closed form, little-endian."""
    a, b = ParameterVector("t", 2)
    circuit = QuantumCircuit(2)
    circuit.ry(a, 0)
    circuit.cx(0, 1)
    circuit.ry(b, 1)
    values = np.array([[0.7, -1.9], [2.5, 0.3]])
    got = backends.get_backend("qiskit_statevector").probabilities(circuit, values)
    for (x, y), probs in zip(values, got, strict=True):
        c0, s0, c1, s1 = np.cos(x / 2) ** 2, np.sin(x / 2) ** 2, np.cos(y / 2) ** 2, np.sin(y / 2) ** 2
        expected = [c0 * c1, s0 * s1, c0 * s1, s0 * c1]  # outcomes 00, 01, 10, 11 as (q1 q0)
        np.testing.assert_allclose(probs, expected, atol=1e-12)
