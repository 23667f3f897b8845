"""The noise sweep: its physics on small cases, resumability, reproducibility and bad input."""

import csv
import itertools
import math

import numpy as np
import pytest
from qiskit.quantum_info import Statevector
from qtrain_qiskit.backends.aer import AerShotsBackend, AerShotsOptions

from qtrain_qiskit.ansatz import build_ansatz
from qtrain_qiskit.config import ConfigError
from qtrain_qiskit.sweeps.executor import run_tasks
from qtrain_qiskit.sweeps.noise import Condition, NoiseSweepConfig, check_settings, plan
from qtrain_qiskit.sweeps.results import ResultFile

from .conftest import run_probabilities, run_script_inprocess, sampling_tvd_quantiles

# The reference architecture (8 blocks) learns within a few hundred steps; fewer blocks start slower.
QUICK_RUN = ["--backend", "torch_statevector", "--train-subset", "4000", "--batch-size", "32", "--lr", "0.002"]
QUICK_RUN += ["--epochs", "3", "--eval-batch-size", "2000"]


@pytest.mark.parametrize(
    ("text", "key", "overrides"),
    [
        ("exact", "exact", {"backend": "torch_statevector"}),
        ("shots:512", "shots:512", {"backend": "aer_shots", "shots": 512}),
        ("depolarizing:0.001", "depolarizing:0.001@4096", {"depolarizing_2q": 0.001, "readout_error": 0.0}),
        ("readout:0.02@128", "readout:0.02@128", {"readout_error": 0.02, "depolarizing_1q": 0.0, "shots": 128}),
        ("device:fake_torino@64", "device:fake_torino@64", {"noise": "fake_torino", "grad": "spsa"}),
    ],
)
def test_conditions_parse_to_backend_settings(text, key, overrides):
    condition = Condition.parse(text, default_shots=4096)
    assert condition.key == key
    assert Condition.parse(condition.key, 1) == condition  # keys round-trip
    assert overrides.items() <= condition.overrides().items()


@pytest.mark.parametrize("text", ["shots", "shots:0", "shots:ten", "depolarizing:2", "exact:1", "device:torino", "x:1"])
def test_bad_conditions_are_refused_in_one_line(text):
    with pytest.raises(ConfigError, match="condition"):
        Condition.parse(text, 1024)


def test_plan_pairs_each_training_condition_with_its_exact_control():
    settings = check_settings(NoiseSweepConfig(repeats=2, train_conditions=["shots:256"]))
    cells = plan(settings)
    inference = [c for c in cells if c.protocol == "inference"]
    assert len(inference) == 2 * (6 + 4 + 2 + 2)
    training = {(c.trained_under, c.repeat) for c in cells if c.protocol == "training"}
    assert training == {("shots:256", 0), ("exact", 0), ("shots:256", 1), ("exact", 1)}
    seeds = {c.seed(0) for c in cells}
    assert len(seeds) == len(cells)  # every cell and repeat draws its own noise
    assert [c.seed(0) for c in plan(settings)] == [c.seed(0) for c in cells]  # and the same on a rerun


def test_tvd_falls_as_one_over_sqrt_shots():
    """Aer-sampled frequencies against Qiskit's Statevector: TVD ~ shots^-1/2 once shots >> 2^N."""
    circuit = build_ansatz(4, 3, "linear", num_weights=16)
    values = np.random.default_rng(1).uniform(-np.pi, np.pi, circuit.num_parameters)
    exact = Statevector(circuit.assign_parameters(values)).probabilities()
    shot_counts = [256, 1024, 4096, 16384]
    mean_tvd = []
    for shots in shot_counts:
        backend = AerShotsBackend(AerShotsOptions(shots=shots), seed=shots)
        estimates = backend.probabilities(circuit, np.tile(values, (40, 1)))
        mean_tvd.append(0.5 * np.abs(estimates - exact).sum(axis=1).mean())
    slope = np.polyfit(np.log(shot_counts), np.log(mean_tvd), 1)[0]
    assert slope == pytest.approx(-0.5, abs=0.06)


def test_result_file_appends_and_drops_a_torn_line(tmp_path):
    results = ResultFile(tmp_path / "r.csv", ["cell", "value"])
    results.append({"cell": "a", "value": 0.5})
    with (tmp_path / "r.csv").open("a") as handle:
        handle.write("b,0.2")  # a crash mid-line: no newline, too few fields are possible too
        handle.write("5,extra")
    results.append({"cell": "c", "value": None})
    assert results.rows() == [{"cell": "a", "value": "0.5"}, {"cell": "c", "value": ""}]


