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
    sampled = backends.get_backend("aer_noisy", noise=noise, shots=30_000, seed=1, **NOISE).probabilities(
        circuit, values
    )
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
