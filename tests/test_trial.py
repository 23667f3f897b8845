"""qtrain-trial: plan, one batch of jobs, the device's P kept, resume, fine-tune, report, bad input."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from qtrain_qiskit.trial import PER_JOB_SECONDS, TrialSettings, plan_jobs, qpu_seconds, snapshot_name

from .conftest import run_script_inprocess

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, mnist_root):
    """A (barely) trained mnist_hardware run: 7 qubits, k = 64, a few steps."""
    run = tmp_path_factory.mktemp("trial") / "run"
    status, _, err = run_script_inprocess(
        "train.py",
        "--config",
        str(REPO / "configs" / "mnist_hardware.yaml"),
        "--epochs",
        "1",
        "--max-steps",
        "20",
        "--train-subset",
        "512",
        "--data-dir",
        str(mnist_root),
        "--run-dir",
        str(run),
    )
    assert status == 0, err
    return run


def trial(run: Path, out: Path, *args: str) -> tuple[int, str, str]:
    return run_script_inprocess(
        "trial.py", str(run), "--ibm-backend", "fake_torino", "--out", str(out), "--finetune-steps", "30", *args
    )


def test_the_whole_trial_runs_locally_and_a_rerun_collects_instead_of_paying(trained_run, tmp_path):
    out = tmp_path / "trial"
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        status, stdout, err = trial(trained_run, out, "--threads", "1")
        assert torch.get_num_threads() == 2  # the trial's thread count is its own
    finally:
        torch.set_num_threads(threads)
    assert status == 0, err
    assert json.loads((out / "trial.json").read_text())["settings"]["threads"] == 1
    assert stdout.index("plan: 7 jobs in one batch on fake_torino") < stdout.index("# Trial of")
    assert "total: 77,824 shots" in stdout  # M3 independent: 14 x 2,048, then 6 x 8,192
    files = {p.name for p in out.iterdir()}
    variants = {f"p_{v}_{r}.npy" for v in ("raw", "dd", "twirling") for r in (0, 1)}
    assert variants | {"trial.md", "trial.png", "trial.json", "jobs.jsonl", "m3_calibration.json"} <= files
    ledger = [json.loads(line) for line in (out / "jobs.jsonl").read_text().splitlines()]
    assert len(ledger) == 7 and sum(entry.get("purpose") == "mthree calibration" for entry in ledger) == 1
    result = json.loads((out / "trial.json").read_text())
    for variant in ("raw", "dd", "twirling"):
        assert 0 <= result["variants"][variant]["raw"] <= 1 and 0 <= result["variants"][variant]["mthree"] <= 1
    assert result["finetune"]["fresh_estimates"] == 3 and 0 < result["tvd_device_snapshot"] < 0.2
    cals = json.loads((out / "m3_calibration.json").read_text())["cals"]
    calibrated = {qubit for qubit, cal in enumerate(cals) if cal}
    measured = set(json.loads((out / "trial.json").read_text())["measured_qubits"])
    assert calibrated == measured and len(measured) == 7  # M3 calibrated the qubits the circuit is read on
    first = np.load(out / "p_raw_0.npy")
    assert np.isclose(first.sum(), 1) and not np.allclose(first, np.load(out / "p_raw_1.npy"))  # fresh repeats

    # A crash after five of the six circuit jobs: the rerun submits the sixth only, no new calibration.
    (out / "p_twirling_1.npy").unlink()
    kept = {name: (out / name).read_bytes() for name in variants - {"p_twirling_1.npy"}}
    status, _, err = trial(trained_run, out)
    assert status == 0, err
    assert all((out / name).read_bytes() == data for name, data in kept.items())
    assert len((out / "jobs.jsonl").read_text().splitlines()) == 8 and (out / "p_twirling_1.npy").is_file()


def test_the_plan_counts_every_job_and_its_qpu_seconds():
    from qtrain_qiskit.backends.devices import fake_device, to_isa

    from qtrain_qiskit.ansatz import build_ansatz

    device = fake_device("fake_torino")
    isa = to_isa(build_ansatz(7, 8), device, seed=0)
    settings = TrialSettings(run="r", device="fake_torino", out="o", shots=4096, calibration_shots=1000, repeats=3)
    jobs = plan_jobs(settings, isa, device, "independent")
    assert [job.purpose for job in jobs] == ["mthree"] + ["raw", "dd", "twirling"] * 3
    assert (jobs[0].circuits, jobs[0].shots) == (14, 1000)
    duration = isa.estimate_duration(device.target, unit="s")
    assert 1e-6 < duration < 1e-3
    assert jobs[1].qpu_seconds == pytest.approx(PER_JOB_SECONDS + 4096 * (250e-6 + duration))
    assert qpu_seconds(2, 10, 0.0, 1.0) == PER_JOB_SECONDS + 20
    balanced = plan_jobs(settings, isa, device, "balanced")[0]
    assert balanced.circuits * balanced.shots >= 2 * 1000
    assert snapshot_name("ibm_torino") == "fake_torino" and snapshot_name("fake_fez") == "fake_fez"


def refused(run: Path, out: Path, *args: str) -> str:
    """The one-line error of a refused trial, after checking that nothing was submitted."""
    status, stdout, err = run_script_inprocess("trial.py", str(run), "--out", str(out), *args)
    assert status == 2, (stdout, err)
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert not (out / "jobs.jsonl").exists() and "# Trial" not in stdout
    return err


def test_bad_input_is_one_line_and_nothing_is_submitted_or_overwritten(trained_run, tmp_path, monkeypatch):
    out = tmp_path / "t"
    assert "not a trained model" in refused(tmp_path, out, "--ibm-backend", "fake_torino")
    assert "unknown fake device 'fake_nowhere'" in refused(trained_run, out, "--ibm-backend", "fake_nowhere")
    assert "no session mode" in refused(trained_run, out, "--ibm-backend", "fake_torino", "--ibm-mode", "session")
    err = refused(trained_run, out, "--ibm-backend", "fake_torino", "--max-qpu-seconds", "5")
    assert "above --max-qpu-seconds 5" in err and not out.exists()
    for name in ("QISKIT_IBM_TOKEN", "QISKIT_IBM_INSTANCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no saved account either
    assert "no usable IBM Quantum account" in refused(trained_run, out, "--ibm-backend", "ibm_torino")
    other = tmp_path / "other"
    other.mkdir()
    record = json.dumps({"run": "/somewhere/else", "device": "fake_torino", "shots": 8192})
    (other / "trial.json").write_text(record)
    assert "belongs to another trial" in refused(trained_run, other, "--ibm-backend", "fake_torino")
    assert (other / "trial.json").read_text() == record and {p.name for p in other.iterdir()} == {"trial.json"}
    assert "--repeats must be positive" in refused(trained_run, out, "--ibm-backend", "fake_torino", "--repeats", "0")
    assert "--threads must be positive" in refused(trained_run, out, "--ibm-backend", "fake_torino", "--threads", "0")


def test_the_fine_tune_moves_what_its_settings_name_and_is_validated_on_left_out_estimates(trained_run, mnist_root):
    import torch

    from qtrain_qiskit.data import load_dataset
    from qtrain_qiskit.finetune import FinetuneSettings, finetune_mapping, validate
    from qtrain_qiskit.trial import check_run, load_model

    model, _ = load_model(check_run(str(trained_run)))
    data = load_dataset("mnist", mnist_root, train=True, download=False).subset(torch.arange(256))
    exact = model.quantum().detach().double().numpy()
    estimates = [np.random.default_rng(k).multinomial(8192, exact / exact.sum()) / 8192 for k in range(3)]
    start = {name: p.detach().clone() for name, p in model.named_parameters()}

    def moved(tuned: object) -> set[str]:
        return {name for name, p in tuned.named_parameters() if not torch.equal(p, start[name])}

    last = finetune_mapping(model, estimates, data, FinetuneSettings(steps=3, params="last", source="resample"))
    whole = finetune_mapping(model, estimates, data, FinetuneSettings(steps=3, lr=1e-2, source="mean"))
    held = finetune_mapping(model, estimates, data, FinetuneSettings(steps=3, lr=1e-2, source="mean", prox=1e4))
    linears = [name for name, m in model.mapping.named_modules() if isinstance(m, torch.nn.Linear)]
    assert moved(last) == {f"mapping.{linears[-1]}.weight", f"mapping.{linears[-1]}.bias"}
    assert moved(whole) == {f"mapping.{name}" for name, _ in model.mapping.named_parameters()}  # never the circuit
    distance = {
        key: sum(float((p.detach() - start[name]).square().sum()) for name, p in tuned.named_parameters())
        for key, tuned in (("free", whole), ("held", held))
    }
    assert distance["held"] < distance["free"]
    assert moved(model) == set()  # the trained model itself is untouched
    folds = validate(model, estimates, data, data, 0.9, FinetuneSettings(steps=2))
    assert set(folds) == {"before", "after", "drop_recovered"} and 0 <= folds["after"] <= 1
