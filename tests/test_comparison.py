"""End to end: the one-command comparison (train_grid --compare, then report.py) and the noise
sweep's refusal of a run without a circuit, on small generated data."""

import json
import statistics

import yaml

from qtrain_qiskit.rundir import CONFIG_FILE, SUMMARY_FILE

from .conftest import make_fake_mnist, run_script_inprocess


def accuracies_of(out, quantum):
    """Test accuracy by seed of the quantum runs of one stage, read from their own files."""
    found = {}
    for run in out.iterdir():
        config = yaml.safe_load((run / CONFIG_FILE).read_text())
        if config["model"]["method"] != "classical" and config["model"]["quantum"] == quantum:
            summary = json.loads((run / SUMMARY_FILE).read_text())
            found[summary["seed"]] = summary["test_accuracy"]
    return found


def test_compare_grid_trains_every_variant_and_reports_paired_rows(tmp_path):
    mnist_root = make_fake_mnist(tmp_path / "data", n_train=400, n_test=100)  # 18 runs: keep each tiny
    out, report = tmp_path / "cmp", tmp_path / "report"
    quick = ["--blocks", "5", "--hidden", "6", "--epochs", "1", "--train-subset", "256", "--batch-size", "64"]
    args = ["--compare", "--grid", "seed=0,1", "--name", "tiny", "--backend", "torch_statevector", *quick]
    status, stdout, err = run_script_inprocess("train_grid.py", *args, "--out", str(out), "--data-dir", str(mnist_root))
    assert status == 0, err
    assert stdout.startswith("18 runs")  # 6 quantum stages + 3 classical CNNs, 2 seeds
    runs = sorted(str(p) for p in out.iterdir())
    status, _, err = run_script_inprocess("train_grid.py", *args, "--out", str(out), "--data-dir", str(mnist_root))
    assert status == 0, err  # a rerun finds every run finished
    status, stdout, err = run_script_inprocess("report.py", *runs, "--out", str(report))
    assert status == 0, err
    rows = [line for line in (report / "comparison.md").read_text().splitlines() if line.startswith("| tiny |")]
    variants = [row.split(" | ")[1] for row in rows]
    assert variants[:6] == ["trained", "frozen", "random_vector", "separable", "classical_generator", "none"]
    assert sorted(v[:22] for v in variants[6:8]) == ["equal-budget CNN (cnn_", "equal-budget CNN (gap_"]
    assert variants[8] == "full CNN (mnist_cnn)"
    assert rows[0].endswith("| - | - | - |") and "(n=2 < 5)" in rows[1]
    # The numbers, worked out here from the runs' summaries: mean ± sample std in percent; the
    # paired difference frozen - trained per seed; with 2 seeds the 4 equally likely bootstrap
    # resamples give means d0, (d0 + d1) / 2 twice and d1, so the 95% interval is [min d, max d].
    trained, frozen = accuracies_of(out, "trained"), accuracies_of(out, "frozen")
    assert sorted(trained) == sorted(frozen) == [0, 1]
    cells = [cell.strip() for cell in rows[1].strip("|").split("|")]
    values = list(frozen.values())
    assert cells[4] == f"{100 * statistics.fmean(values):.2f} ± {100 * statistics.stdev(values):.2f} %"
    diffs = [100 * (frozen[seed] - trained[seed]) for seed in (0, 1)]
    assert cells[5] == f"{statistics.fmean(diffs):+.2f} ± {statistics.stdev(diffs):.2f}"
    assert cells[6] == f"[{min(diffs):+.2f}, {max(diffs):+.2f}]"
    assert (report / "comparison_vs_params.png").stat().st_size > 0


def test_noise_sweep_refuses_a_run_without_a_circuit(tmp_path):
    data = make_fake_mnist(tmp_path / "data", n_train=200, n_test=50)
    run = tmp_path / "rv"
    argv = ["--quantum", "random_vector", "--target", "cnn_1_2_1", "--blocks", "1", "--epochs", "1", "--device", "cpu"]
    status, _, err = run_script_inprocess("train.py", *argv, "--run-dir", str(run), "--data-dir", str(data))
    assert status == 0, err
    status, _, err = run_script_inprocess("noise_sweep.py", "--run", str(run), "--out", str(tmp_path / "sweep"))
    assert status == 2 and "no circuit to put under noise" in err and len(err.strip().splitlines()) == 1, err
