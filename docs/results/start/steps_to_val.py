"""Epochs and steps until validation accuracy first reaches a threshold, from kept run records.

    python docs/results/start/steps_to_val.py 0.90 docs/results/start/runs/* docs/results/ref_torch

Each run folder needs config.yaml and metrics.jsonl (one line per epoch); steps are epochs x
ceil(training images / batch size). Validation is measured once per epoch, so a figure
is a bound within one epoch (750 steps at batch 64).
"""

import json
import math
import sys
from pathlib import Path

import yaml


def steps_to(run: Path, threshold: float) -> tuple[int | None, int]:
    config = yaml.safe_load((run / "config.yaml").read_text())
    train_images = round(60_000 * (1 - config["data"]["val_fraction"]))  # MNIST: 48,000 at the default 0.2
    per_epoch = math.ceil(train_images / config["train"]["batch_size"])
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["val_accuracy"] >= threshold:
            return record["epoch"], per_epoch
    return None, per_epoch


def main() -> None:
    threshold, runs = float(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
    print(f"| run | start | epochs to {threshold:.0%} val | steps | test accuracy |\n|---|---|---|---|---|")
    for run in runs:
        config = yaml.safe_load((run / "config.yaml").read_text())
        start = config["model"].get("weight_scale", "none")
        epoch, per_epoch = steps_to(run, threshold)
        summary = run / "summary.json"
        test = f"{json.loads(summary.read_text())['test_accuracy']:.2%}" if summary.exists() else "-"
        reached = (f"{epoch}", f"{epoch * per_epoch:,}") if epoch else ("not reached", "-")
        print(f"| {run.name} | {start} | {reached[0]} | {reached[1]} | {test} |")


if __name__ == "__main__":
    main()
