"""Shot budgets printed before a sampled run: circuits per step by gradient and quantum stage."""

import pytest
from qtrain_qiskit.backends import Backend, register, registry
from qtrain_qiskit.backends.options import ShotsOptions

from qtrain_qiskit.budget import estimate
from qtrain_qiskit.config import Config, apply, validate

SAMPLED = {"backend": "aer_noisy", "noise": "fake_torino", "shots": 8192, "weights_per_state": 64}


@pytest.mark.parametrize(
    ("overrides", "per_step"),
    [
        ({"grad": "spsa"}, 3),  # forward + the SPSA pair
        ({"grad": "param_shift"}, 1 + 2 * 56),  # forward + two shifts per angle (7 qubits x 8 blocks)
        ({"grad": "spsa", "quantum": "frozen"}, 1),  # only the mapping trains: the forward alone
        ({"grad": "param_shift", "quantum": "frozen"}, 1),
    ],
)
def test_circuits_per_step(overrides, per_step):
    config = validate(apply(Config(), {**SAMPLED, **overrides, "max_steps": 1000, "epochs": 2}, "test"))
    angles = 0 if config.model.quantum == "frozen" else 56
    budget = estimate(config, steps_per_epoch=750, num_angles=angles)
    assert budget.circuits_per_step == per_step and budget.steps == 1000
    assert budget.evaluations == 3  # two validation passes and the test
    assert budget.total_shots == (1000 * per_step + 3) * 8192


def test_exact_backends_cost_no_shots():
    assert estimate(validate(apply(Config(), {"backend": "torch_statevector"}, "test")), 10, 56) is None


@pytest.mark.parametrize(("device", "calibration"), [("fake_torino", 2 * 7 * 8192), ("ibm_torino", 2 * 8192)])
def test_mthree_calibration_is_part_of_the_cost(device, calibration):
    """Fake devices calibrate every qubit separately (2 n circuits), real ones by M3's balanced design (2 shots)."""
    values = {
        **SAMPLED,
        "backend": "ibm_runtime",
        "ibm_backend": device,
        "mitigation": "mthree",
        "max_steps": 10,
        "grad": "spsa",
    }
    budget = estimate(validate(apply(Config(), values, "test")), 750, 56, measured_qubits=7)
    assert budget.calibration_shots == calibration
    assert budget.total_shots == (10 * 3 + 2) * 8192 + calibration
    assert f"+ {calibration:,} M3 calibration shots" in budget.describe()


class CalibratedBackend(Backend):
    """A plugin whose cost is its own: two readouts per circuit, and a calibration per measured qubit."""

    name = "toy_calibrated"
    exact = False
    Options = ShotsOptions

    @classmethod
    def shots_per_circuit(cls, options: ShotsOptions) -> int:
        return 2 * options.shots

    @classmethod
    def calibration_shots(cls, options: ShotsOptions, measured_qubits: int) -> int:
        return 1000 * measured_qubits

    def _probabilities(self, circuit, values):
        raise NotImplementedError


def test_the_cost_is_asked_of_the_backend():
    """budget.estimate reads no backend key itself: a plugin's own answers are what it sums."""
    register(CalibratedBackend)
    try:
        values = {**SAMPLED, "backend": CalibratedBackend.name, "max_steps": 10, "grad": "spsa"}
        budget = estimate(validate(apply(Config(), values, "test")), 750, 56, measured_qubits=3)
    finally:
        registry._BACKENDS.pop(CalibratedBackend.name)
    assert (budget.shots_per_circuit, budget.calibration_shots) == (2 * 8192, 3000)
    assert budget.total_shots == (10 * 3 + 2) * 2 * 8192 + 3000
