"""The fast exact paths: the torch engine's reverse sweep, Aer's shared forward, the main job's configuration.

Gradients are checked against central finite differences of Qiskit's `Statevector` and against
parameter shift on Aer's probabilities, never against the engine itself.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.quantum_info import Statevector

from qtrain_qiskit import backends
from qtrain_qiskit.ansatz import build_ansatz
from qtrain_qiskit.benchmark import CIFAR_SUITE, SUITE, compare_steps, suite_config
from qtrain_qiskit.commands.train import MAIN_JOB, run_config
from qtrain_qiskit.config import Config, apply, build_parser, load_yaml

REPO = Path(__file__).resolve().parents[1]


def probabilities(circuit: QuantumCircuit, values: np.ndarray) -> np.ndarray:
    return np.stack([Statevector(circuit.assign_parameters(row)).probabilities() for row in values])


def finite_difference_vjp(circuit: QuantumCircuit, values: np.ndarray, grad: np.ndarray, eps: float = 1e-6):
    rows = []
    for row, g in zip(values, grad, strict=True):
        shifts = [probabilities(circuit, [row + eps * e, row - eps * e]) for e in np.eye(len(row))]
        rows.append([g @ (plus - minus) / (2 * eps) for plus, minus in shifts])
    return np.array(rows)


def ry_circuits() -> dict[str, QuantumCircuit]:
    """Circuits the reverse sweep takes: fixed gates before an RY in a slot, shared and affine angles."""
    t = ParameterVector("t", 4)
    mixed = QuantumCircuit(4)
    mixed.h(0)
    mixed.ry(1.7 * t[0] - 0.4, 0)
    mixed.ry(t[1], 1)
    mixed.cx(0, 2)
    mixed.cz(1, 3)
    mixed.x(3)
    mixed.ry(t[0], 3)
    mixed.swap(0, 3)
    mixed.ry(t[2], 2)
    mixed.cx(2, 1)
    mixed.ry(t[3], 1)
    return {
        "linear_3x3": build_ansatz(3, 3),
        "circular_6x2": build_ansatz(6, 2, "circular"),  # two chunks of qubits
        "linear_11x2": build_ansatz(11, 2),  # three chunks
        "mixed": mixed,
    }


@pytest.mark.parametrize("name", list(ry_circuits()))
def test_reverse_sweep_matches_finite_differences(name):
    circuit = ry_circuits()[name]
    engine = backends.get_backend("torch_statevector", precision="float64")
    assert engine.program(circuit).adjoint is not None  # the sweep, not the autograd fallback, is under test
    rng = np.random.default_rng(len(name))
    values = rng.uniform(-np.pi, np.pi, (3, circuit.num_parameters))  # one factor per row
    grad = rng.normal(size=(3, 2**circuit.num_qubits))
    np.testing.assert_allclose(engine.probabilities(circuit, values), probabilities(circuit, values), atol=1e-10)
    expected = finite_difference_vjp(circuit, values, grad)
    np.testing.assert_allclose(engine.vjp(circuit, values, grad), expected, rtol=1e-6, atol=1e-8)


def compiled_kernel_circuits() -> dict[str, QuantumCircuit]:
    """Circuits that reach each of the compiled loops' kernels: 1 and 2 qubits are too few for the pass
    over qubits 0-2 (one single-qubit pass, one pair pass); 13 qubits take it, then pairs of qubits
    with runs of 8 to 2048 amplitudes. The wide mixed one adds a gather before any layer, a cz after
    the last, fixed gates, shared and affine angles, and slots a layer leaves empty."""
    t = ParameterVector("t", 14)
    wide = QuantumCircuit(13)
    wide.cx(0, 1)
    wide.h([0, 7])
    for q in range(13):
        wide.ry(t[q % 12] if q % 5 else 0.8 * t[q % 12] + 0.3, q)
    wide.cz(1, 12)
    wide.swap(2, 9)
    for q in range(12):
        wide.cx(q, q + 1)
    wide.x(5)
    for q in (0, 2, 3, 5, 8, 11, 12):
        wide.ry(t[12] if q < 6 else t[13], q)
    wide.cz(3, 4)
    one, two = QuantumCircuit(1), QuantumCircuit(2)
    one.h(0)
    one.ry(1.5 * t[0] - 0.2, 0)
    two.ry(t[0], 0)
    two.ry(t[1], 1)
    two.cx(0, 1)
    two.ry(1.5 * t[2], 1)
    return {
        "one_qubit": one,
        "two_qubits": two,
        "linear_5x2": build_ansatz(5, 2),  # the smallest CNOT chain gathered without an index
        "linear_7x3": build_ansatz(7, 3),  # qubits 5 and 6 in runs of 32, nothing after them
        "linear_13x2": build_ansatz(13, 2),
        "wide_mixed_13": wide,
    }


@pytest.mark.parametrize("name", ["linear_3x3", "circular_6x2", "mixed", "linear_11x2", *compiled_kernel_circuits()])
def test_one_small_parameter_set_runs_compiled_and_matches_statevector_and_finite_differences(name):
    """Up to COMPILED_QUBITS one parameter set on CPU runs as `compiled_sweep`'s two loops (cz's signs,
    swap's and cx's gathers, fixed gates before an RY included), in float64 to 1e-10 of `Statevector`."""
    circuit = {**ry_circuits(), **compiled_kernel_circuits()}[name]
    assert circuit.num_qubits <= backends.compiled_sweep.COMPILED_QUBITS
    rng = np.random.default_rng(len(name))
    values = rng.uniform(-np.pi, np.pi, (1, circuit.num_parameters))
    weights = rng.normal(size=(1, 2**circuit.num_qubits))
    gradients = {}
    for precision in ("float64", "float32"):
        engine = backends.get_backend("torch_statevector", precision=precision)
        angles = torch.tensor(values, dtype=getattr(torch, precision), requires_grad=True)
        probs = engine.torch_probabilities(circuit, angles)
        assert probs.grad_fn.name() == "CompiledProbabilitiesBackward"
        (probs * torch.tensor(weights, dtype=probs.dtype)).sum().backward()
        gradients[precision] = angles.grad.double().numpy()
        tolerance = 1e-10 if precision == "float64" else 1e-6
        np.testing.assert_allclose(probs.detach().double().numpy(), probabilities(circuit, values), atol=tolerance)
    expected = finite_difference_vjp(circuit, values, weights)
    np.testing.assert_allclose(gradients["float64"], expected, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gradients["float32"], expected, atol=1e-5)


@pytest.mark.parametrize("num_qubits", [4, 5, 6, 9, 12])
def test_compiled_chain_gathers_are_the_index_gathers(num_qubits):
    """A linear CNOT chain's permutation and its inverse, computed at fixed offsets, move every amplitude
    where the index arrays do (from 2^5 amplitudes; below, the plan keeps the index)."""
    loops = backends.compiled_sweep
    engine = backends.get_backend("torch_statevector", precision="float64")
    plan = loops.CompiledPlan(engine.program(build_ansatz(num_qubits, 2)), torch.float64)
    assert plan.chain.tolist() == [num_qubits >= 5] * 2
    if num_qubits < 5:
        return
    rng = np.random.default_rng(num_qubits)
    state, adjoint = rng.normal(size=(2, 2**num_qubits))
    out, out_adjoint = np.empty_like(state), np.empty_like(state)
    loops._chain_gather(out, state)
    np.testing.assert_array_equal(out, state[plan.perms[0]])
    loops._prefix_gathers(out, out_adjoint, state, adjoint)
    np.testing.assert_array_equal(out, state[plan.inverse_perms[0]])
    np.testing.assert_array_equal(out_adjoint, adjoint[plan.inverse_perms[0]])


@pytest.mark.parametrize("name", ["two_qubits", "linear_7x3", "wide_mixed_13"])
def test_compiled_reverse_from_kept_states_is_the_uncomputing_one(name):
    """The training path's reverse sweep reads the states its forward kept; the one from a final state
    alone (another simulator's, on the card's path) uncomputes it: both give the same overlaps."""
    circuit = compiled_kernel_circuits()[name]
    engine = backends.get_backend("torch_statevector", precision="float64")
    program = engine.program(circuit)
    plan = backends.compiled_sweep.CompiledPlan(program, torch.float64)
    rng = np.random.default_rng(3)
    values = torch.tensor(rng.uniform(-np.pi, np.pi, (1, circuit.num_parameters)))
    layers = plan.layers(backends.torch_statevector._slot_matrices(program, values, torch.float64))
    state, buffers, kept = plan.kept_states(layers)
    np.testing.assert_array_equal(state, plan.state(layers))
    adjoint = rng.normal(size=state.shape) * state
    expected = plan.overlaps(layers, state, adjoint.copy())
    np.testing.assert_allclose(plan.kept_overlaps(layers, buffers, kept, adjoint), expected, atol=1e-12)


def test_an_angle_under_a_later_gate_takes_autograd_and_stays_exact():
    t = ParameterVector("t", 2)
    circuit = QuantumCircuit(2)
    circuit.ry(t[0], 0)
    circuit.h(0)  # dK/dtheta is no longer (-iY/2) K: the sweep does not apply
    circuit.cx(0, 1)
    circuit.rx(t[1], 1)
    engine = backends.get_backend("torch_statevector", precision="float64")
    assert engine.program(circuit).adjoint is None
    values, grad = np.array([[0.3, -1.1]]), np.random.default_rng(0).normal(size=(1, 4))
    np.testing.assert_allclose(engine.vjp(circuit, values, grad), finite_difference_vjp(circuit, values, grad),
                               rtol=1e-6, atol=1e-8)  # fmt: skip


@pytest.mark.parametrize("rows", [1, 2])
def test_training_path_gradient_is_the_sweep_in_float32_too(rows):
    """One parameter set (training) takes the compiled loops, two the torch engine's sweep."""
    circuit = build_ansatz(13, 3)
    values = torch.tensor(np.random.default_rng(1).uniform(-3, 3, (rows, circuit.num_parameters)))
    weights = torch.randn(rows, 2**13, dtype=torch.float64)
    gradients = []
    for precision in ("float32", "float64"):
        engine = backends.get_backend("torch_statevector", precision=precision)
        angles = values.to(getattr(torch, precision)).clone().requires_grad_(True)
        probs = engine.torch_probabilities(circuit, angles)
        assert probs.grad_fn.name() == (
            "CompiledProbabilitiesBackward" if rows == 1 else "_AdjointProbabilitiesBackward"
        )
        (probs * weights.to(probs.dtype)).sum().backward()
        gradients.append(angles.grad.double())
    float64 = gradients[1].numpy()
    expected = backends.get_backend("qiskit_statevector")  # no reverse pass: finite differences of it
    assert not expected.supports_vjp()
    np.testing.assert_allclose(float64, finite_difference_vjp(circuit, values.numpy(), weights.numpy()), atol=1e-8)
    np.testing.assert_allclose(gradients[0].numpy(), float64, atol=1e-5)


