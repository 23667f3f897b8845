"""End to end: the one-command comparison (train_grid --compare, then report.py) and the noise
sweep's refusal of a run without a circuit, on small generated data."""

from .conftest import make_fake_mnist, run_script_inprocess


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
    assert (report / "comparison_vs_params.png").stat().st_size > 0


def test_noise_sweep_refuses_a_run_without_a_circuit(tmp_path):
    data = make_fake_mnist(tmp_path / "data", n_train=200, n_test=50)
    run = tmp_path / "rv"
    argv = ["--quantum", "random_vector", "--target", "cnn_1_2_1", "--blocks", "1", "--epochs", "1", "--device", "cpu"]
    status, _, err = run_script_inprocess("train.py", *argv, "--run-dir", str(run), "--data-dir", str(data))
    assert status == 0, err
    status, _, err = run_script_inprocess("noise_sweep.py", "--run", str(run), "--out", str(tmp_path / "sweep"))
    assert status == 2 and "no circuit to put under noise" in err and len(err.strip().splitlines()) == 1, err
