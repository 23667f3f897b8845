"""End to end: the contribution map trains each cell beside its controls, resumes, reads the trained
circuits on a fake device, and its table's lead is the paired difference of the runs' own figures."""

import csv
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from .conftest import make_fake_mnist, run_script_inprocess

QUICK = ["--target", "cnn_1_2_1", "--epochs", "1", "--train-subset", "256", "--batch-size", "64", "--hidden", "4"]


@pytest.fixture(scope="module")
def small_map(tmp_path_factory):
    root = tmp_path_factory.mktemp("map")
    data = make_fake_mnist(root / "data", n_train=400, n_test=100)
    args = [*QUICK, "--axis", "weights_per_state=1,8", "--axis", "blocks=5", "--seeds", "0,1"]
    args += ["--data-dir", str(data), "--out", str(root / "out"), "--map-device-shots", "1024"]
    status, stdout, err = run_script_inprocess("contribution_map.py", *args)
    assert status == 0, err
    return root / "out", args, stdout


def _accuracy(out: Path, name: str) -> float:
    return json.loads((out / "runs" / name / "summary.json").read_text())["test_accuracy"]


def test_every_cell_variant_and_seed_is_trained_and_the_trained_ones_read_on_the_device(small_map):
    out, _, stdout = small_map
    assert stdout.startswith("16 runs")  # 2 cells x 4 variants x 2 seeds
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert len(runs) == 16
    for variant in ("trained", "frozen", "random_vector", "classical_generator"):
        assert sum(f"_{variant}_seed" in name for name in runs) == 4, variant
    device = sorted((out / "runs").glob("*/device_fake_torino_1024.json"))
    assert [p.parent.name for p in device] == [name for name in runs if "_trained_" in name]
    # k = 8 cells train under the device's shot budget; k = 1 trains exact with head bits
    k8 = json.loads((out / "runs" / "mnist_weights_per_state8_blocks5_frozen_seed0" / "summary.json").read_text())
    assert k8["seed"] == 0
    assert (
        "train_shots: 8192"
        in (out / "runs" / "mnist_weights_per_state8_blocks5_frozen_seed0" / "config.yaml").read_text()
    )
    k1_config = (out / "runs" / "mnist_weights_per_state1_blocks5_trained_seed1" / "config.yaml").read_text()
    assert "train_shots: null" in k1_config and "head_bits: 4" in k1_config


def test_device_reading_restores_the_run_and_measures_what_it_needs(small_map):
    out, _, _ = small_map
    run = out / "runs" / "mnist_weights_per_state1_blocks5_trained_seed1"  # trained exact: its test figure is exact
    reading = json.loads((run / "device_fake_torino_1024.json").read_text())
    assert reading["exact_test_accuracy"] == pytest.approx(_accuracy(out, run.name))
    rungs = reading["shot_response"]
    assert [r["shots"] for r in rungs] == [1024 * 4**i for i in range(8)]
    assert all(b["snr"] == pytest.approx(2 * a["snr"]) for a, b in itertools.pairwise(rungs))
    assert reading["needed_snr"] is None or reading["needed_snr"] in [r["snr"] for r in rungs]
    assert reading["readout_snr"] == pytest.approx(rungs[0]["snr"])  # read at 1,024 shots, the first rung
    assert 0 <= reading["device_snr"] < float("inf")
    probs = np.load(run / "device_fake_torino_1024.npy")  # the reading itself, kept for later measures
    assert probs.ndim == 1 and len(probs) & (len(probs) - 1) == 0 and probs.sum() == pytest.approx(1.0)
    assert (probs * 1024 == np.round(probs * 1024)).all()  # frequencies of 1,024 shots


