"""The noise-robustness experiment: how much accuracy finite shots and hardware noise cost.

Two protocols over a grid of conditions (exact, shots, depolarizing, readout, fake IBM devices):

- ``inference``: a trained run's angles are executed under the condition; the weights are
  regenerated from the estimated probabilities and tested. R repeats use different simulator seeds.
- ``training``: the run is trained further (or from scratch) for a short budget under the
  condition, with the gradient method that fits it (parameter shift under shots, SPSA under
  noise), and, as the control, exactly for the same budget; both are then tested under the
  condition. This asks whether training under noise helps where the model will be executed.

Every row records the accuracy under the condition, the accuracy of the same model executed
exactly, the total-variation distance between the estimated and exact probability vectors, and
the wall time. Cells are pure functions of (run, cell, repeat, seed): a sweep is reproducible
whatever the number of workers and the order cells finish in.
"""

from __future__ import annotations

import copy
import functools
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import Config, ConfigError, apply, check_section, option, validate
from ..rundir import RunDir

PROTOCOLS = ("inference", "training")
KINDS = ("exact", "shots", "depolarizing", "readout", "device")
COLUMNS = (
    "protocol",
    "condition",
    "kind",
    "value",
    "shots",
    "trained_under",
    "repeat",
    "seed",
    "accuracy",
    "loss",
    "exact_accuracy",
    "tvd",
    "wall_s",
)


@dataclass
class NoiseSweepConfig:
    """What to sweep. Every field is a key of configs/noise_sweep.yaml and a flag of the script."""

    protocols: list[str] = option(list(PROTOCOLS), "protocols to run: inference, training")
    repeats: int = option(5, "repeats R of every cell, with different simulator seeds")
    seed: int = option(0, "base seed: each cell's seed derives from it, the cell and the repeat")
    checkpoint: str = option("best", "checkpoint of the run to start from", choices=("best", "last"))
    shots: list[str] = option(["128", "512", "2048", "8192", "32768", "exact"], "shot counts")
    depolarizing: list[float] = option([1e-4, 1e-3, 3e-3, 1e-2], "depolarizing p after every 1q and 2q gate")
    readout: list[float] = option([0.01, 0.03], "probability that a measured bit flips")
    devices: list[str] = option(["fake_torino", "fake_sherbrooke"], "fake IBM devices (their noise)")
    noise_shots: int = option(8192, "shots of the depolarizing, readout and device cells")
    train_conditions: list[str] = option(
        ["shots:1024", "depolarizing:0.001@1024"], "training conditions, e.g. device:fake_torino@1024"
    )
    train_steps: int = option(40, "optimizer steps per cell")
    train_lr: float = option(1e-3, "Adam learning rate")
    train_init: str = option("run", "fine-tune the run, or start from scratch", choices=("run", "scratch"))
    test_subset: int | None = option(None, "test on the first K test images only (quick looks)")
    data_dir: str | None = option(None, "dataset root (default: the run's, then $QTRAIN_DATA_DIR)")
    workers: int = option(1, "cells run in parallel (processes)")
    ray_address: str | None = option(None, "run cells as Ray tasks: 'local' or a cluster address")


# The --help groups of the sweep's keys, in the order shown (`helptext.add_groups`): every key in one.
HELP_GROUPS = (
    ("sweep", None, ["protocols", "repeats", "seed", "checkpoint", "noise_shots"]),
    ("inference protocol", None, ["shots", "depolarizing", "readout", "devices"]),
    ("training protocol", None, ["train_conditions", "train_steps", "train_lr", "train_init"]),
    ("data", None, ["test_subset", "data_dir"]),
    ("execution", None, ["workers", "ray_address"]),
)


