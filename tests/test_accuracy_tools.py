"""What the accuracy study adds: the classical baseline, weight scales, the standard feature, the
cosine schedule, the CIFAR-10 configuration of the QT authors, and scripts/report.py."""

import csv
import pickle

import numpy as np
import pytest
import torch

from qtrain_qiskit.build import build_model
from qtrain_qiskit.config import Config, apply, validate
from qtrain_qiskit.mapping import probability_feature
from qtrain_qiskit.model import TensorScale
from qtrain_qiskit.targets import build_target, count_parameters

from .conftest import REPO, run_script_inprocess

QUICK = ["--backend", "torch_statevector", "--train-subset", "640", "--batch-size", "64", "--epochs", "1"]


def test_standard_feature_has_zero_mean_and_unit_spread():
    probs = torch.distributions.Exponential(1.0).sample((8192,)).double()
    probs /= probs.sum()
    feature = probability_feature(probs, 13, "standard", alpha=1.0, beta=1.0, gamma=1.0)
    assert feature.mean().item() == pytest.approx(0, abs=1e-12)
    assert feature.std().item() == pytest.approx(1, abs=1e-12)
    # A hand-sized case against the Quantum-Train normalization written out in numpy:
    # (beta tanh(gamma 2^(N-1) P))^alpha, centred, divided by its sample std.
    small = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    scaled = (0.5 * np.tanh(3.0 * 2 * small.numpy())) ** 2.0
    expected = (scaled - scaled.mean()) / scaled.std(ddof=1)
    got = probability_feature(small, 2, "standard", alpha=2.0, beta=0.5, gamma=3.0)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)


def test_tensor_scale_sets_each_tensor_spread_and_passes_gradients():
    target = build_target("mnist_cnn")
    config = validate(apply(Config(), {"backend": "torch_statevector", "weight_scale": "learned"}, "test"))
    model = build_model(config, torch.device("cpu"))
    assert isinstance(model.scale, TensorScale)
    assert model.parameter_counts()["mapping_params"] == 321 + len(list(target.parameters()))
    with torch.no_grad():  # a distinct scale per tensor: one applied to the wrong tensor shows
        model.scale.weight.copy_(torch.linspace(0.05, 0.5, len(model.scale.weight)))
    views = model.weight_views(model.generate_weights())
    for (name, value), scale in zip(views.items(), model.scale.weight, strict=True):
        rms = value.pow(2).mean().sqrt()
        assert rms.item() == pytest.approx(scale.item(), rel=1e-4), name
    model.generate_weights().pow(2).sum().backward()
    assert model.scale.weight.grad is not None and model.quantum.weight.grad.abs().sum() > 0


def test_classical_baseline_trains_the_target_weights_directly(mnist_root, tmp_path):
    run_dir = tmp_path / "classical"
    args = [*QUICK, "--method", "classical", "--run-dir", str(run_dir), "--data-dir", str(mnist_root)]
    status, out, err = run_script_inprocess("train.py", *args)
    assert status == 0, err
    assert "6,676" in out
    exported = torch.load(run_dir / "classical_model.pt", weights_only=True)
    assert sum(t.numel() for t in exported.values()) == 6676


def test_cosine_schedule_decays_to_zero_and_resumes(mnist_root, tmp_path):
    run_dir = tmp_path / "cosine"
    args = [*QUICK, "--schedule", "cosine", "--checkpoint-every", "3", "--run-dir", str(run_dir)]
    status, _, err = run_script_inprocess("train.py", *args, "--data-dir", str(mnist_root))
    assert status == 0, err
    state = torch.load(run_dir / "checkpoint_last.pt", weights_only=True)
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0, abs=1e-12)
    assert state["scheduler"]["last_epoch"] == 10  # 640 images / 64 per step


