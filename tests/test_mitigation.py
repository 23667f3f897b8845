"""Readout mitigation (`--mitigation mthree`) on sampled device backends."""

import json

import numpy as np
import pytest

from qtrain_qiskit import backends
from qtrain_qiskit.ansatz import build_ansatz
from qtrain_qiskit.config import Config, ConfigError, apply, validate
from qtrain_qiskit.evaluation import total_variation

from .conftest import run_script_inprocess

DEVICE = "fake_guadalupe"  # 16 qubits, readout errors of a few percent: calibrates in seconds


@pytest.mark.parametrize("backend", ["aer_noisy", "ibm_runtime"])
def test_mitigated_distribution_is_closer_to_the_noiseless_one(backend):
    # Raw and mitigated frequencies come from the same seeded shots, so the comparison is paired;
    # the reference is the noiseless exact distribution from Aer's statevector.
    circuit = build_ansatz(4, 2)
    values = np.random.default_rng(0).uniform(-np.pi, np.pi, (3, circuit.num_parameters))
    exact = backends.get_backend("aer_statevector").probabilities(circuit, values)
    device = {"aer_noisy": {"noise": DEVICE}, "ibm_runtime": {"ibm_backend": DEVICE}}[backend]
    raw_backend = backends.get_backend(backend, shots=8192, seed=5, **device)
    mitigated_backend = backends.get_backend(backend, shots=8192, seed=5, mitigation="mthree", **device)
    raw, mitigated = raw_backend.probabilities(circuit, values), mitigated_backend.probabilities(circuit, values)
    assert mitigated.shape == raw.shape == (3, 16)
    assert np.all(mitigated >= 0) and np.allclose(mitigated.sum(axis=1), 1)  # a probability vector, not quasi
    raw_tvd = [total_variation(r, e) for r, e in zip(raw, exact, strict=True)]
    mitigated_tvd = [total_variation(m, e) for m, e in zip(mitigated, exact, strict=True)]
    assert all(m < r for m, r in zip(mitigated_tvd, raw_tvd, strict=True)), (raw_tvd, mitigated_tvd)
    assert np.mean(mitigated_tvd) < 0.8 * np.mean(raw_tvd), (raw_tvd, mitigated_tvd)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"backend": "torch_statevector"}, "torch_statevector is exact"),
        ({"backend": "aer_statevector"}, "aer_statevector is exact"),
        ({"backend": "aer_shots"}, "aer_shots has no device readout"),
        ({"backend": "aer_noisy"}, "aer_noisy --noise depolarizing has no device readout"),
    ],
)
def test_mitigation_without_a_device_is_refused(values, message):
    with pytest.raises(ConfigError, match=message):
        validate(apply(Config(), {**values, "mitigation": "mthree"}, "test"))
    validate(apply(Config(), {"backend": "aer_noisy", "noise": DEVICE, "mitigation": "mthree"}, "test"))


def test_mitigation_on_an_exact_backend_exits_2_and_writes_nothing(tmp_path):
    status, _, err = run_script_inprocess(
        "train.py", "--backend", "aer_statevector", "--mitigation", "mthree", "--run-dir", str(tmp_path / "r")
    )
    assert status == 2 and err.count("\n") == 1 and "mitigation: mthree" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("method", ["independent", "balanced"])
def test_calibration_cost_matches_the_jobs_mthree_runs(method):
    """The estimate's calibration shots against the shots of the jobs M3 really submits."""
    import mthree
    from qiskit_ibm_runtime.fake_provider import FakeGuadalupeV2
    from qtrain_qiskit.backends.mitigation import calibration_method, calibration_shots

    mitigation = mthree.M3Mitigation(FakeGuadalupeV2())
    jobs = mitigation.cals_from_system(qubits=[0, 1, 2, 3, 4], shots=1000, method=method, async_cal=False)
    submitted = sum(result.shots for job in jobs for result in job.result().results)
    assert calibration_shots(method, 5, 1000) == submitted
    mitigation = mthree.M3Mitigation(FakeGuadalupeV2())
    mitigation.cals_from_system(qubits=[0, 1], shots=100, async_cal=False)  # M3's own default method
    assert calibration_method("fake_guadalupe") == mitigation.cal_method == "independent"
    assert calibration_method("ibm_torino") == "balanced"


def test_hardware_calibration_runs_at_first_execution_and_is_in_the_ledger(tmp_path):
    from qtrain_qiskit.rundir import JobLedgerFile

    ledger = JobLedgerFile(tmp_path / "jobs.jsonl")
    backend = backends.get_backend(
        "ibm_runtime", ibm_backend=DEVICE, shots=512, seed=2, mitigation="mthree", job_ledger=ledger
    )
    circuit = build_ansatz(3, 1)
    backend.prepare(circuit)
    assert not (tmp_path / "jobs.jsonl").exists()  # preparing spends nothing: the budget guard comes first
    backend.probabilities(circuit, np.zeros((1, circuit.num_parameters)))
    entries = [json.loads(line) for line in (tmp_path / "jobs.jsonl").read_text().splitlines()]
    assert [e.get("purpose") for e in entries] == ["mthree calibration", None]
    assert entries[0]["shots"] == 2 * 3 * 512 and entries[0]["method"] == "independent" and entries[0]["job_id"]


def test_a_failed_calibration_is_one_backend_error(monkeypatch):
    import mthree

    def refuse(*args, **kwargs):
        raise RuntimeError("calibration job cancelled\nsecond line")

    monkeypatch.setattr(mthree.M3Mitigation, "cals_from_system", refuse)
    backend = backends.get_backend("ibm_runtime", ibm_backend=DEVICE, shots=256, seed=3, mitigation="mthree")
    circuit = build_ansatz(2, 1)
    with pytest.raises(
        backends.BackendError,
        match=r"^M3 calibration on fake_guadalupe failed: RuntimeError: calibration job cancelled$",
    ):
        backend.probabilities(circuit, np.zeros((1, circuit.num_parameters)))
