"""The targets table of README "Hardware", from the files kept here (run from the repository root).

    python docs/results/hardware/targets_table.py > docs/results/hardware/targets.md

Each cell: mean over seeds 0, 1, 2 of one evaluation per seed, (min-max); `eval_<name>.json` come from
scripts/evaluate.py (the fake devices with their own noise model, since commit 4afdcba, and the
noise-aware layout, since commit 7835e36),
`sweep_results.csv` from scripts/noise_sweep.py (only its noiseless row is read) (README "Hardware").
"""

import csv
import json
import statistics
from pathlib import Path

RUNS = Path(__file__).parent / "runs"
CONFIGS = ["mnist_hardware", "mnist_hardware_compact"]
TRAINING_SECONDS = 600.0  # the target for mnist_hardware
ROWS = [  # label, source, target per configuration (None: no target)
    ("exact (torch engine, float64)", "exact", (0.98, None)),
    ("1,024 noiseless shots (`aer_shots`)", "shots1024", (0.975, None)),
    ("8,192 noiseless shots (sweep)", "sweep:shots:8192", (None, None)),
    ("fake_torino @ 8,192", "fake_torino", (0.975, 0.95)),
    ("fake_torino @ 8,192 + mthree", "fake_torino_mthree", (0.975, 0.95)),
    ("fake_sherbrooke (Eagle) @ 8,192", "fake_sherbrooke", (0.96, None)),
    ("fake_sherbrooke @ 8,192 + mthree", "fake_sherbrooke_mthree", (0.96, None)),
    ("fake_fez (Heron r2) @ 8,192", "fake_fez", (0.97, None)),
    ("fake_fez @ 8,192 + mthree", "fake_fez_mthree", (0.97, None)),
]


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def accuracy(run: Path, source: str) -> float | None:
    if source == "exact":
        return summary(run)["test_accuracy"]
    if source.startswith("sweep:"):
        with (run / "sweep_results.csv").open() as handle:
            found = [float(r["accuracy"]) for r in csv.DictReader(handle) if r["condition"] == source[6:]]
        return found[0] if found else None
    path = run / f"eval_{source}.json"
    return json.loads(path.read_text())["test_accuracy"] if path.exists() else None


def cell(values: list[float | None], target: float | None) -> list[str]:
    values = [v for v in values if v is not None]
    if not values:
        return ["not run", "-" if target is None else f">= {100 * target:.1f}%"]
    mean = statistics.mean(values)
    text = f"{100 * mean:.2f}% ({100 * min(values):.2f}-{100 * max(values):.2f})"
    if target is None:
        return [text, "-"]
    verdict = "met" if mean >= target else f"missed by {100 * (target - mean):.2f}"
    return [text, f">= {100 * target:.1f}%: {verdict}"]


def main() -> None:
    sizes = [f"{summary(RUNS / f'{name}_seed0')['trainable_params']:,} trainable" for name in CONFIGS]
    header = ["evaluation"] + [
        part for name, size in zip(CONFIGS, sizes, strict=True) for part in (f"{name} ({size})", "target")
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for label, source, targets in ROWS:
        cells = [label]
        for name, target in zip(CONFIGS, targets, strict=True):
            cells += cell([accuracy(RUNS / f"{name}_seed{seed}", source) for seed in (0, 1, 2)], target)
        print("| " + " | ".join(cells) + " |")
    cells = ["training time (s, with 2-4 processes on the 2 cores)"]
    for name, target in zip(CONFIGS, (TRAINING_SECONDS, None), strict=True):
        seconds = [summary(RUNS / f"{name}_seed{seed}")["train_seconds"] for seed in (0, 1, 2)]
        mean = statistics.mean(seconds)
        cells.append(f"{mean:.0f} ({min(seconds):.0f}-{max(seconds):.0f})")
        cells.append("-" if target is None else f"<= {target:.0f}: {'met' if mean <= target else 'missed'}")
    print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
