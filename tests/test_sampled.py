"""Sampled execution: shot statistics against Aer's own sampler, unbiased gradients under shots."""

import numpy as np
import pytest
import scipy.stats
from qiskit.primitives import BitArray
from qiskit_aer.primitives import SamplerV2 as AerSamplerV2
from qtrain_qiskit.backends.counts import outcome_integers, probabilities_from_bits

from qtrain_qiskit import backends
from qtrain_qiskit.ansatz import build_ansatz
from qtrain_qiskit.gradients import get_gradient


def test_bit_conversion_matches_qiskit_counts():
    rng = np.random.default_rng(0)
    samples = rng.integers(0, 2**11, size=500)
    bits = BitArray.from_samples(samples.tolist(), num_bits=11)
    assert outcome_integers(bits).tolist() == samples.tolist()
    probs = probabilities_from_bits(bits)
    expected = np.zeros(2**11)
    for outcome, count in bits.get_int_counts().items():
        expected[outcome] = count / 500
    np.testing.assert_array_equal(probs, expected)


def tvd(p, q):
    return 0.5 * np.abs(p - q).sum(axis=-1)


def test_aer_shots_matches_aer_sampler_statistics():
    circuit = build_ansatz(4, 2)
    values = np.random.default_rng(1).uniform(-np.pi, np.pi, (1, circuit.num_parameters))
    exact = backends.get_backend("aer_statevector").probabilities(circuit, values)[0]
    shots = 20000
    ours = backends.get_backend("aer_shots", shots=shots, seed=3).probabilities(circuit, values)[0]
    measured = circuit.measure_all(inplace=False)
    result = AerSamplerV2(seed=4).run([(measured, values[0])], shots=shots).result()
    theirs = probabilities_from_bits(result[0].data.meas)
    # Expected TVD of an empirical distribution over 16 outcomes at 20k shots is ~0.01; 0.03 is > 5 sigma.
    assert tvd(ours, exact) < 0.03 and tvd(theirs, exact) < 0.03 and tvd(ours, theirs) < 0.04
    assert tvd(ours, exact) > 0  # it really samples


def test_aer_shots_is_seeded_and_fresh_per_call():
    circuit = build_ansatz(3, 1)
    values = np.full((1, 3), 0.7)
    a = backends.get_backend("aer_shots", shots=100, seed=5)
    b = backends.get_backend("aer_shots", shots=100, seed=5)
    first, second = a.probabilities(circuit, values), a.probabilities(circuit, values)
    np.testing.assert_array_equal(first, b.probabilities(circuit, values))
    assert not np.array_equal(first, second)
    assert np.all(first * 100 == np.round(first * 100))  # frequencies of 100 shots


def test_tvd_falls_like_one_over_sqrt_shots():
    circuit = build_ansatz(5, 2)
    values = np.random.default_rng(2).uniform(-np.pi, np.pi, (1, circuit.num_parameters))
    exact = backends.get_backend("aer_statevector").probabilities(circuit, values)[0]
    means = {}
    for shots in (256, 4096):
        backend = backends.get_backend("aer_shots", shots=shots, seed=shots)
        means[shots] = np.mean([tvd(backend.probabilities(circuit, values)[0], exact) for _ in range(30)])
    assert 2.5 < means[256] / means[4096] < 6  # sqrt(16) = 4


@pytest.mark.parametrize("method", ["param_shift", "spsa"])
def test_sampled_gradients_are_unbiased(method):
    circuit = build_ansatz(3, 2)
    rng = np.random.default_rng(3)
    values, grad = rng.uniform(-np.pi, np.pi, circuit.num_parameters), rng.normal(size=8)
    exact = get_gradient("adjoint").vjp(circuit, backends.get_backend("aer_statevector"), values, grad)
    if method == "param_shift":
        backend, repeats = backends.get_backend("aer_shots", shots=2000, seed=7), 40
        gradient = get_gradient("param_shift")
    else:  # SPSA is unbiased up to O(c^2): check it on exact probabilities with a small c
        backend, repeats = backends.get_backend("torch_statevector", precision="float64"), 3000
        gradient = get_gradient("spsa", perturbation=0.01, decay=0.0, seed=11)
    estimates = np.array([gradient.vjp(circuit, backend, values, grad) for _ in range(repeats)])
    mean, sem = estimates.mean(axis=0), estimates.std(axis=0, ddof=1) / np.sqrt(repeats)
    # Student's t for the repeats' mean, 0.1% false alarms over the 8 angles together (Bonferroni:
    # 1.25e-4 two-sided each), ~4 standard errors; SPSA adds its O(c^2) = 1e-4 bias.
    t = scipy.stats.t.ppf(1 - 0.001 / (2 * len(exact)), repeats - 1)
    bias = 0.01**2 if method == "spsa" else 0.0
    assert np.all(np.abs(mean - exact) < t * sem + bias), (mean, exact, sem)


def test_spsa_perturbation_decays_with_the_step():
    """c_k = c / (k + 1)^decay, read from the angles SPSA asks for: theta +- c_k D with D = +-1."""
    from .test_qnn import CountingBackend

    class Recording(CountingBackend):
        def _probabilities(self, circuit, values):
            self.calls.append(values.copy())
            return self.inner.probabilities(circuit, values)

    circuit = build_ansatz(2, 1)
    values = np.full(circuit.num_parameters, 0.3)
    recording = Recording(backends.get_backend("torch_statevector", precision="float64"))
    gradient = get_gradient("spsa", perturbation=0.2, decay=0.602, seed=0)
    for _ in range(4):
        gradient.vjp(circuit, recording, values, np.ones(4))
    used = [np.abs(batch[0] - values) for batch in recording.calls]
    for k, offsets in enumerate(used):
        np.testing.assert_allclose(offsets, 0.2 / (k + 1) ** 0.602, rtol=1e-12)
    # and the run's configuration is what sets it
    from qtrain_qiskit.build import build_gradient
    from qtrain_qiskit.config import Config, apply, validate

    config = validate(apply(Config(), {"backend": "aer_shots", "grad": "spsa", "spsa_decay": 0.602}, "test"))
    assert build_gradient(config).decay == 0.602


def test_spsa_uses_two_circuits_per_resample():
    from .test_qnn import CountingBackend

    circuit = build_ansatz(4, 3)
    counting = CountingBackend(backends.get_backend("aer_shots", shots=64, seed=1))
    gradient = get_gradient("spsa", resamples=3, seed=0)
    gradient.vjp(circuit, counting, np.zeros(12), np.ones(16))
    assert counting.calls == [6] and gradient.circuits_per_step(12) == 6
