"""How fast runs learn, from their records: steps until validation accuracy first reaches a
threshold (docs/start.md, `qtrain-table steps-to-val`)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import yaml

from .tables import markdown_table

MNIST_TRAIN_IMAGES = 60_000


def steps_to(run: Path, threshold: float) -> tuple[int | None, int]:
    """The first epoch whose validation accuracy reaches ``threshold`` (None: never), and the
    optimizer steps per epoch. Validation runs once per epoch, so the figure is a bound within one."""
    config = yaml.safe_load((run / "config.yaml").read_text())
    train_images = round(MNIST_TRAIN_IMAGES * (1 - config["data"]["val_fraction"]))
    per_epoch = math.ceil(train_images / config["train"]["batch_size"])
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["val_accuracy"] >= threshold:
            return record["epoch"], per_epoch
    return None, per_epoch


def steps_to_val_table(threshold: float, runs: Sequence[Path]) -> str:
    """One row per run (config.yaml and metrics.jsonl; summary.json when finished)."""
    rows = []
    for run in runs:
        start = yaml.safe_load((run / "config.yaml").read_text())["model"].get("weight_scale", "none")
        epoch, per_epoch = steps_to(run, threshold)
        summary = run / "summary.json"
        test = f"{json.loads(summary.read_text())['test_accuracy']:.2%}" if summary.exists() else "-"
        reached = [f"{epoch}", f"{epoch * per_epoch:,}"] if epoch else ["not reached", "-"]
        rows.append([run.name, start, *reached, test])
    return markdown_table(["run", "start", f"epochs to {threshold:.0%} val", "steps", "test accuracy"], rows)
