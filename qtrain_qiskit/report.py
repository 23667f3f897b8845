"""Results tables and the accuracy-vs-parameters curve, built from finished run directories.

Runs are grouped by their configuration ``name`` (one group = one setting over several seeds), so
README's figures are regenerated from the runs by one command and never typed by hand.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .rundir import SUMMARY_FILE, RunDir, RunDirError, save_figure, write_atomic
from .sweeps.results import markdown_table, mean_std

TABLE_FILE, CSV_FILE, CURVE_FILE = "results.md", "results.csv", "accuracy_vs_params.png"


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


HEADER = [
    "config",
    "method",
    "qubits x blocks",
    "mapping hidden",
    "trainable (circuit + mapping)",
    "target M",
    "epochs",
    "seeds",
    "test accuracy (mean ± std)",
    "best val accuracy",
    "train time (s, mean)",
]


def _row(group: Group) -> list[Any]:
    run = group.first
    test, val, seconds = group.stat("test_accuracy"), group.stat("best_val_accuracy"), group.stat("train_seconds")
    trainable = f"{run.trainable_params:,}"
    if run.method != "classical":
        trainable += f" ({run.quantum_params} + {run.mapping_params})"
    return [
        group.name,
        run.method,
        f"{run.num_qubits} x {run.num_blocks}" if run.method != "classical" else "-",
        run.hidden,
        trainable,
        f"{run.target_params:,}",
        run.epochs,
        ",".join(str(r.seed) for r in group.runs),
        f"{100 * test[0]:.2f} ± {100 * test[1]:.2f} %",
        f"{100 * val[0]:.2f} %",
        f"{seconds[0]:.0f}",
    ]


def table(groups: Sequence[Group]) -> str:
    return markdown_table(HEADER, (_row(group) for group in groups))


def csv_text(groups: Sequence[Group]) -> str:
    """One line per run (not per group): every seed's figure stays inspectable."""
    buffer = io.StringIO()
    fields = list(RunResult.__dataclass_fields__)
    writer = csv.DictWriter(buffer, fields, lineterminator="\n")
    writer.writeheader()
    for group in groups:
        for run in group.runs:
            writer.writerow({field: getattr(run, field) for field in fields})
    return buffer.getvalue()


def plot_curve(groups: Sequence[Group], path: Path) -> None:
    """Test accuracy vs trainable parameters (log x); classical baselines as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    quantum = [g for g in groups if g.first.method != "classical"]
    by_hidden: dict[str, list[Group]] = {}
    for group in quantum:
        by_hidden.setdefault(group.first.hidden, []).append(group)
    for hidden, members in by_hidden.items():
        members.sort(key=lambda g: g.first.trainable_params)
        ax.errorbar(
            [g.first.trainable_params for g in members],
            [g.stat("test_accuracy")[0] for g in members],
            [g.stat("test_accuracy")[1] for g in members],
            marker="o",
            capsize=3,
            label=f"Quantum-Train, mapping hidden {hidden}",
        )
    for group in groups:
        if group.first.method == "classical":
            mean = group.stat("test_accuracy")[0]
            label = f"classical {group.first.target_params:,} weights ({group.first.epochs} epochs)"
            ax.axhline(mean, color="gray", linestyle="--", label=label)
    ax.set(xscale="log", xlabel="trainable parameters (circuit + mapping)", ylabel="test accuracy")
    ax.set_title("Accuracy vs trainable parameters (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def write_report(paths: Sequence[str | Path], out: Path) -> list[Path]:
    """Markdown table, per-run CSV and the curve for the runs at ``paths``, plus the comparison
    table and plot when runs of `train_grid --compare` are among them; returns the files."""
    from .comparison import write_comparison

    groups = group_runs(load_result(path) for path in paths)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / TABLE_FILE, lambda handle: handle.write(table(groups).encode()))
    write_atomic(out / CSV_FILE, lambda handle: handle.write(csv_text(groups).encode()))
    plot_curve(groups, out / CURVE_FILE)
    return [out / TABLE_FILE, out / CSV_FILE, out / CURVE_FILE, *write_comparison(groups, out)]
