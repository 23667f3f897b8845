"""torch_density: aer_density's exact noisy distribution as torch operations, with autograd."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from qiskit import QuantumCircuit
from qiskit.quantum_info import DensityMatrix, Operator, SuperOp
from qtrain_qiskit.backends.devices import device_noise_model, fake_device
from qtrain_qiskit.backends.noisy_simulation import (
    NoisySimulation,
    _restricted_gate_noise,
    density_program,
    exact_distribution,
)
from qtrain_qiskit.backends.torch_density import compile_noisy, simulate_noisy

from qtrain_qiskit import backends
from qtrain_qiskit.ansatz import build_ansatz, qubits_for
from qtrain_qiskit.gradients import get_gradient, gradient_method
from qtrain_qiskit.targets import build_target, count_parameters

REPO = Path(__file__).resolve().parents[1]
NOISE = {"depolarizing_2q": 0.02, "readout_error": 0.03}


def device_configuration_circuit() -> QuantumCircuit:
    """The circuit of configs/mnist_hardware.yaml (7 qubits x 8 blocks), read from the file."""
    config = yaml.safe_load((REPO / "configs" / "mnist_hardware.yaml").read_text())
    weights = count_parameters(build_target("mnist_cnn"))
    return build_ansatz(qubits_for(weights, config["model"]["weights_per_state"]), config["circuit"]["blocks"])


@pytest.mark.parametrize("device", ["fake_torino", "fake_sherbrooke"])
def test_agrees_with_aer_density_on_the_device_configuration(device):
    circuit = device_configuration_circuit()
    assert (circuit.num_qubits, circuit.num_parameters) == (7, 56)
    backend = backends.get_backend("torch_density", noise=device, seed=0, density_precision="float64")
    values = np.random.default_rng(0).uniform(-np.pi, np.pi, (3, circuit.num_parameters))
    ours = backend.probabilities(circuit, values)
    aer = backends.get_backend("aer_density", noise=device, seed=0).probabilities(circuit, values)
    noiseless = backends.get_backend("torch_statevector", precision="float64").probabilities(circuit, values)
    assert np.abs(ours - aer).max() <= 1e-10
    assert np.abs(ours - noiseless).sum(axis=1).min() / 2 > 0.05  # the device's noise is in it
    assert any(len(group) == 2 for group in backend.program(circuit).groups)  # the 64 x 64 merges are used


@pytest.mark.parametrize("device", ["fake_torino", "fake_sherbrooke"])
def test_float32_agrees_with_aer_density_to_1e_6_and_its_gradient_with_aers_finite_differences(device):
    # density_precision float32: the cheaper step, documented as ~1e-6 from Aer (measured 1.6e-7 on P,
    # 3e-7 on these gradients); float64 stays the default and the 1e-10 agreement above.
    circuit = device_configuration_circuit()
    backend = backends.get_backend("torch_density", noise=device, seed=0, density_precision="float32")
    aer = backends.get_backend("aer_density", noise=device, seed=0)
    values = np.random.default_rng(0).uniform(-np.pi, np.pi, (3, circuit.num_parameters))
    difference = np.abs(backend.probabilities(circuit, values) - aer.probabilities(circuit, values)).max()
    assert 1e-12 < difference <= 1e-6  # float32 indeed (float64 agrees to ~1e-14), and within its bound
    tensor = torch.tensor(values[:1], dtype=torch.float32, requires_grad=True)
    probs = backend.torch_probabilities(circuit, tensor)
    assert probs.dtype == torch.float32
    weights = np.random.default_rng(6).normal(size=probs.shape[1])
    (probs[0] @ torch.tensor(weights, dtype=torch.float32)).backward()
    h = 1e-4
    for j in (0, 27, 55):
        step = np.zeros_like(values[:1])
        step[0, j] = h
        up, down = (aer.probabilities(circuit, values[:1] + sign * step)[0] @ weights for sign in (1, -1))
        assert abs(float(tensor.grad[0, j]) - (up - down) / (2 * h)) < 2e-6


def test_density_precision_is_a_run_option_with_float32_by_default():
    """Training runs in float32 (the torch engines' training precision); float64 is one key away and is
    what the agreement tests above ask for."""
    from qtrain_qiskit.build import build_backend
    from qtrain_qiskit.config import Config, ConfigError, apply, validate

    settings = {"backend": "torch_density", "noise": "fake_torino", "weights_per_state": 64}
    default = validate(apply(Config(), settings, "test"))
    assert default.execution.density_precision == "float32"
    assert build_backend(default, torch.device("cpu")).dtype == torch.float32
    chosen = validate(apply(Config(), {**settings, "density_precision": "float64"}, "test"))
    assert build_backend(chosen, torch.device("cpu")).dtype == torch.float64
    with pytest.raises(ConfigError, match="density_precision: 'float16' is not one of float32, float64"):
        validate(apply(Config(), {**settings, "density_precision": "float16"}, "test"))


@pytest.mark.parametrize("noise", ["depolarizing", "fake_guadalupe"])
def test_agrees_with_aer_density_under_parametric_and_small_device_noise(noise):
    circuit = build_ansatz(4, 3)
    values = np.random.default_rng(1).uniform(-np.pi, np.pi, (2, circuit.num_parameters))
    ours = backends.get_backend("torch_density", noise=noise, **NOISE, density_precision="float64").probabilities(
        circuit, values
    )
    aer = backends.get_backend("aer_density", noise=noise, **NOISE).probabilities(circuit, values)
    assert np.abs(ours - aer).max() <= 1e-12


def test_relaxation_after_delays_and_directed_gates_match_aer():
    # A scheduled circuit's delays get thermal relaxation from the noise model's pass; ECR is directed.
    noise = _restricted_gate_noise(device_noise_model(fake_device("fake_sherbrooke")), [0, 1])
    (a, b) = next(iter(noise._local_quantum_errors["ecr"]))
    circuit = QuantumCircuit(2, 2)
    circuit.sx(0)
    circuit.rz(0.3, 1)
    circuit.delay(2000, 0, unit="ns")
    circuit.ecr(a, b)
    circuit.x(1)
    circuit.measure([0, 1], [1, 0])
    readout = np.array([[[0.97, 0.03], [0.1, 0.9]], [[0.99, 0.01], [0.04, 0.96]]])
    simulation = NoisySimulation(circuit, noise, readout)
    ours = simulate_noisy(
        compile_noisy(simulation, torch.float64, torch.device("cpu")), torch.zeros(1, 0), torch.float64
    )
    aer = exact_distribution(density_program(simulation), np.zeros((1, 0)))
    np.testing.assert_allclose(ours.numpy(), aer, atol=1e-12)
    without_delay = circuit.copy_empty_like()
    for instruction in circuit.data:
        if instruction.operation.name != "delay":
            without_delay.append(instruction)
    plain = exact_distribution(density_program(NoisySimulation(without_delay, noise, readout)), np.zeros((1, 0)))
    assert np.abs(plain - aer).max() > 1e-4  # the delay's relaxation is resolved


def test_agrees_with_an_independent_density_matrix_up_to_aers_dropped_terms():
    # qiskit.quantum_info evolves the full channels; Aer (and so this engine) drops mixture terms of
    # probability <= 1e-10, which moves fake_torino's outcome probabilities by < 1e-9.
    circuit = build_ansatz(3, 2)
    backend = backends.get_backend("torch_density", noise="fake_torino", seed=0, density_precision="float64")
    values = np.random.default_rng(2).uniform(-np.pi, np.pi, circuit.num_parameters)
    ours = backend.probabilities(circuit, values)[0]
    simulation = backend.reference.prepare(circuit)
    bound = simulation.circuit.assign_parameters(dict(zip(simulation.circuit.parameters, values, strict=True)))
    rho, measured = DensityMatrix.from_label("0" * bound.num_qubits), {}
    for instruction in bound.data:
        name, qubits = instruction.operation.name, [bound.find_bit(q).index for q in instruction.qubits]
        if name == "measure":
            measured[bound.find_bit(instruction.clbits[0]).index] = qubits[0]
        elif name != "barrier":
            rho = rho.evolve(Operator(instruction.operation), qubits)
            error = simulation.noise_model._local_quantum_errors.get(name, {}).get(tuple(qubits))
            rho = rho if error is None else rho.evolve(SuperOp(error), qubits)
    probs = rho.probabilities([measured[k] for k in range(len(measured))]).reshape((2,) * len(measured))
    for bit in range(len(measured)):
        axis = len(measured) - 1 - bit
        probs = np.moveaxis(np.tensordot(simulation.readout[bit].T, probs, axes=([1], [axis])), 0, axis)
    np.testing.assert_allclose(ours, probs.reshape(-1), atol=1e-9)


@pytest.mark.parametrize("noise", ["fake_torino", "fake_sherbrooke"])
def test_reverse_mode_gradient_is_aer_density_parameter_shift(noise):
    circuit = build_ansatz(3, 2)
    values = np.random.default_rng(3).uniform(-np.pi, np.pi, circuit.num_parameters)
    ours = backends.get_backend("torch_density", noise=noise, seed=0, density_precision="float64")
    aer = backends.get_backend("aer_density", noise=noise, seed=0)
    shift = get_gradient("param_shift").jacobian(circuit, aer, values)  # (2^n, P), on Aer
    grad = np.random.default_rng(4).normal(size=2**circuit.num_qubits)
    vjp = ours.vjp(circuit, values[None], grad[None])[0]
    np.testing.assert_allclose(vjp, grad @ shift, atol=1e-10)
    assert np.abs(vjp).max() > 0.01


def test_reverse_mode_gradient_matches_finite_differences_on_the_device_configuration():
    circuit = device_configuration_circuit()
    backend = backends.get_backend("torch_density", noise="fake_torino", seed=0, density_precision="float64")
    values = torch.tensor(np.random.default_rng(5).uniform(-np.pi, np.pi, (1, 56)), requires_grad=True)
    weights = torch.tensor(np.random.default_rng(6).normal(size=128))
    (backend.torch_probabilities(circuit, values)[0] @ weights).backward()
    h = 1e-5
    for j in (0, 27, 55):
        step = torch.zeros_like(values)
        step[0, j] = h
        with torch.no_grad():
            up = backend.torch_probabilities(circuit, values + step)[0] @ weights
            down = backend.torch_probabilities(circuit, values - step)[0] @ weights
        assert abs(values.grad[0, j] - (up - down) / (2 * h)) < 1e-8


def assert_agrees_with_aer_and_finite_differences(ours, circuit: QuantumCircuit, seed: int) -> None:
    """P of two parameter sets against `aer_density` (twice: a reused program stays right), and the
    gradient of one set against central finite differences of the engine itself."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(-np.pi, np.pi, (2, circuit.num_parameters))
    aer = backends.get_backend("aer_density", noise="depolarizing", **NOISE).probabilities(circuit, values)
    for _ in range(2):
        np.testing.assert_allclose(ours.probabilities(circuit, values), aer, atol=1e-12)
    tensor = torch.tensor(values[:1], requires_grad=True)
    weights = torch.tensor(rng.normal(size=2**circuit.num_qubits))
    (ours.torch_probabilities(circuit, tensor)[0] @ weights).backward()
    h = 1e-6
    for j in range(circuit.num_parameters):
        step = torch.zeros_like(tensor)
        step[0, j] = h
        with torch.no_grad():
            up, down = (ours.torch_probabilities(circuit, tensor + sign * step)[0] @ weights for sign in (1, -1))
        assert abs(tensor.grad[0, j] - (up - down) / (2 * h)) < 1e-8


def test_gates_off_the_interaction_path_are_moved_and_still_agree_with_aer():
    # A cycle and a branch: no axis order keeps every pair on neighbouring axes, so some gates take the
    # permutation; batch of 2, and the pooled buffers reused across calls give the same numbers.
    from qiskit.circuit import ParameterVector
    from qtrain_qiskit.backends.torch_density import plan_gates

    theta = ParameterVector("t", 8)
    circuit = QuantumCircuit(4)
    for j, (a, b) in enumerate([(0, 1), (0, 2), (0, 3), (2, 3), (1, 3), (0, 1), (2, 1), (3, 0)]):
        circuit.ry(theta[j], a)
        circuit.cx(a, b)
    pairs = [(0, 1), (0, 2), (0, 3), (2, 3), (1, 3)]
    assert any(step.permutation is not None for step in plan_gates(pairs, 4)[0])
    assert all(step.permutation is None for step in plan_gates([(2, 0), (0, 3), (3, 1), (2, 0)], 4)[0])
    ours = backends.get_backend("torch_density", noise="depolarizing", **NOISE, density_precision="float64")
    assert_agrees_with_aer_and_finite_differences(ours, circuit, seed=9)


def test_merged_gate_pairs_of_both_orders_agree_with_aer_and_finite_differences():
    # Two gates on the last three axes are applied as one 64 x 64 matrix, whichever of them comes first.
    from qiskit.circuit import ParameterVector

    theta = ParameterVector("t", 6)
    circuit = QuantumCircuit(3)
    for j, (a, b) in enumerate([(0, 1), (1, 2), (2, 1), (1, 0), (0, 1), (2, 1)]):
        circuit.ry(theta[j], a)
        circuit.cx(a, b)
    ours = backends.get_backend("torch_density", noise="depolarizing", **NOISE, density_precision="float64")
    assert ours.program(circuit).up_kinds == {True, False}
    assert_agrees_with_aer_and_finite_differences(ours, circuit, seed=11)


def test_a_batch_is_its_rows_and_probabilities_stay_a_distribution():
    circuit = build_ansatz(3, 2)
    backend = backends.get_backend("torch_density", noise="fake_guadalupe", density_precision="float64")
    values = np.random.default_rng(7).uniform(-np.pi, np.pi, (3, circuit.num_parameters))
    batch = backend.probabilities(circuit, values)
    rows = np.concatenate([backend.probabilities(circuit, row) for row in values])
    np.testing.assert_allclose(batch, rows, atol=1e-14)
    assert (batch > -1e-14).all() and np.allclose(batch.sum(axis=1), 1, atol=1e-7)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda_in_float64():
    circuit = build_ansatz(4, 2)
    cpu = backends.get_backend("torch_density", noise="fake_torino", seed=0, density_precision="float64")
    cuda = backends.get_backend(
        "torch_density", noise="fake_torino", seed=0, device="cuda", density_precision="float64"
    )
    values = torch.tensor(np.random.default_rng(8).uniform(-np.pi, np.pi, (2, circuit.num_parameters)))
    on_cuda = cuda.torch_probabilities(circuit, values.cuda())
    assert on_cuda.device.type == "cuda" and on_cuda.dtype == torch.float64
    np.testing.assert_allclose(on_cuda.cpu().numpy(), cpu.torch_probabilities(circuit, values).numpy(), atol=1e-12)


def test_is_trained_natively_and_refuses_a_model_too_wide(tmp_path):
    from qtrain_qiskit.config import Config, ConfigError, apply, validate

    cls = backends.backend_class("torch_density")
    assert cls.torch_native and cls.exact and cls.noisy and gradient_method(cls) == "adjoint"
    with pytest.raises(ConfigError, match="torch_density holds a density matrix of at most 10 qubits"):
        validate(apply(Config(), {"backend": "torch_density"}, "test"))
