"""The device configurations: their budgets, and a fine-tuning rehearsal on a fake device end to end.

The rehearsal uses fake_guadalupe: the same code path as fake_torino (README), but the local
simulation of a 133-qubit device's noise takes about a minute per job on this machine.
"""

import json

import pytest
import torch

from qtrain_qiskit.config import Config, apply, load_yaml, validate
from qtrain_qiskit.model import build_model

from .conftest import REPO, run_script_inprocess


@pytest.mark.parametrize(("name", "qubits", "most"), [("mnist_hardware", 7, 1500), ("mnist_hardware_compact", 8, 600)])
def test_hardware_configs_fit_their_budgets(name, qubits, most):
    path = REPO / "configs" / f"{name}.yaml"
    config = validate(apply(Config(), load_yaml(path), str(path)))
    model = build_model(config, torch.device("cpu"))
    assert model.mapping.num_qubits == qubits
    assert model.parameter_counts()["trainable_params"] <= most
    assert config.train.train_shots == 8192 and config.execution.backend == "torch_statevector"


def test_fine_tuning_rehearsal_on_a_fake_device_prints_cost_guards_budget_records_and_resumes(mnist_root, tmp_path):
    data = ["--data-dir", str(mnist_root), "--train-subset", "64", "--eval-batch-size", "5000"]
    origin = tmp_path / "hw"
    status, _, err = run_script_inprocess(
        "train.py", "--config", str(REPO / "configs" / "mnist_hardware.yaml"), "--epochs", "1", *data,
        "--run-dir", str(origin),
    )  # fmt: skip
    assert status == 0, err
    trial = ["--config", str(REPO / "configs" / "hardware_trial.yaml"), "--init-from", str(origin)]
    trial += ["--ibm-backend", "fake_guadalupe", "--shots", "512", "--epochs", "1", *data]

    status, _, err = run_script_inprocess("train.py", *trial, "--max-shots", "1000", "--run-dir", str(tmp_path / "no"))
    assert status == 2 and "exceed the cap of 1,000" in err and not (tmp_path / "no").exists()

    run_dir = tmp_path / "trial"
    status, out, err = run_script_inprocess("train.py", *trial, "--max-steps", "1", "--run-dir", str(run_dir))
    assert status == 0, err
    assert "cost: 3 circuits and 1,536 shots per step; 1 steps + 2 evaluations = 5 circuits, 2,560 shots" in out
    assert f"initialized from {origin}" in out
    status, out, err = run_script_inprocess("train.py", "--resume", str(run_dir), "--max-steps", "2", "--epochs", "2")
    assert status == 0, err
    assert "resuming" in out
    jobs = [json.loads(line) for line in (run_dir / "jobs.jsonl").read_text().splitlines()]
    # per leg: the step's forward and SPSA pair, then the validation and test evaluations
    assert [job["step"] for job in jobs] == [1] * 5 + [2] * 5
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["backend"] == "ibm_runtime" and summary["num_qubits"] == 7
