"""End to end through the command-line scripts on a small MNIST subset."""

import json

import pytest
import torch

from qtrain_qiskit.rundir import (
    BEST_CHECKPOINT,
    CONFIG_FILE,
    CURVES_FILE,
    EXPORT_FILE,
    LAST_CHECKPOINT,
    METRICS_FILE,
    SUMMARY_FILE,
)

from .conftest import run_script, run_script_inprocess

QUICK = [
    "--backend",
    "torch_statevector",
    "--blocks",
    "2",
    "--train-subset",
    "2000",
    "--batch-size",
    "32",
    "--lr",
    "0.005",
    "--eval-batch-size",
    "2000",
    "--head-bits",  # learns from the first steps (the reference's one shared output unit sits near
    "4",  # chance for hundreds of steps, docs/start.md), so the learning bounds below can be tight
    "--features",
    "standard",
]


def metrics(run_dir):
    return [json.loads(line) for line in (run_dir / METRICS_FILE).read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(mnist_root, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "quick"
    result = run_script("train.py", *QUICK, "--epochs", "3", "--run-dir", str(run_dir), "--data-dir", str(mnist_root))
    assert result.returncode == 0, result.stderr
    return run_dir, result


def test_training_learns_and_writes_the_run_directory(trained):
    run_dir, result = trained
    for name in (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, BEST_CHECKPOINT, LAST_CHECKPOINT, CURVES_FILE, EXPORT_FILE):
        assert (run_dir / name).is_file(), name
    records = metrics(run_dir)
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    # Measured with these settings: val loss 0.703 and test accuracy 0.813 on real MNIST (10,000 test
    # images: binomial sd 0.004). The bounds sit far below (the accuracy
    # ~30 sd) to leave room for seeds and platforms, and far above chance (ln 10 = 2.30, 0.10). A
    # frozen circuit reaches 0.838 here, so a broken circuit gradient is left to the gradient tests
    # against finite differences; this catches a run that stopped learning.
    assert records[-1]["val_loss"] < 1.0
    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    for key in (
        "test_accuracy",
        "best_val_accuracy",
        "trainable_params",
        "quantum_params",
        "mapping_params",
        "target_params",
        "num_qubits",
        "num_blocks",
        "backend",
        "gradient",
        "epochs",
        "wall_seconds",
        "median_step_ms",
    ):
        assert key in summary, key
    assert summary["quantum_params"] == 13 * 2 and summary["target_params"] == 6676
    assert summary["test_accuracy"] > 0.7
    assert (
        "compression M / trainable" in result.stdout
        and f"test accuracy {summary['test_accuracy']:.4f}" in result.stdout
    )
    assert (run_dir / CURVES_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_reproduces_the_test_accuracy(trained, mnist_root):
    run_dir, _ = trained
    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    for args in (
        [str(run_dir)],
        [str(run_dir), "--backend", "aer_statevector"],
        [str(run_dir / EXPORT_FILE), "--target", "mnist_cnn", "--dataset", "mnist"],
    ):
        result = run_script("evaluate.py", *args, "--data-dir", str(mnist_root))
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["test_accuracy"] == pytest.approx(summary["test_accuracy"], abs=2e-4)


def test_exported_model_is_a_plain_state_dict(trained):
    run_dir, _ = trained
    state = torch.load(run_dir / EXPORT_FILE, weights_only=True)
    assert list(state) == [
        "features.0.weight",
        "features.0.bias",
        "features.3.weight",
        "features.3.bias",
        "classifier.1.weight",
        "classifier.1.bias",
        "classifier.3.weight",
        "classifier.3.bias",
    ]


def test_resume_continues_to_the_same_result(mnist_root, tmp_path):
    common = [*QUICK, "--data-dir", str(mnist_root), "--train-subset", "320"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert run_script("train.py", *common, "--epochs", "2", "--run-dir", str(straight)).returncode == 0
    assert run_script("train.py", *common, "--epochs", "1", "--run-dir", str(split)).returncode == 0
    resumed = run_script("train.py", "--resume", str(split), "--epochs", "2")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    a, b = metrics(straight), metrics(split)
    assert [r["epoch"] for r in b] == [1, 2]
    for key in ("train_loss", "val_loss", "val_accuracy"):
        assert [r[key] for r in a] == [r[key] for r in b], key


def test_a_resumed_shot_based_spsa_run_draws_what_an_uninterrupted_one_would(mnist_root, tmp_path):
    """The sampler's generator and SPSA's step and directions are checkpointed beside the model."""
    common = [
        *("--backend", "aer_shots", "--shots", "256", "--grad", "spsa", "--target", "cnn_1_2_1", "--blocks", "2"),
        *("--data-dir", str(mnist_root), "--train-subset", "256", "--batch-size", "32", "--lr", "0.01"),
    ]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert run_script_inprocess("train.py", *common, "--epochs", "2", "--run-dir", str(straight))[0] == 0
    assert run_script_inprocess("train.py", *common, "--epochs", "1", "--run-dir", str(split))[0] == 0
    status, _, err = run_script_inprocess("train.py", "--resume", str(split), "--epochs", "2")
    assert status == 0, err
    a, b = metrics(straight), metrics(split)
    for key in ("train_loss", "grad_norm_quantum", "val_loss"):
        assert [r[key] for r in a] == [r[key] for r in b], key


def test_existing_run_dir_is_refused(trained, mnist_root):
    run_dir, _ = trained
    before = (run_dir / METRICS_FILE).read_text()
    result = run_script("train.py", *QUICK, "--run-dir", str(run_dir), "--data-dir", str(mnist_root))
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"error: run directory {run_dir} already exists; pass --resume {run_dir} to continue it"
    )
    assert (run_dir / METRICS_FILE).read_text() == before


def test_missing_data_is_one_clear_line(tmp_path):
    result = run_script(
        "train.py",
        *QUICK,
        "--epochs",
        "1",
        "--run-dir",
        str(tmp_path / "r"),
        "--download",
        "false",
        env={"QTRAIN_DATA_DIR": str(tmp_path / "empty")},
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "mnist train split not found under" in lines[0] and "QTRAIN_DATA_DIR" in lines[0]
    assert not (tmp_path / "r").exists()  # nothing was written, so no run directory is left behind


def test_bad_flag_is_one_clear_line(tmp_path):
    result = run_script("train.py", "--epoch", "3")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: unrecognized arguments: --epoch 3"


def test_fine_tune_starts_from_another_runs_best_weights(trained, mnist_root, tmp_path):
    run_dir, _ = trained
    best = json.loads((run_dir / SUMMARY_FILE).read_text())["best_val_accuracy"]
    status, out, err = run_script_inprocess(
        "train.py",
        *QUICK,
        "--init-from",
        str(run_dir),
        "--max-steps",
        "1",
        "--lr",
        "1e-6",
        "--run-dir",
        str(tmp_path / "tuned"),
        "--data-dir",
        str(mnist_root),
    )
    assert status == 0, err
    assert f"initialized from {run_dir}" in out
    first = metrics(tmp_path / "tuned")[0]
    assert first["val_accuracy"] == pytest.approx(best, abs=0.01)  # one tiny step from the trained weights
    status, _, err = run_script_inprocess(
        "train.py",
        *QUICK,
        "--blocks",
        "3",
        "--init-from",
        str(run_dir),
        "--run-dir",
        str(tmp_path / "other"),
        "--data-dir",
        str(mnist_root),
    )
    assert status == 2 and "does not fit this configuration" in err and len(err.strip().splitlines()) == 1
    # the same shapes, another feature: it would load and start from a different model
    other = tmp_path / "feature"
    status, _, err = run_script_inprocess(
        "train.py", *QUICK, "--features", "raw", "--init-from", str(run_dir), "--run-dir", str(other),
        "--data-dir", str(mnist_root),
    )  # fmt: skip
    assert status == 2 and not other.exists()
    assert err.strip().endswith("fine-tuning must generate the weights as the run did") and "model.features is" in err


def test_benchmark_script_prints_step_and_evaluation_times():
    status, out, err = run_script_inprocess(
        "benchmark.py", "--backend", "torch_statevector", "--blocks", "1", "--steps", "3", "--warmup", "1"
    )
    assert status == 0, err
    result = json.loads(out)
    # The timings themselves are figures for the benchmark's reader (ordered quartiles and positive
    # times hold by construction); what can break is what was timed.
    assert result["steps"] == 3 and (result["quantum_params"], result["mapping_params"]) == (13, 321)
    status, out, err = run_script_inprocess(
        "benchmark.py", "--evaluate", "--backend", "aer_noisy", "--shots", "100", "--blocks", "1", "--steps", "2"
    )
    assert status == 0, err
    result = json.loads(out)
    assert result["noise"] == "depolarizing" and result["shots"] == 100 and result["repeats"] == 2


@pytest.mark.parametrize("flags", [["--steps", "0"], ["--warmup", "-1"]])
def test_benchmark_refuses_bad_step_counts_before_building_anything(flags):
    status, _, err = run_script_inprocess("benchmark.py", "--backend", "torch_statevector", *flags)
    assert status == 2 and err.strip().startswith("error: --steps must be >= 1") and len(err.strip().splitlines()) == 1


def test_best_validation_weights_are_tested_evaluated_and_fine_tuned_from_not_the_last(mnist_root, tmp_path):
    """A run whose best checkpoint is not its last: epoch 1's weights are best by construction (the
    best accuracy in its checkpoint is set out of reach before epoch 2 resumes), epoch 2's the last.
    Scoring the test split, `evaluate` and `--init-from` must all take epoch 1's."""
    common = [*QUICK, "--data-dir", str(mnist_root), "--train-subset", "320"]
    run_dir = tmp_path / "run"
    assert run_script_inprocess("train.py", *common, "--epochs", "1", "--run-dir", str(run_dir))[0] == 0
    last = run_dir / LAST_CHECKPOINT
    state = torch.load(last, weights_only=False)
    state["best_val_accuracy"] = 2.0  # no epoch can beat it: epoch 1 stays the best checkpoint
    torch.save(state, last)
    status, _, err = run_script_inprocess("train.py", "--resume", str(run_dir), "--epochs", "2")
    assert status == 0, err
    best_weights = torch.load(run_dir / BEST_CHECKPOINT, weights_only=False)["model"]
    last_weights = torch.load(last, weights_only=False)["model"]
    moved = max((best_weights[k] - last_weights[k]).abs().max().item() for k in best_weights)
    assert moved > 1e-3  # epoch 2 changed the weights: best and last are different models

    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    scored = {}
    for checkpoint in ("best", "last"):
        status, out, err = run_script_inprocess("evaluate.py", str(run_dir), "--checkpoint", checkpoint,
                                                "--data-dir", str(mnist_root))  # fmt: skip
        assert status == 0, err
        scored[checkpoint] = json.loads(out)
    status, out, err = run_script_inprocess("evaluate.py", str(run_dir), "--data-dir", str(mnist_root))
    assert status == 0, err
    # exact simulation: the same weights give the same loss to float rounding
    assert json.loads(out)["test_loss"] == pytest.approx(scored["best"]["test_loss"], rel=1e-6)
    assert summary["test_loss"] == pytest.approx(scored["best"]["test_loss"], rel=1e-6)
    assert summary["test_loss"] != pytest.approx(scored["last"]["test_loss"], rel=1e-6)

    # fine-tuning starts from the best weights: one Adam step of lr 1e-6 moves each by ~1e-6
    tuned = tmp_path / "tuned"
    status, _, err = run_script_inprocess(
        "train.py", *common, "--init-from", str(run_dir), "--max-steps", "1", "--lr", "1e-6", "--run-dir", str(tuned)
    )
    assert status == 0, err
    start = torch.load(tuned / LAST_CHECKPOINT, weights_only=False)["model"]
    assert max((start[k] - best_weights[k]).abs().max().item() for k in best_weights) < 1e-5
