"""Shot budgets printed before a sampled run: circuits per step by gradient and quantum stage."""

import pytest

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