def _square(x: int) -> int:
    return x * x


def test_process_pool_returns_every_task_once():
    assert sorted(run_tasks(_square, range(5), workers=2)) == [(i, i * i) for i in range(5)]


def test_ray_runs_the_same_tasks():
    ray = pytest.importorskip("ray")
    try:
        assert sorted(run_tasks(_square, range(4), workers=1, ray_address="local")) == [(i, i * i) for i in range(4)]
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def quick_run(mnist_root, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("sweep_runs") / "quick"
    status, _, err = run_script_inprocess(
        "train.py", *QUICK_RUN, "--run-dir", str(run_dir), "--data-dir", str(mnist_root)
    )
    assert status == 0, err
    return run_dir


def _rows(out):
    with (out / "results.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_accuracy_does_not_fall_with_more_shots_and_the_sweep_resumes(quick_run, mnist_root, tmp_path):
    out = tmp_path / "sweep"
    args = ["--run", str(quick_run), "--out", str(out), "--protocols", "inference", "--repeats", "3"]
    args += ["--shots", "16,256,4096,exact", "--depolarizing", "", "--readout", "", "--devices", ""]
    args += ["--test-subset", "500", "--data-dir", str(mnist_root)]
    status, printed, err = run_script_inprocess("noise_sweep.py", *args)
    assert status == 0, err
    assert "12 cells to run" in printed
    rows = _rows(out)
    assert len(rows) == 12
    for name in ("table.md", "accuracy_vs_shots.png"):
        assert (out / name).stat().st_size > 0
    by_shots = {}
    for row in rows:
        by_shots.setdefault(row["condition"], []).append(float(row["accuracy"]))
    means = [np.mean(by_shots[key]) for key in ("shots:16", "shots:256", "shots:4096", "exact")]
    # One repeat's accuracy on 500 fixed images moves with the shots by at most a binomial sd,
    # sqrt(0.25 / 500) = 0.022; a mean of 3 repeats by 0.013, a difference of two means by 0.018;
    # 3.1 sd (0.1% one-sided false alarms) allows a fall of 0.056 from one shot count to the next.
    assert all(b >= a - 0.056 for a, b in itertools.pairwise(means)), means
    assert means[-1] > means[0] + 0.2, means  # the run learned, and 16 shots lose it
    exact = [float(r["tvd"]) for r in rows if r["condition"] == "exact"]
    assert exact == [0.0] * 3

    status, printed, _ = run_script_inprocess("noise_sweep.py", *args)  # rerun: nothing left to do
    assert status == 0 and "0 cells to run, 12 already done" in printed
    assert _rows(out) == rows

    status, _, err = run_script_inprocess("noise_sweep.py", *args[:-2], "--seed", "1", "--data-dir", str(mnist_root))
    assert status == 2 and "holds a sweep with seed=0" in err


def test_cells_are_reproducible_across_worker_counts(quick_run, mnist_root, tmp_path):
    common = ["--run", str(quick_run), "--protocols", "inference", "--repeats", "2", "--shots", "64,exact"]
    common += ["--depolarizing", "0.01", "--noise-shots", "256", "--readout", "0.05", "--devices", ""]
    common += ["--test-subset", "200", "--data-dir", str(mnist_root)]
    for workers, name in ((1, "serial"), (2, "pool")):
        status, _, err = run_script_inprocess(
            "noise_sweep.py", *common, "--out", str(tmp_path / name), "--workers", str(workers)
        )
        assert status == 0, err

    def keyed(name):
        return {(r["condition"], r["repeat"]): (r["accuracy"], r["tvd"]) for r in _rows(tmp_path / name)}

    assert keyed("serial") == keyed("pool")
    noisy = keyed("serial")[("depolarizing:0.01@256", "0")]
    # 256 shots are at least as far from the exact P as sampling alone puts them (its 0.1% quantile)
    (low,) = sampling_tvd_quantiles(run_probabilities(quick_run), 256, [0.001])
    assert low < float(noisy[1]) <= 1 and not math.isnan(float(noisy[0]))


def test_device_cells_sample_the_devices_noise(quick_run, mnist_root, tmp_path):
    """A device:fake_* cell samples under the device's noise: its distance from the run's exact P
    is beyond sampling error (the 99.9% quantile of the multinomial at these shots), which the
    shots-only cells at the same shots stay within."""
    out = tmp_path / "devices"
    args = ["--run", str(quick_run), "--out", str(out), "--protocols", "inference", "--repeats", "2"]
    args += ["--shots", "8192", "--depolarizing", "", "--readout", "", "--devices", "fake_guadalupe"]
    args += ["--noise-shots", "8192", "--test-subset", "100", "--data-dir", str(mnist_root)]
    status, _, err = run_script_inprocess("noise_sweep.py", *args)
    assert status == 0, err
    rows = _rows(out)
    (bound,) = sampling_tvd_quantiles(run_probabilities(quick_run), 8192, [0.999])
    device = [r for r in rows if r["kind"] == "device"]
    assert [(r["condition"], r["value"]) for r in device] == [("device:fake_guadalupe@8192", "fake_guadalupe")] * 2
    assert all(float(r["tvd"]) > bound for r in device), (bound, device)
    assert all(float(r["tvd"]) < bound for r in rows if r["kind"] == "shots"), (bound, rows)
    assert (out / "devices.png").stat().st_size > 0


def test_training_protocol_records_noisy_and_exact_training(quick_run, mnist_root, tmp_path):
    out = tmp_path / "train_sweep"
    args = ["--run", str(quick_run), "--out", str(out), "--protocols", "training", "--repeats", "1"]
    args += ["--train-conditions", "shots:256", "--train-steps", "2", "--test-subset", "200"]
    status, _, err = run_script_inprocess("noise_sweep.py", *args, "--data-dir", str(mnist_root))
    assert status == 0, err
    rows = _rows(out)
    assert {r["trained_under"] for r in rows} == {"shots:256", "exact"}
    # two steps of lr 1e-3 barely move P: 256 shots of it are at least sampling error away (0.1% quantile)
    (low,) = sampling_tvd_quantiles(run_probabilities(quick_run), 256, [0.001])
    assert all(r["condition"] == "shots:256" and low < float(r["tvd"]) < 1 for r in rows), (low, rows)
    assert (out / "training.png").is_file()
    trained = list((out / "training").iterdir())
    assert len(trained) == 2 and all((path / "checkpoint_best.pt").is_file() for path in trained)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--repeats", "0"], "repeats must be >= 1"),
        (["--devices", "fake_nowhere"], "unknown fake device"),
        (["--train-conditions", "noise:1"], "condition 'noise:1'"),
        (["--protocols", "inference,magic"], "protocols"),
        (["--shots", "12x"], "condition"),
        (["--bogus", "1"], "unrecognized arguments"),
        (["--train-init", "sratch"], "train_init: 'sratch' is not one of run, scratch"),
        (["--checkpoint", "first"], "checkpoint: 'first' is not one of best, last"),
    ],
)
def test_bad_settings_exit_2_with_one_line(flags, message, tmp_path):
    status, _, err = run_script_inprocess(
        "noise_sweep.py", "--run", str(tmp_path), "--out", str(tmp_path / "o"), *flags
    )
    assert status == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_missing_run_is_one_line(tmp_path):
    status, _, err = run_script_inprocess(
        "noise_sweep.py", "--run", str(tmp_path / "nope"), "--out", str(tmp_path / "o")
    )
    assert status == 2 and "nope" in err and not (tmp_path / "o").exists()


