"""The device configurations: their budgets, a fine-tuning rehearsal on a fake device end to end, and
fine-tuning the mapping alone through the sampled device path ("device in the loop").

The rehearsal runs on fake_guadalupe and on fake_torino (the device the README names): the same
code path, but the runtime's local mode simulates the whole 133-qubit fake_torino for every job
(~30 s a job on this 2-core machine), so the fake_torino case takes minutes and is marked slow.
"""

import json

import pytest
import torch

from qtrain_qiskit.build import build_model
from qtrain_qiskit.config import Config, apply, load_yaml, validate

from .conftest import REPO, run_script_inprocess


# The shipped counts the docs quote (1,288 and 558 trainable), not a ceiling a changed model passes.
@pytest.mark.parametrize(("name", "qubits", "count"), [("mnist_hardware", 7, 1288), ("mnist_hardware_compact", 8, 558)])
def test_hardware_configs_fit_their_budgets(name, qubits, count):
    path = REPO / "configs" / f"{name}.yaml"
    config = validate(apply(Config(), load_yaml(path), str(path)))
    model = build_model(config, torch.device("cpu"))
    assert model.mapping.num_qubits == qubits
    assert model.parameter_counts()["trainable_params"] == count
    assert config.train.train_shots == 8192 and config.execution.backend == "torch_statevector"


DATA = ["--train-subset", "64", "--eval-batch-size", "5000"]


@pytest.fixture(scope="module")
def hardware_run(mnist_root, tmp_path_factory):
    """One epoch of configs/mnist_hardware.yaml on 64 images: what the fine-tuning tests start from."""
    origin = tmp_path_factory.mktemp("hardware") / "hw"
    status, _, err = run_script_inprocess(
        "train.py", "--config", str(REPO / "configs" / "mnist_hardware.yaml"), "--epochs", "1",
        "--data-dir", str(mnist_root), *DATA, "--run-dir", str(origin),
    )  # fmt: skip
    assert status == 0, err
    return origin


# fake_torino: 10 local jobs of ~30-45 s each (7 min 44 s measured with the machine loaded), so `slow`:
#   python -m pytest -m slow tests/test_hardware_configs.py -k fake_torino
@pytest.mark.parametrize("device", ["fake_guadalupe", pytest.param("fake_torino", marks=pytest.mark.slow)])
def test_fine_tuning_rehearsal_on_a_fake_device_prints_cost_guards_budget_records_and_resumes(
    hardware_run, mnist_root, tmp_path, device
):
    origin = hardware_run
    data = ["--data-dir", str(mnist_root), *DATA]
    trial = ["--config", str(REPO / "configs" / "hardware_trial.yaml"), "--init-from", str(origin)]
    trial += ["--ibm-backend", device, "--shots", "512", "--epochs", "1", *data]

    status, _, err = run_script_inprocess("train.py", *trial, "--max-shots", "1000", "--run-dir", str(tmp_path / "no"))
    assert status == 2 and "exceed the cap of 1,000" in err and not (tmp_path / "no").exists()

    run_dir = tmp_path / "trial"
    status, out, err = run_script_inprocess("train.py", *trial, "--max-steps", "1", "--run-dir", str(run_dir))
    assert status == 0, err
    assert "cost: 3 circuits and 1,536 shots per step; 1 steps + 2 evaluations = 5 circuits in 4 jobs" in out
    assert f"initialized from {origin}" in out
    status, out, err = run_script_inprocess("train.py", "--resume", str(run_dir), "--max-steps", "2", "--epochs", "2")
    assert status == 0, err
    assert "resuming" in out
    jobs = [json.loads(line) for line in (run_dir / "jobs.jsonl").read_text().splitlines()]
    # per leg, as estimated: the step's forward and SPSA pair, then the validation and test evaluations
    assert [job["step"] for job in jobs] == [1] * 4 + [2] * 4
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["backend"] == "ibm_runtime" and summary["num_qubits"] == 7


def test_device_in_the_loop_fine_tunes_the_mapping_alone_on_sampled_device_noise(hardware_run, mnist_root, tmp_path):
    # The circuit stays at the run's trained angles (--quantum frozen with --init-from); each step
    # samples it once under fake_torino noise and trains the mapping on the measured P.
    run_dir = tmp_path / "loop"
    status, out, err = run_script_inprocess(
        "train.py", "--config", str(REPO / "configs" / "mnist_hardware.yaml"), "--init-from", str(hardware_run),
        "--backend", "aer_noisy", "--noise", "fake_torino", "--shots", "512", "--quantum", "frozen",
        "--grad", "spsa", "--train-shots", "none", "--lr", "0.01", "--batch-size", "16", "--max-steps", "3",
        "--epochs", "1",
        "--data-dir", str(mnist_root), *DATA, "--run-dir", str(run_dir),
    )  # fmt: skip
    assert status == 0, err
    assert "cost: 1 circuits and 512 shots per step; 3 steps + 2 evaluations = 5 circuits in 5 jobs, 2,560 shots" in out
    before = torch.load(hardware_run / "checkpoint_best.pt", weights_only=True)["model"]
    after = torch.load(run_dir / "checkpoint_last.pt", weights_only=True)["model"]
    angles = [key for key in before if key.startswith("quantum.")]
    assert angles and all(torch.equal(before[key], after[key]) for key in angles)
    assert any(not torch.equal(before[key], after[key]) for key in before if key.startswith("mapping."))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["quantum_params"] == 0 and summary["backend"] == "aer_noisy"


def test_benchmark_times_a_runs_device_evaluations(hardware_run, mnist_root):
    status, out, err = run_script_inprocess(
        "benchmark.py", "--evaluate", "--run", str(hardware_run), "--backend", "aer_noisy", "--noise", "fake_torino",
        "--shots", "512", "--steps", "2", "--data-dir", str(mnist_root), "--eval-batch-size", "5000",
    )  # fmt: skip
    assert status == 0, err
    result = json.loads(out)
    assert result["noise"] == "fake_torino" and result["noisy_sampling"] == "auto" and result["num_qubits"] == 7
    # Times are the benchmark's figures (scored >= circuit time holds by construction): what can
    # break is what was timed, two scored evaluations of the run's weights.
    assert len(result["scored_evaluation_s"]) == 2 and len(result["test_accuracies"]) == 2
    status, _, err = run_script_inprocess("benchmark.py", "--run", str(hardware_run))
    assert status == 2 and "--run times a run's evaluations: add --evaluate" in err
