"""README's results table: one row per shipped configuration, its trained figure beside its best
control and its device figure, read from the files that docs/results/shipped.yaml names.

Each entry of that file names a kept `results.csv` (one line per run, as `qtrain-report` writes it)
and the comparison group (or run name) to read there, and optionally where its device evaluations
are kept. The best control is the variant with the highest mean test accuracy among the ablations
and the equal-budget CNNs of the same comparison (the full-size CNN is not a control of a budget).
"""

from __future__ import annotations

import csv
import glob
import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from .comparison import bootstrap_ci, comparison_groups, paired_differences, variant
from .runs import Group, group_runs, runs_from_csv
from .tables import markdown_table

HEADER = ["configuration", "trainable", "trained (test, 3 seeds)", "best control", "trained - control (95% CI)"]
DEVICE_HEADER = "fake device @ 8,192 shots"


def _percent(group: Group) -> str:
    mean, std = group.stat("test_accuracy")
    return f"{100 * mean:.2f} ± {100 * std:.2f}%"


def _trained_and_controls(entry: dict[str, Any], root: Path) -> tuple[Group, list[Group]]:
    groups = group_runs(runs_from_csv(root / entry["results"]))
    if "group" not in entry:  # a configuration without a comparison of its own
        return next(g for g in groups if g.name == entry["name"]), []
    members = comparison_groups(groups)[entry["group"]]
    trained = next(g for g in members if g.first.method != "classical" and g.first.quantum == "trained")
    full_size = trained.first.target  # the CNN trained directly at full size is a reference, not a control
    controls = [
        g for g in members if g is not trained and not (g.first.method == "classical" and g.first.target == full_size)
    ]
    return trained, controls


def _device(entry: dict[str, Any], root: Path) -> str:
    """Mean test accuracy of the kept device evaluations (eval_*.json files, or noise-sweep rows)."""
    device = entry.get("device")
    if device is None or "note" in device:
        return "-" if device is None else device["note"]
    if "files" in device:
        paths = sorted(glob.glob(str(root / device["files"])))
        values = [json.loads(Path(p).read_text())["test_accuracy"] for p in paths]
    else:
        with (root / device["sweep"]).open() as handle:
            values = [float(r["accuracy"]) for r in csv.DictReader(handle) if r["condition"] == device["condition"]]
    if not values:
        return "not run"
    return f"{100 * statistics.mean(values):.2f}% ({device['label']})"


def shipped_row(entry: dict[str, Any], root: Path) -> list[str]:
    """One configuration's row: trained, its best control with the paired difference, its device figure."""
    trained, controls = _trained_and_controls(entry, root)
    row = [f"`{entry['config']}`", f"{trained.first.trainable_params:,}", _percent(trained)]
    if not controls:
        return [*row, "no comparison for this configuration yet", "-", _device(entry, root)]
    best = max(controls, key=lambda g: g.stat("test_accuracy")[0])
    diffs = paired_differences(
        {r.seed: r.test_accuracy for r in trained.runs}, {r.seed: r.test_accuracy for r in best.runs}
    )
    low, high = bootstrap_ci([-d for d in diffs])
    lead = f"{-100 * statistics.fmean(diffs):+.2f} [{100 * low:+.2f}, {100 * high:+.2f}]"
    return [*row, f"{variant(best.first, trained.first.target)}: {_percent(best)}", lead, _device(entry, root)]


def shipped_table(index: Path) -> str:
    """The whole table from ``index`` (docs/results/shipped.yaml); paths in it are relative to it."""
    entries: Sequence[dict[str, Any]] = yaml.safe_load(index.read_text())
    return markdown_table([*HEADER, DEVICE_HEADER], [shipped_row(e, index.parent) for e in entries])