@dataclass(frozen=True)
class Condition:
    """How the circuit is executed: ``kind``, its parameter ``value`` and the shot count."""

    kind: str
    value: float | str | None = None
    shots: int | None = None

    @property
    def key(self) -> str:
        if self.kind == "exact":
            return "exact"
        if self.kind == "shots":
            return f"shots:{self.shots}"
        return f"{self.kind}:{self.value}@{self.shots}"

    @classmethod
    def parse(cls, text: str, default_shots: int) -> Condition:
        """``exact``, ``shots:S``, ``depolarizing:P[@S]``, ``readout:P[@S]`` or ``device:NAME[@S]``."""
        kind, _, rest = text.strip().partition(":")
        value, _, shots = rest.partition("@")
        try:
            if kind == "exact" and not rest:
                return cls("exact")
            if kind == "shots":
                return cls("shots", shots=_positive(int(value)))
            shot_count = _positive(int(shots)) if shots else default_shots
            if kind in ("depolarizing", "readout") and 0 <= float(value) <= 1:
                return cls(kind, float(value), shot_count)
            if kind == "device" and value.startswith("fake_"):
                return cls(kind, value, shot_count)
        except ValueError:
            pass
        raise ConfigError(
            f"condition {text!r}: use exact, shots:S, depolarizing:P[@S], readout:P[@S] or device:fake_NAME[@S]"
        )

    def overrides(self) -> dict[str, Any]:
        """The run-configuration keys that execute the circuit under this condition."""
        if self.kind == "exact":
            from ..evaluation import EXACT_EXECUTION

            return dict(EXACT_EXECUTION)
        if self.kind == "shots":
            return {"backend": "aer_shots", "shots": self.shots, "grad": "param_shift"}
        noisy = {"backend": "aer_noisy", "shots": self.shots, "grad": "spsa"}
        if self.kind == "device":
            return {**noisy, "noise": self.value}
        rate = self.value if self.kind == "depolarizing" else 0.0
        readout = self.value if self.kind == "readout" else 0.0
        return {
            **noisy,
            "noise": "depolarizing",
            "depolarizing_1q": rate,
            "depolarizing_2q": rate,
            "readout_error": readout,
        }


def _positive(value: int) -> int:
    if value < 1:
        raise ValueError
    return value


@dataclass(frozen=True)
class Cell:
    """One grid point and repeat. ``trained_under`` is set for the training protocol only."""

    protocol: str
    condition: Condition
    repeat: int
    trained_under: str | None = None

    @property
    def key(self) -> str:
        trained = f"/trained:{self.trained_under}" if self.trained_under else ""
        return f"{self.protocol}/{self.condition.key}{trained}"

    def seed(self, base: int) -> int:
        """Stable across processes and Python versions (unlike ``hash``)."""
        return zlib.crc32(f"{base}/{self.key}/{self.repeat}".encode()) & 0x7FFFFFFF


def conditions(settings: NoiseSweepConfig) -> list[Condition]:
    """The inference grid, in the order the table lists it."""
    shots = [Condition.parse("exact" if s == "exact" else f"shots:{s}", settings.noise_shots) for s in settings.shots]
    noisy = [Condition("depolarizing", p, settings.noise_shots) for p in settings.depolarizing]
    noisy += [Condition("readout", p, settings.noise_shots) for p in settings.readout]
    noisy += [Condition("device", name, settings.noise_shots) for name in settings.devices]
    return shots + noisy


def plan(settings: NoiseSweepConfig) -> list[Cell]:
    """Every (cell, repeat) of the sweep; the training protocol pairs each condition with its control."""
    cells: list[Cell] = []
    for repeat in range(settings.repeats):
        if "inference" in settings.protocols:
            cells += [Cell("inference", condition, repeat) for condition in conditions(settings)]
        if "training" in settings.protocols:
            for text in settings.train_conditions:
                condition = Condition.parse(text, settings.noise_shots)
                cells += [Cell("training", condition, repeat, under) for under in (condition.key, "exact")]
    return cells


