"""Finished run directories as `RunResult`s, grouped by configuration name (one group: one setting
over several seeds); what the results table and the comparison both read."""

from __future__ import annotations

import csv
import json
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..rundir import SUMMARY_FILE, RunDir, RunDirError
from .tables import mean_std


@dataclass
class RunResult:
    """What the report needs of one finished run."""

    path: str
    name: str
    method: str
    seed: int
    test_accuracy: float
    best_val_accuracy: float
    trainable_params: int
    quantum_params: int
    mapping_params: int
    target_params: int
    num_qubits: int
    num_blocks: int
    hidden: str
    epochs: int
    train_seconds: float
    target: str = "mnist_cnn"
    quantum: str = "trained"  # the quantum stage (an ablation when not "trained")
    group: str | None = None  # the comparison it belongs to (train_grid --compare)


def load_results(path: str | Path) -> list[RunResult]:
    """A finished run directory's result, or every run of a kept results.csv."""
    return runs_from_csv(Path(path)) if str(path).endswith(".csv") else [load_result(path)]


def load_result(path: str | Path) -> RunResult:
    """A finished run's summary and configuration; an unfinished one is refused in one line."""
    run = RunDir.existing(path)
    summary_path = run.file(SUMMARY_FILE)
    if not summary_path.exists():
        raise RunDirError(f"{run.path} has no {SUMMARY_FILE}: the run has not finished")
    summary = json.loads(summary_path.read_text())
    config = run.config()
    return RunResult(
        path=str(run.path),
        name=config.name,
        method=config.model.method,
        seed=summary["seed"],
        test_accuracy=summary["test_accuracy"],
        best_val_accuracy=summary["best_val_accuracy"],
        trainable_params=summary["trainable_params"],
        quantum_params=summary["quantum_params"],
        mapping_params=summary["mapping_params"],
        target_params=summary["target_params"],
        num_qubits=summary["num_qubits"],
        num_blocks=summary["num_blocks"],
        hidden="-" if config.model.method == "classical" else ",".join(map(str, config.model.hidden)),
        epochs=summary["epochs"],
        train_seconds=summary["train_seconds"],
        target=config.model.target,
        quantum=config.model.quantum,
        group=config.group,
    )


def runs_from_csv(path: Path) -> list[RunResult]:
    """The runs of a kept results.csv as `qtrain-report` wrote it (their run directories need not
    exist any more): the tables of docs/results/ are regenerated from these files."""
    hints = typing.get_type_hints(RunResult)
    runs = []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            values: dict[str, Any] = {}
            for key, text in row.items():
                kind = hints[key]
                values[key] = None if text == "" and key == "group" else kind(text) if kind in (int, float) else text
            runs.append(RunResult(**values))
    return runs


@dataclass
class Group:
    name: str
    runs: list[RunResult]

    @property
    def first(self) -> RunResult:
        return self.runs[0]

    def stat(self, field: str) -> tuple[float, float]:
        return mean_std(getattr(run, field) for run in self.runs)


def group_runs(results: Iterable[RunResult]) -> list[Group]:
    """Runs of the same configuration name together, ordered by trainable parameters."""
    groups: dict[str, list[RunResult]] = {}
    for result in results:
        groups.setdefault(result.name, []).append(result)
    ordered = [Group(name, sorted(runs, key=lambda r: r.seed)) for name, runs in groups.items()]
    return sorted(ordered, key=lambda g: (g.first.method == "classical", g.first.trainable_params, g.name))
