"""Fault injection: kill -9, interrupted writes, bad checkpoints, non-finite values, locks."""

import json
import math
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from qtrain_qiskit import trainer
from qtrain_qiskit.config import Config, apply
from qtrain_qiskit.rundir import (
    CHECKPOINT_FORMAT,
    LAST_CHECKPOINT,
    METRICS_FILE,
    RunDir,
    RunDirError,
    load_checkpoint_file,
    write_atomic,
)

from .conftest import REPO, run_script, run_script_inprocess, with_reference

FAST = [
    "--backend",
    "torch_statevector",
    "--blocks",
    "2",
    "--train-subset",
    "1280",
    "--batch-size",
    "32",
    "--lr",
    "0.005",
    "--eval-batch-size",
    "4000",
]
COMPARED = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "grad_norm_quantum", "grad_norm_mapping")


def metric_values(run_dir):
    lines = (run_dir / METRICS_FILE).read_text().splitlines()
    return [{key: json.loads(line)[key] for key in COMPARED} for line in lines]


def test_kill_9_mid_epoch_then_resume_matches_an_uninterrupted_run(mnist_root, tmp_path):
    args = [*FAST, "--epochs", "2", "--checkpoint-every", "5", "--data-dir", str(mnist_root)]
    straight = tmp_path / "straight"
    assert run_script("train.py", *args, "--run-dir", str(straight)).returncode == 0

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "scripts" / "train.py"),
            *with_reference("train.py", tuple(args)),
            "--run-dir",
            str(killed),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (killed / LAST_CHECKPOINT).exists():
        time.sleep(0.05)
    time.sleep(0.3)  # somewhere past the first checkpoint, inside epoch 1 or 2
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (killed / LAST_CHECKPOINT).exists()
    state = load_checkpoint_file(killed / LAST_CHECKPOINT)
    assert state["epoch"] < 2  # really interrupted before the end

    resumed = run_script("train.py", "--resume", str(killed))
    assert resumed.returncode == 0, resumed.stderr
    assert metric_values(killed) == metric_values(straight)


def test_an_interrupted_write_leaves_the_previous_file_intact(tmp_path):
    path = tmp_path / "checkpoint_last.pt"
    write_atomic(path, lambda handle: handle.write(b"good"))

    def dies_halfway(handle):
        handle.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, dies_halfway)
    assert path.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint_last.pt"]  # no temporary left behind


@pytest.fixture(scope="module")
def one_epoch_run(mnist_root, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "run"
    status, _, err = run_script_inprocess(
        "train.py", *FAST, "--epochs", "1", "--run-dir", str(run_dir), "--data-dir", str(mnist_root)
    )
    assert status == 0, err
    return run_dir


@pytest.fixture
def finished_run(one_epoch_run, tmp_path):
    """A private copy of a finished one-epoch run, free to damage."""
    return Path(shutil.copytree(one_epoch_run, tmp_path / "run"))


def corrupt_truncated(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def corrupt_foreign(path):
    torch.save({"weights": torch.zeros(3)}, path)


def corrupt_version(path):
    state = torch.load(path, weights_only=True)
    torch.save({**state, "format": CHECKPOINT_FORMAT + 1}, path)


def corrupt_pickle(path):
    import pickle

    path.write_bytes(pickle.dumps(subprocess.Popen))  # arbitrary code objects must never load


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (corrupt_truncated, "is not a readable checkpoint"),
        (corrupt_foreign, "was not written by qtrain-qiskit"),
        (corrupt_version, f"has format {CHECKPOINT_FORMAT + 1}, this version reads {CHECKPOINT_FORMAT}"),
        (corrupt_pickle, "is not a readable checkpoint"),
    ],
)
def test_bad_checkpoints_are_refused_with_one_line(finished_run, corrupt, message):
    corrupt(finished_run / LAST_CHECKPOINT)
    status, _, err = run_script_inprocess("train.py", "--resume", str(finished_run), "--epochs", "2")
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: checkpoint ") and message in lines[0], err


def test_resume_of_a_directory_that_is_not_a_run(tmp_path):
    status, _, err = run_script_inprocess("train.py", "--resume", str(tmp_path))
    assert (status, err.strip()) == (2, f"error: {tmp_path} is not a run directory (no config.yaml)")


def test_a_run_in_use_is_refused(finished_run):
    with RunDir(finished_run).lock():  # a separate process: flock excludes across processes
        result = run_script("train.py", "--resume", str(finished_run), "--epochs", "2")
    expected = f"error: run directory {finished_run} is in use by another process"
    assert (result.returncode, result.stderr.strip()) == (2, expected)
    with RunDir(finished_run).lock(), pytest.raises(RunDirError, match="in use"), RunDir(finished_run).lock():
        pass


def api_config(mnist_root, **changes):
    values = {
        "backend": "torch_statevector",
        "blocks": 2,
        "train_subset": 320,
        "batch_size": 32,
        "epochs": 2,
        "eval_batch_size": 4000,
        "data_dir": str(mnist_root),
        "checkpoint_every": 4,
        **changes,
    }
    return apply(Config(), values, "test")