def check_settings(settings: NoiseSweepConfig) -> NoiseSweepConfig:
    """Refuse a bad sweep before anything runs (conditions are parsed, devices looked up)."""
    from ..backends.devices import fake_device_names

    check_section(settings)
    unknown = sorted(set(settings.protocols) - set(PROTOCOLS))
    if unknown or not settings.protocols:
        raise ConfigError(f"protocols: {unknown or 'none'} given; choose from {', '.join(PROTOCOLS)}")
    checks = [
        (settings.repeats >= 1, "repeats must be >= 1"),
        (settings.workers >= 1, "workers must be >= 1"),
        (settings.noise_shots >= 1, "noise_shots must be >= 1"),
        (settings.train_steps >= 1, "train_steps must be >= 1"),
        (settings.train_lr > 0, "train_lr must be > 0"),
        (settings.test_subset is None or settings.test_subset >= 1, "test_subset must be >= 1"),
        (all(0 <= p <= 1 for p in [*settings.depolarizing, *settings.readout]), "rates must be in [0, 1]"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    for name in settings.devices:
        if name not in fake_device_names():
            raise ConfigError(f"devices: unknown fake device {name!r}; available: {', '.join(fake_device_names())}")
    conditions(settings)
    for text in settings.train_conditions:
        Condition.parse(text, settings.noise_shots)
    return settings


# --- cost, printed before a sweep starts

# Seconds per circuit execution on the 2-core development machine (13 qubits, 8 blocks), measured
# with scripts/benchmark.py --evaluate: a rough guide for planning, not a promise.
TEST_PASS_S = 1.0  # regenerate the weights and test on 10,000 images
EXACT_S = 3e-3  # statevector (then multinomial draws), per parameter set of a batched call
NOISY_S_PER_TRAJECTORY = 6e-3  # Aer: one noisy trajectory (shot branching shares error-free ones)
NOISY_BASE_S = 1.5
DEVICE_S_PER_SHOT = 1.2e-3  # fake device noise: relaxation makes nearly every shot its own trajectory
DENSITY_S = 0.2  # aer_noisy's default up to 10 qubits: one density-matrix run, then multinomial draws
DENSITY_QUBITS = 10  # = backends.noisy_simulation.MAX_DENSITY_QUBITS (compacted circuit; routing may add qubits)


@dataclass(frozen=True)
class Cost:
    cells: int
    executions: int
    shots: int
    seconds: float

    def describe(self, workers: int) -> list[str]:
        minutes = self.seconds / 60 / workers
        return [
            f"{self.cells} cells: {self.executions:,} circuit executions, {self.shots:,} shots in all",
            f"rough time: {minutes:.1f} min with {workers} worker(s) (calibrated on a 2-core machine)",
        ]


def _execution_seconds(condition: Condition, num_gates: int, num_qubits: int) -> float:
    if condition.kind in ("exact", "shots"):
        return EXACT_S
    if num_qubits <= DENSITY_QUBITS:
        return NOISY_BASE_S + DENSITY_S
    if condition.kind == "device":
        return NOISY_BASE_S + DEVICE_S_PER_SHOT * condition.shots
    rate = float(condition.value) if condition.kind == "depolarizing" else 0.0
    trajectories = 1 + condition.shots * (1 - (1 - rate) ** num_gates)
    return NOISY_BASE_S + NOISY_S_PER_TRAJECTORY * trajectories


def estimate(cells: list[Cell], run_config: Config, train_steps: int) -> Cost:
    """Circuit executions, shots and a rough time for ``cells`` (training cells via `budget.estimate`)."""
    from ..budget import estimate as training_budget
    from ..build import build_circuit
    from ..targets import build_target, count_parameters

    circuit = build_circuit(run_config, count_parameters(build_target(run_config.model.target)))
    num_gates = sum(1 for ins in circuit.data if ins.operation.name != "barrier")
    executions = shots = 0
    seconds = 0.0
    for cell in cells:
        count = 1  # the cell's own evaluation
        per_circuit = _execution_seconds(cell.condition, num_gates, circuit.num_qubits)
        if cell.protocol == "training":
            under = cell.condition if cell.trained_under != "exact" else Condition("exact")
            config = apply(copy.deepcopy(run_config), {**under.overrides(), "max_steps": train_steps}, "estimate")
            budget = training_budget(config, max(train_steps, 1), circuit.num_parameters)
            training = budget.total_circuits if budget else 0
            seconds += (training * _execution_seconds(under, num_gates, circuit.num_qubits)) + 2 * TEST_PASS_S
            shots += training * (under.shots or 0)
            count += training
        executions += count
        shots += cell.condition.shots or 0
        seconds += per_circuit + TEST_PASS_S
    return Cost(len(cells), executions, shots, seconds)


# --- running cells (in worker processes: everything below is picklable or cached per process)


@dataclass(frozen=True)
class SweepContext:
    """What every cell needs besides itself; small and picklable, sent with each task."""

    run: str
    out: str
    checkpoint: str
    base_seed: int
    data_dir: str | None
    test_subset: int | None
    train_steps: int
    train_lr: float
    train_init: str


@dataclass
class LoadedRun:
    config: Config
    model: Any  # QuantumTrain on the exact float64 torch engine
    circuit: Any
    angles: np.ndarray
    exact_probs: np.ndarray
    data: Any  # the test images the cells use
    exact_accuracy: float


@functools.lru_cache(maxsize=4)
def _test_data(dataset: str, data_dir: str | None, download: bool, subset: int | None) -> Any:
    from ..data import load_dataset, resolve_data_dir

    data = load_dataset(dataset, resolve_data_dir(data_dir), train=False, download=download)
    return data if subset is None else data.subset(torch.arange(min(subset, len(data))))


@functools.lru_cache(maxsize=2)
def load_run(path: str, checkpoint: str, data_dir: str | None, subset: int | None) -> LoadedRun:
    """A run's model executed exactly, its test data and exact figures (once per process and run)."""
    from ..build import build_model
    from ..evaluation import CHECKPOINTS, score
    from ..rundir import load_model_state

    run = RunDir.existing(path)
    config = apply(run.config(), Condition("exact").overrides(), "noise sweep")
    config = apply(config, {"device": "cpu", "data_dir": data_dir or config.data.data_dir}, "noise sweep")
    model = build_model(validate(config), torch.device("cpu"))
    load_model_state(model, run.load_checkpoint(CHECKPOINTS[checkpoint])["model"], f"of {path}")
    with torch.no_grad():
        probs = model.quantum().double()
    data = _test_data(config.data.dataset, config.data.data_dir, config.data.download, subset)
    _, accuracy = score(model, data, config.train.eval_batch_size, probs=probs)
    circuit = model.quantum.circuit if hasattr(model.quantum, "circuit") else model.quantum.neural_network.circuit
    angles = model.quantum.weight.detach().double().numpy()[None, :]
    return LoadedRun(config, model, circuit, angles, probs.numpy(), data, accuracy)


@torch.no_grad()
def evaluate_under(loaded: LoadedRun, condition: Condition, seed: int) -> dict[str, float]:
    """Execute the run's circuit once under ``condition``, regenerate the weights, test them."""
    from ..build import build_backend
    from ..evaluation import score, total_variation

    config = apply(copy.deepcopy(loaded.config), {**condition.overrides(), "seed": seed}, "noise sweep")
    backend = build_backend(config, torch.device("cpu"))
    backend.prepare(loaded.circuit)
    probs = backend.probabilities(loaded.circuit, loaded.angles)[0]
    loss, accuracy = score(loaded.model, loaded.data, config.train.eval_batch_size, probs=torch.as_tensor(probs))
    tvd = total_variation(probs, loaded.exact_probs)
    return {"accuracy": accuracy, "loss": loss, "tvd": tvd, "exact_accuracy": loaded.exact_accuracy}


def _train(context: SweepContext, cell: Cell, seed: int) -> str:
    """Train under ``cell.trained_under`` into its own run directory; resumes a cut-off attempt."""
    from .resume import train_or_resume

    path = Path(context.out) / "training" / f"{cell.key.replace('/', '_').replace(':', '-')}_r{cell.repeat}"
    under = cell.condition if cell.trained_under != "exact" else Condition("exact")
    base = RunDir.existing(context.run).config()
    config = apply(copy.deepcopy(base), under.overrides(), "noise sweep")
    if under.kind == "exact":  # the control trains as the run did: float32 engine, adjoint
        config = apply(config, {"precision": base.execution.precision}, "noise sweep")
    init_from = str(context.run) if context.train_init == "run" else None
    settings = {"seed": seed, "max_steps": context.train_steps, "lr": context.train_lr, "init_from": init_from}
    config = apply(config, {**settings, "device": "cpu", "data_dir": context.data_dir or base.data.data_dir}, "sweep")
    train_or_resume(validate(config), path, log=lambda _: None)
    return str(path)


def run_cell(task: tuple[SweepContext, Cell]) -> dict[str, Any]:
    """One CSV row: the cell executed (after training, for the training protocol) and tested."""
    context, cell = task
    started = time.perf_counter()
    seed = cell.seed(context.base_seed)
    source = context.run if cell.protocol == "inference" else _train(context, cell, seed)
    checkpoint = context.checkpoint if cell.protocol == "inference" else "best"
    result = evaluate_under(load_run(source, checkpoint, context.data_dir, context.test_subset), cell.condition, seed)
    condition = cell.condition
    return {
        "protocol": cell.protocol,
        "condition": condition.key,
        "kind": condition.kind,
        "value": condition.value,
        "shots": condition.shots,
        "trained_under": cell.trained_under,
        "repeat": cell.repeat,
        "seed": seed,
        **result,
        "wall_s": time.perf_counter() - started,
    }
