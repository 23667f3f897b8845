"""Results tables and the accuracy-vs-parameters curve, built from finished run directories.

Runs are grouped by their configuration ``name`` (one group = one setting over several seeds), so
README's figures are regenerated from the runs by one command and never typed by hand.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..rundir import save_figure, write_text
from .comparison import write_comparison
from .runs import Group, RunResult, group_runs, load_results
from .tables import markdown_table

TABLE_FILE, CSV_FILE, CURVE_FILE = "results.md", "results.csv", "accuracy_vs_params.png"


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
    """Markdown table, per-run CSV and the curve for the runs at ``paths`` (run directories or kept
    results.csv files), plus the comparison table and plot when runs of `train_grid --compare` are
    among them; returns the files."""
    groups = group_runs(run for path in paths for run in load_results(path))
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / TABLE_FILE, table(groups))
    write_text(out / CSV_FILE, csv_text(groups))
    plot_curve(groups, out / CURVE_FILE)
    return [out / TABLE_FILE, out / CSV_FILE, out / CURVE_FILE, *write_comparison(groups, out)]