def test_lead_is_the_trained_minus_the_best_control_paired_by_seed(small_map):
    out, _, _ = small_map
    with (out / "contribution.csv").open() as handle:
        row = {r["cell"]: r for r in csv.DictReader(handle)}["weights_per_state=8, blocks=5"]
    cell = "mnist_weights_per_state8_blocks5"
    controls = {
        v: [_accuracy(out, f"{cell}_{v}_seed{s}") for s in (0, 1)]
        for v in ("frozen", "random_vector", "classical_generator")
    }
    best = max(controls, key=lambda v: sum(controls[v]))
    trained = [_accuracy(out, f"{cell}_trained_seed{s}") for s in (0, 1)]
    assert row["best_control"] == best
    assert float(row["lead"]) == pytest.approx(sum(t - c for t, c in zip(trained, controls[best], strict=True)) / 2)
    leads = sorted(t - c for t, c in zip(trained, controls[best], strict=True))
    assert float(row["lead_low"]) == pytest.approx(leads[0]) and float(row["lead_high"]) == pytest.approx(leads[1])
    device = [
        json.loads((out / "runs" / f"{cell}_trained_seed{s}" / "device_fake_torino_1024.json").read_text())
        for s in (0, 1)
    ]
    assert float(row["device"]) == pytest.approx(sum(d["test_accuracy"] for d in device) / 2)
    assert (out / "contribution.png").stat().st_size > 0


def test_rerun_resumes_without_training_again(small_map):
    out, args, _ = small_map
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/summary.json")}
    status, _, err = run_script_inprocess("contribution_map.py", *args)
    assert status == 0, err
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


@pytest.mark.parametrize(
    ("axis", "message"),
    [
        (["--axis", "qbits=7,8"], "unknown key 'qbits'"),
        (["--axis", "blocks="], "grid item"),
        ([], "at least one --axis"),
    ],
)
def test_bad_axes_are_one_line_and_write_nothing(tmp_path, axis, message):
    status, _, err = run_script_inprocess("contribution_map.py", *QUICK, *axis, "--out", str(tmp_path / "m"))
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "m").exists()


def test_refuses_a_folder_of_unrelated_runs_or_another_map(tmp_path, small_map):
    out, _, _ = small_map
    unrelated = tmp_path / "unrelated"
    (unrelated / "some_run").mkdir(parents=True)
    status, _, err = run_script_inprocess("contribution_map.py", *QUICK, "--axis", "blocks=5", "--out", str(unrelated))
    assert status == 2 and "not a map folder" in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in unrelated.iterdir()) == ["some_run"]
    manifest = (out / "map.json").read_text()
    status, _, err = run_script_inprocess("contribution_map.py", *QUICK, "--axis", "blocks=6", "--out", str(out))
    assert status == 2 and "holds another map" in err, err
    assert (out / "map.json").read_text() == manifest
    status, _, err = run_script_inprocess("contribution_map.py", "--report-only", "--out", str(unrelated))
    assert status == 2 and "not a contribution map" in err, err


def test_refuses_the_same_map_with_its_axes_in_another_order(small_map):
    """The axes' order names the runs: resumed in another order, the map would train them all again."""
    out, args, _ = small_map
    i = args.index("weights_per_state=1,8")
    swapped = [*args[: i - 1], "--axis", "blocks=5", "--axis", "weights_per_state=1,8", *args[i + 3 :]]
    runs = sorted(p.name for p in (out / "runs").iterdir())
    status, _, err = run_script_inprocess("contribution_map.py", *swapped)
    assert status == 2 and "in the map's order: weights_per_state, blocks" in err, err
    assert sorted(p.name for p in (out / "runs").iterdir()) == runs


def test_readout_snr_of_a_porter_thomas_distribution_is_sqrt_shots_per_outcome():
    """Exponential P over 2^N outcomes (Porter-Thomas): spread = mean = 2^-N and shot noise
    sqrt(P / S), so SNR = sqrt(S / 2^N); 2^12 draws put the estimate within ~3% of it."""
    import torch

    from qtrain_qiskit.readout import readout_snr

    draws = torch.empty(2**12, dtype=torch.float64).exponential_(generator=torch.Generator().manual_seed(0))
    probs = draws / draws.sum()
    assert readout_snr(probs, 2**12, 8192) == pytest.approx((8192 / 2**12) ** 0.5, rel=0.05)
    assert readout_snr(torch.full((64,), 1 / 64, dtype=torch.float64), 64, 8192) == 0.0