def test_sweep_table_pools_the_sweeps_of_several_runs(tmp_path):
    from qtrain_qiskit.sweeps.noise import COLUMNS

    folders = []
    for seed, accuracy in ((0, 0.90), (1, 0.80)):
        folder = tmp_path / f"s{seed}"
        folder.mkdir()
        results = ResultFile(folder / "results.csv", COLUMNS)
        for repeat in range(2):
            results.append(
                {"protocol": "inference", "condition": "shots:1024", "kind": "shots", "value": "", "shots": 1024}
                | {"trained_under": "", "repeat": repeat, "seed": seed, "accuracy": accuracy + 0.02 * repeat}
                | {"loss": 0.3, "exact_accuracy": 0.95, "tvd": 0.1, "wall_s": 1.0}
            )
        folders.append(str(folder))
    status, printed, err = run_script_inprocess("sweep_table.py", *folders, "--out", str(tmp_path / "pooled"))
    assert status == 0, err
    assert "4 rows from 2 sweeps" in printed
    table = (tmp_path / "pooled" / "table.md").read_text()
    mean, std = np.mean([0.90, 0.92, 0.80, 0.82]), np.std([0.90, 0.92, 0.80, 0.82], ddof=1)
    assert f"| shots:1024 | 1024 | 4 | {mean:.4f} ± {std:.4f} |" in table, table
    assert len(ResultFile(tmp_path / "pooled" / "results.csv", COLUMNS).rows()) == 4
    status, _, err = run_script_inprocess("sweep_table.py", str(tmp_path / "empty"), "--out", str(tmp_path / "x"))
    assert status == 2 and "holds no results.csv rows" in err
