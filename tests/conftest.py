"""Shared fixtures: a data root with MNIST (the real one beside the checkout when present, else a
small generated set in torchvision's raw layout) and helpers to run the scripts."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Every test module names its tier here, one line in one of the two sets (tests/test_suite.py fails
# for a module in neither or both, so a new module cannot land in a tier by default).
# The end-to-end tier: modules that run the scripts, subprocesses (kill -9, torchrun), sweeps, fake
# devices or a wheel build: `python -m pytest -m e2e`.
E2E_MODULES = {
    "test_training",
    "test_reliability",
    "test_distributed",
    "test_noise_sweep",
    "test_hardware",
    "test_scale",
    "test_accuracy_tools",
    "test_packaging",
    "test_comparison",
    "test_mitigation",
    "test_hardware_configs",
    "test_density",
    "test_torch_density",
    "test_contribution_map",
    "test_trial",
}


# The fast unit tier: `python -m pytest -m "not e2e"` (under a minute on 2 cores).
UNIT_MODULES = {
    "test_readout",
    "test_ablations",
    "test_engine_paths",
    "test_ansatz",
    "test_backend_options",
    "test_backends",
    "test_compiled_mapping",
    "test_budget",
    "test_config",
    "test_data",
    "test_generator",
    "test_head_bits",
    "test_mapping",
    "test_model",
    "test_qnn",
    "test_reporting",
    "test_sampled",
    "test_shot_noise",
    "test_start",
    "test_structure",
    "test_suite",
    "test_weights_per_state",
}


def asks_for_slow(markexpr: str) -> bool:
    """Whether a -m expression names the slow marker; slow tests run only then."""
    return "slow" in markexpr.replace("(", " ").replace(")", " ").split()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Runs before pytest applies -m, so "-m e2e" and "-m 'not e2e'" see the tier marker. Slow tests
    # are dropped here rather than by an addopts "-m 'not slow'", which any -m on the command line
    # replaces (and "-m e2e" would then pull the slow tests in).
    run_slow = asks_for_slow(config.option.markexpr or "")
    kept, slow = [], []
    for item in items:
        if item.module.__name__.rsplit(".", 1)[-1] in E2E_MODULES:
            item.add_marker(pytest.mark.e2e)
        (kept if run_slow or item.get_closest_marker("slow") is None else slow).append(item)
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = kept


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file as torchvision reads it: magic (uint8 type, ndim), big-endian dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def make_fake_mnist(root: Path, n_train: int = 1200, n_test: int = 300, seed: int = 0) -> Path:
    """Learnable stand-in for MNIST: each class lights a different horizontal band, plus noise."""
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, count in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, count)
        images = rng.integers(0, 60, (count, 28, 28))
        for i, label in enumerate(labels):
            images[i, 2 + 2 * label : 5 + 2 * label, 4:24] = 255
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


def real_mnist_root() -> Path | None:
    """The real MNIST the README points at: QTRAIN_DATA_DIR when set, else ../shared/data; None if
    the folder has no MNIST in torchvision's raw layout."""
    for root in (os.environ.get("QTRAIN_DATA_DIR"), SHARED_DATA):
        if root and (Path(root) / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
            return Path(root)
    return None


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real MNIST when present (CI, developers), else a generated one."""
    return real_mnist_root() or make_fake_mnist(tmp_path_factory.mktemp("fake_data"))


def load_script(name: str):
    """scripts/<name> as a module, to call its main() in-process (no interpreter start-up)."""
    spec = importlib.util.spec_from_file_location(f"script_{Path(name).stem}", REPO / "scripts" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REFERENCE_CONFIG = str(REPO / "configs" / "mnist.yaml")


def with_reference(name: str, args: tuple[str, ...]) -> list[str]:
    """train.py's arguments, starting from the seed's reference configuration unless the test names a
    --config or resumes: without --config the command trains the main job (a product default that
    moves with the shipped models), and each test's small settings are written against the reference."""
    if name == "train.py" and not {"--config", "--resume"} & set(args):
        return ["--config", REFERENCE_CONFIG, *args]
    return list(args)


def run_script_inprocess(name: str, *args: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of scripts/<name> run through the same error handling."""
    from qtrain_qiskit.cli import run_main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = run_main(load_script(name).main, with_reference(name, args))
    return status, out.getvalue(), err.getvalue()


def run_script(name: str, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    """Run scripts/<name> in a subprocess; returns the CompletedProcess (text output)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / name), *with_reference(name, args)],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or REPO,
        timeout=600,
    )


def run_probabilities(run_dir: Path) -> np.ndarray:
    """The exact outcome distribution P of a run's best circuit (its trained angles, no noise)."""
    import torch

    from qtrain_qiskit.build import build_model
    from qtrain_qiskit.config import validate
    from qtrain_qiskit.rundir import BEST_CHECKPOINT, RunDir, load_model_state

    run = RunDir.existing(run_dir)
    model = build_model(validate(run.config()), torch.device("cpu"))
    load_model_state(model, run.load_checkpoint(BEST_CHECKPOINT)["model"], "best")
    with torch.no_grad():
        probs = model.quantum().double().reshape(-1).numpy()
    return probs / probs.sum()


def sampling_tvd_quantiles(probs: np.ndarray, shots: int, quantiles: list[float], draws: int = 4000) -> np.ndarray:
    """Quantiles of the distance between `shots` samples of `probs` and `probs`: sampling error
    alone, drawn from the multinomial itself rather than a normal approximation."""
    counts = np.random.default_rng(0).multinomial(shots, probs, size=draws) / shots
    return np.quantile(0.5 * np.abs(counts - probs).sum(axis=1), quantiles)
