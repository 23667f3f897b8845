"""aer_density: the exact noisy distribution, differentiable by parameter shift (noise-aware training)."""

import numpy as np
import pytest

from qtrain_qiskit import backends
from qtrain_qiskit.ansatz import build_ansatz
from qtrain_qiskit.config import Config, ConfigError, apply, validate
from qtrain_qiskit.evaluation import total_variation
from qtrain_qiskit.gradients import get_gradient

from .conftest import run_script_inprocess

NOISE = {"depolarizing_2q": 0.02, "readout_error": 0.03}


@pytest.mark.parametrize("noise", ["depolarizing", "fake_guadalupe"])
def test_density_matrix_is_the_limit_of_the_sampled_noisy_simulation(noise):
    # Independent reference: aer_noisy's shots (trajectories, readout flips drawn per shot) at 30,000
    # shots; the sampling error of a TVD over 8 outcomes is ~sqrt(8 / 30000) / 2 ~ 0.008.
    circuit = build_ansatz(3, 2)
    values = np.random.default_rng(0).uniform(-np.pi, np.pi, (2, circuit.num_parameters))
    exact_noisy = backends.get_backend("aer_density", noise=noise, **NOISE).probabilities(circuit, values)
    trajectories = backends.get_backend(
        "aer_noisy", noise=noise, shots=30_000, seed=1, noisy_sampling="trajectories", **NOISE
    )
    sampled = trajectories.probabilities(circuit, values)
    noiseless = backends.get_backend("aer_statevector").probabilities(circuit, values)
    assert np.allclose(exact_noisy.sum(axis=1), 1) and (exact_noisy >= 0).all()
    for p, s, e in zip(exact_noisy, sampled, noiseless, strict=True):
        assert total_variation(p, s) < 0.02
        assert total_variation(p, e) > 3 * total_variation(p, s)  # the noise is resolved, not negligible


@pytest.mark.parametrize("noise", ["depolarizing", "fake_guadalupe"])
def test_parameter_shift_is_exact_on_the_noisy_distribution(noise):
    circuit = build_ansatz(3, 2)
    values = np.random.default_rng(1).uniform(-np.pi, np.pi, circuit.num_parameters)
    backend = backends.get_backend("aer_density", noise=noise, **NOISE)
    jacobian = get_gradient("param_shift").jacobian(circuit, backend, values)
    h = 1e-4
    for j in (0, 4):
        up, down = values.copy(), values.copy()
        up[j] += h
        down[j] -= h
        fd = (backend.probabilities(circuit, up)[0] - backend.probabilities(circuit, down)[0]) / (2 * h)
        np.testing.assert_allclose(jacobian[:, j], fd, atol=1e-7)
        assert np.abs(fd).max() > 0.01


def test_a_density_matrix_too_large_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="aer_density holds a density matrix of at most 10 qubits; this model has 13"):
        validate(apply(Config(), {"backend": "aer_density"}, "test"))
    validate(apply(Config(), {"backend": "aer_density", "weights_per_state": 64}, "test"))
    status, _, err = run_script_inprocess("train.py", "--backend", "aer_density", "--run-dir", str(tmp_path / "r"))
    assert status == 2 and err.count("\n") == 1 and not (tmp_path / "r").exists()