def write_fake_cifar(root, n_train=160, n_test=40):
    """torchvision's cifar-10-batches-py layout with random images (CIFAR-10 cannot be downloaded here)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        count = n_test if name == "test_batch" else n_train // 5
        batch = {
            "data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
            "labels": list(rng.integers(0, 10, count)),
        }
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"class{i}" for i in range(10)]}))
    return root


def test_qt_cifar_configuration_runs_end_to_end_at_19_qubits(tmp_path, monkeypatch):
    import torchvision

    # the stand-in files are not the real ones: skip torchvision's checksums of them
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: True)
    root = write_fake_cifar(tmp_path / "data")
    assert count_parameters(build_target("qt_cifar_cnn")) == 285_226
    run_dir = tmp_path / "cifar"
    args = ["--config", str(REPO / "configs" / "cifar10_qt.yaml"), "--epochs", "1", "--batch-size", "32"]
    args += ["--run-dir", str(run_dir), "--data-dir", str(root), "--download", "false"]
    status, out, err = run_script_inprocess("train.py", *args)
    assert status == 0, err
    assert "19 qubits" in out and "285,226" in out
    exported = torch.load(run_dir / "classical_model.pt", weights_only=True)
    assert sum(t.numel() for t in exported.values()) == 285_226


def test_report_groups_seeds_and_writes_table_csv_and_curve(mnist_root, tmp_path):
    runs = []
    for name, seed, extra in (("small", 0, []), ("small", 1, []), ("base", 0, ["--method", "classical"])):
        run_dir = tmp_path / f"{name}_{seed}"
        args = [*QUICK, "--name", name, "--seed", str(seed), "--blocks", "2", "--run-dir", str(run_dir), *extra]
        status, _, err = run_script_inprocess("train.py", *args, "--data-dir", str(mnist_root))
        assert status == 0, err
        runs.append(str(run_dir))
    out = tmp_path / "report"
    status, _, err = run_script_inprocess("report.py", *runs, "--out", str(out))
    assert status == 0, err
    lines = (out / "results.md").read_text().splitlines()
    assert len(lines) == 4  # header, rule, two groups
    assert lines[2].startswith("| small |") and "| 0,1 |" in lines[2] and "26 + 321" in lines[2]
    assert lines[3].startswith("| base | classical")
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert sorted((r["name"], r["seed"]) for r in rows) == [("base", "0"), ("small", "0"), ("small", "1")]
    assert (out / "accuracy_vs_params.png").stat().st_size > 0

    status, _, err = run_script_inprocess("report.py", str(tmp_path / "missing"), "--out", str(out))
    assert status == 2 and "missing" in err


def test_grid_trains_every_point_once_and_skips_finished_ones(mnist_root, tmp_path):
    from qtrain_qiskit.sweeps.grid import grid_points, parse_grid, point_name

    grid = parse_grid(["blocks=1,2", "hidden=8;4,4"])
    assert grid == {"blocks": ["1", "2"], "hidden": ["8", "4,4"]}
    assert len(grid_points(grid)) == 4
    assert point_name("m", {"hidden": "4,4", "seed": "1"}) == "m_hidden4-4"

    args = [*QUICK, "--train-subset", "128", "--name", "g", "--grid", "blocks=1,2", "--out", str(tmp_path / "g")]
    status, out, err = run_script_inprocess("train_grid.py", *args, "--data-dir", str(mnist_root))
    assert status == 0, err
    assert "2 runs into" in out and out.count("test accuracy") == 2
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["g_blocks1_seed0", "g_blocks2_seed0"]
    summary = (tmp_path / "g" / "g_blocks2_seed0" / "summary.json").read_text()
    assert '"num_blocks": 2' in summary
    status, again, _ = run_script_inprocess("train_grid.py", *args, "--data-dir", str(mnist_root))
    assert status == 0 and again.count("test accuracy") == 2  # reported from the finished runs
    assert (tmp_path / "g" / "g_blocks2_seed0" / "summary.json").read_text() == summary

    status, _, err = run_script_inprocess("train_grid.py", *QUICK, "--grid", "blocks", "--out", str(tmp_path / "x"))
    assert status == 2 and "grid item 'blocks'" in err
    status, _, err = run_script_inprocess("train_grid.py", *QUICK, "--grid", "blocks=0", "--out", str(tmp_path / "x"))
    assert status == 2 and "blocks must be >= 1" in err and not (tmp_path / "x").exists()