def parameter_shift_vjp(backend, circuit: QuantumCircuit, values: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """RY angles: dP/dtheta = (P(theta + pi/2) - P(theta - pi/2)) / 2, each P from ``backend``."""
    shift = np.pi / 2 * np.eye(values.shape[1])
    plus, minus = backend.probabilities(circuit, values + shift), backend.probabilities(circuit, values - shift)
    return ((plus - minus) / 2 @ grad[0])[None]


def test_aer_reverse_pass_starts_from_aer_forward_and_matches_parameter_shift():
    aer = backends.get_backend("aer_statevector")
    circuit = build_ansatz(5, 3)
    rng = np.random.default_rng(2)
    values, grad = rng.uniform(-np.pi, np.pi, (1, circuit.num_parameters)), rng.normal(size=(1, 32))
    probs = aer.probabilities(circuit, values)
    np.testing.assert_allclose(probs, probabilities(circuit, values), atol=1e-12)
    assert aer.sampler.final_states(circuit, values) is not None  # the forward's state is there to share
    shared = aer.vjp(circuit, values, grad)
    np.testing.assert_allclose(shared, parameter_shift_vjp(aer, circuit, values, grad), atol=1e-10)
    other = values + 0.1  # a vjp at other angles than the latest forward simulates them itself
    assert aer.sampler.final_states(circuit, other) is None
    np.testing.assert_allclose(aer.vjp(circuit, other, grad), finite_difference_vjp(circuit, other, grad), atol=1e-8)


def test_aer_binds_angles_that_are_not_affine_through_aer_own_conversion():
    t = ParameterVector("t", 2)
    circuit = QuantumCircuit(2)
    circuit.ry(t[0] * t[1], 0)  # two parameters in one angle: no affine column, Aer converts it
    circuit.cx(0, 1)
    circuit.ry(t[1], 1)
    aer = backends.get_backend("aer_statevector")
    values = np.array([[0.7, -1.3], [2.0, 0.4]])
    np.testing.assert_allclose(aer.probabilities(circuit, values), probabilities(circuit, values), atol=1e-12)
    assert aer.sampler._program(circuit).angles is None


def test_main_job_is_mnist_hardware_at_10_epochs_on_the_card_path_and_the_reference_is_one_flag_away():
    parse = build_parser("test", extra=lambda p: p.add_argument("--resume")).parse_args
    main = run_config(parse([]), None)
    shipped = apply(Config(), load_yaml(REPO / "configs" / "mnist_hardware.yaml"), "mnist_hardware.yaml")
    shipped.name, shipped.execution.backend, shipped.train.epochs = "mnist_main", "aer_statevector", 10
    assert main.to_dict() == shipped.to_dict()
    assert MAIN_JOB["execution"]["backend"] == "aer_statevector"
    reference = run_config(parse(["--config", str(REPO / "configs" / "mnist.yaml")]), None)
    assert reference.to_dict() == Config().to_dict()
    assert run_config(parse(["--epochs", "2"]), None).model.weights_per_state == 64  # flags go on top of it


def test_every_benchmark_suite_entry_is_a_valid_configuration():
    labels = {label for label, *_ in SUITE + CIFAR_SUITE}
    for label, source, flags, baseline in SUITE + CIFAR_SUITE:
        config = suite_config(source, flags, REPO / "configs", {"batch_size": 64})
        assert config.train.batch_size == 64 and (baseline is None or baseline in labels), label
    assert suite_config(*SUITE[2][1:3], REPO / "configs", {}).execution.backend == "aer_statevector"


def test_suite_parts_time_the_circuit_and_the_mapping_each_alone():
    """--parts adds, per QT entry, its circuit and its mapping timed in the same turns, and each part's
    backward reaches only its own parameters (the circuit's angles, the mapping's weights)."""
    entries = SUITE[:2] + SUITE[3:4]  # classical, torch reference, mnist_hardware (with its train shots)
    rows = compare_steps(entries, REPO / "configs", {"batch_size": 8}, repeats=1, warmup=0, parts=True)
    labels = [row["step"] for row in rows]
    assert labels[:3] == [label for label, *_ in entries]
    assert labels[3:] == [f"{entries[i][0]} / {part}" for i in (1, 2) for part in ("circuit", "mapping")]
    assert all(row["cpu_ratio"] > 0 and row["flags"]["part"] in ("circuit", "mapping") for row in rows[3:])

    from qtrain_qiskit.benchmark import part_steps, training_step

    model, _ = training_step(suite_config(SUITE[3][1], SUITE[3][2], REPO / "configs", {"batch_size": 8}))
    parts = part_steps(model)
    for part, touched, untouched in (
        ("circuit", model.quantum, model.mapping),
        ("mapping", model.mapping, model.quantum),
    ):
        model.zero_grad(set_to_none=True)
        parts[part]()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in touched.parameters()), part
        assert all(p.grad is None for p in untouched.parameters()), part