@pytest.mark.parametrize("noise", ["depolarizing", "fake_guadalupe"])
def test_density_sampling_draws_the_counts_of_the_trajectories(noise):
    # aer_noisy's default (auto) at <= 10 qubits: S multinomial draws from the exact noisy distribution.
    # Same distribution of counts as Aer's trajectories: both within sampling error of the density
    # matrix (TVD over 8 outcomes at 30,000 shots ~ 0.008) and of each other; seeded, reproducible.
    circuit = build_ansatz(3, 2)
    values = np.random.default_rng(2).uniform(-np.pi, np.pi, (2, circuit.num_parameters))
    exact_noisy = backends.get_backend("aer_density", noise=noise, **NOISE).probabilities(circuit, values)
    options = {"noise": noise, "shots": 30_000, **NOISE}
    auto = backends.get_backend("aer_noisy", seed=3, **options)
    drawn = auto.probabilities(circuit, values)
    assert auto._prepared[id(circuit)].density is not None
    trajectories = backends.get_backend("aer_noisy", seed=4, noisy_sampling="trajectories", **options)
    simulated = trajectories.probabilities(circuit, values)
    for p, d, t in zip(exact_noisy, drawn, simulated, strict=True):
        assert total_variation(p, d) < 0.02 and total_variation(p, t) < 0.02 and total_variation(d, t) < 0.03
    again = backends.get_backend("aer_noisy", seed=3, **options).probabilities(circuit, values)
    np.testing.assert_array_equal(drawn, again)
    assert not np.array_equal(auto.probabilities(circuit, values), drawn)  # fresh shots on every call


def test_auto_sampling_falls_back_to_trajectories_above_the_density_limit():
    circuit = build_ansatz(11, 1)
    values = np.zeros((1, circuit.num_parameters))
    auto = backends.get_backend("aer_noisy", shots=64, seed=0)
    assert np.isclose(auto.probabilities(circuit, values).sum(), 1)
    assert auto._prepared[id(circuit)].density is None
    with pytest.raises(backends.BackendError, match="aer_noisy: the exact noisy distribution needs a 11-qubit"):
        backends.get_backend("aer_noisy", shots=64, noisy_sampling="density").prepare(circuit)
    with pytest.raises(ValueError, match="noisy_sampling: 'exact' is not one of auto, trajectories, density"):
        backends.get_backend("aer_noisy", noisy_sampling="exact")


def test_noisy_sampling_is_an_aer_noisy_option_checked_before_work():
    config = validate(apply(Config(), {"backend": "aer_noisy", "noisy_sampling": "density"}, "test"))
    assert config.execution.noisy_sampling == "density"
    with pytest.raises(ConfigError, match="noisy_sampling: 'exact' is not one of auto, trajectories, density"):
        validate(apply(Config(), {"backend": "aer_noisy", "noisy_sampling": "exact"}, "test"))


@pytest.mark.parametrize(
    ("p1", "p2", "readout"), [(0.1, 0.0, 0.0), (0.0, 0.2, 0.0), (0.0, 0.0, 0.05), (0.05, 0.1, 0.03)]
)
def test_depolarizing_and_readout_rates_against_the_closed_form(p1, p2, readout):
    """RY(theta) on qubit 0, then CX(0, 1), worked by hand: a one-qubit depolarizing channel of rate
    p1 shrinks the Bloch vector by (1 - p1), so P(q0 = 1) = (1 - (1 - p1) cos theta) / 2; CX copies
    it to q1 (P00 = 1 - s, P11 = s); the two-qubit channel mixes in p2 of the uniform distribution;
    each bit then reads flipped with probability `readout`. Exact (density matrix): 1e-9."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import Parameter

    theta = Parameter("theta")
    circuit = QuantumCircuit(2)
    circuit.ry(theta, 0)
    circuit.cx(0, 1)
    angles = np.array([[0.3], [1.9], [np.pi]])
    rates = {"depolarizing_1q": p1, "depolarizing_2q": p2, "readout_error": readout}
    probs = backends.get_backend("aer_density", noise="depolarizing", **rates).probabilities(circuit, angles)
    flip = np.array([[1 - readout, readout], [readout, 1 - readout]])
    for row, (angle,) in zip(probs, angles, strict=True):
        s = (1 - (1 - p1) * np.cos(angle)) / 2
        before = (1 - p2) * np.array([1 - s, 0, 0, s]) + p2 / 4  # index = 2 q1 + q0
        expected = before @ np.kron(flip, flip)
        np.testing.assert_allclose(row, expected, atol=1e-9)