def poison_quantum_gradient_at(monkeypatch, step):
    """Make the circuit-angle gradient NaN from the given global step on."""
    build = trainer.build_model
    calls = {"n": 0}

    def build_poisoned(config, device, **kwargs):
        model = build(config, device, **kwargs)

        def hook(grad):
            calls["n"] += 1
            return grad * math.nan if calls["n"] >= step else grad

        model.quantum.weight.register_hook(hook)
        return model

    monkeypatch.setattr(trainer, "build_model", build_poisoned)


def test_non_finite_gradient_stops_naming_step_and_part(mnist_root, tmp_path, monkeypatch):
    poison_quantum_gradient_at(monkeypatch, 6)
    run = RunDir.create(tmp_path / "run")
    with pytest.raises(trainer.NonFiniteError, match=r"non-finite quantum gradient at epoch 1 step 6"):
        trainer.train(api_config(mnist_root), run, log=lambda _: None)
    state = load_checkpoint_file(run.file(LAST_CHECKPOINT))  # the step-4 checkpoint, intact and finite
    assert state["tally"]["steps"] == 4
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_non_finite_loss_skip_policy_counts_skips(mnist_root, tmp_path, monkeypatch):
    real = torch.nn.functional.cross_entropy
    calls = {"n": 0}

    def sometimes_nan(logits, y, **kwargs):
        calls["n"] += 1
        loss = real(logits, y, **kwargs)
        return loss * math.nan if calls["n"] in (3, 7) and logits.requires_grad else loss

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", sometimes_nan)
    run = RunDir.create(tmp_path / "run")
    summary = trainer.train(api_config(mnist_root, on_nonfinite="skip", epochs=1), run, log=lambda _: None)
    assert summary["skipped_steps"] == 2
    assert math.isfinite(run.read_metrics()[0]["train_loss"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--qubits", "12"],
            "error: qubits: 2^12 = 4096 outcomes cannot address the 6676 weights of mnist_cnn; need at least 13",
        ),
        (["--blocks", "0"], "error: blocks must be >= 1"),
        (["--lr", "0"], "error: lr must be > 0"),
        (["--batch-size", "-3"], "error: batch_size must be >= 1"),
        (["--backend", "ibm_magic"], "error: backend: unknown 'ibm_magic'; available: "),
        (["--dataset", "svhn"], "error: dataset: 'svhn' is not one of mnist, fashion_mnist, cifar10"),
        (["--on-nonfinite", "ignore"], "error: on_nonfinite: 'ignore' is not one of stop, skip"),
        (["--config", "missing.yaml"], "error: config file not found: missing.yaml"),
    ],
)
def test_bad_input_through_the_command_line(argv, message, tmp_path):
    status, _, err = run_script_inprocess("train.py", *argv, "--run-dir", str(tmp_path / "never"))
    assert status == 2
    assert err.strip().startswith(message), err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "never").exists()  # nothing was started


def test_kill_9_during_a_checkpoint_write_leaves_the_previous_checkpoint_loadable(tmp_path):
    run = RunDir.create(tmp_path / "run")
    run.save_checkpoint(LAST_CHECKPOINT, {"epoch": 1, "weights": torch.ones(3)})
    code = f"""
import time
from pathlib import Path
from qtrain_qiskit.rundir import write_atomic

def slow(handle):
    handle.write(b"half a checkpoint")
    handle.flush()
    time.sleep(60)

write_atomic(Path({str(run.file(LAST_CHECKPOINT))!r}), slow)
"""
    process = subprocess.Popen([sys.executable, "-c", code], cwd=REPO)
    deadline = time.time() + 60
    while time.time() < deadline and not list(run.path.glob(".checkpoint_last.pt.*.tmp")):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert list(run.path.glob(".checkpoint_last.pt.*.tmp"))  # killed mid-write: the partial file is left
    state = load_checkpoint_file(run.file(LAST_CHECKPOINT))  # the old one, whole
    assert state["epoch"] == 1 and torch.equal(state["weights"], torch.ones(3))


def test_a_full_disk_is_one_line_naming_the_file_and_the_checkpoints_stay_intact(tmp_path, mnist_root, monkeypatch):
    import errno

    import matplotlib.figure

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", no_space)  # the curve plot hits a full disk
    run = tmp_path / "run"
    args = [*FAST, "--epochs", "2", "--data-dir", str(mnist_root), "--run-dir", str(run)]
    status, _, err = run_script_inprocess("train.py", *args)
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"error: cannot write {run / 'curves.png'}: No space left on device"), lines[0]
    assert not list(run.glob(".*.tmp"))  # no partial file left behind
    monkeypatch.undo()
    status, _, err = run_script_inprocess("train.py", "--resume", str(run))  # the epoch-1 checkpoint resumes
    assert status == 0, err
    assert len((run / METRICS_FILE).read_text().splitlines()) == 2
