"""The noise-aware vs shot-only table from the kept evaluations (eval_*.jsonl beside this file).

python docs/results/noise_aware/table.py
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
ARMS = {
    "shot-only (torch_statevector + 8,192 train shots)": "eval_shots.jsonl",
    "noise-aware (torch_density fake_torino + 8,192 train shots)": "eval_noise.jsonl",
}
DEVICES = ["fake_torino", "fake_fez", "fake_kingston", "fake_marrakesh", "fake_brisbane"]


def rows(name: str) -> dict[tuple[str, int], dict]:
    """(device, seed) -> evaluation."""
    out = {}
    for line in (HERE / name).read_text().splitlines():
        row = json.loads(line)
        out[(row["device"], int(row["run"].rsplit("seed", 1)[1]))] = row
    return out


def cell(values: list[float]) -> str:
    return f"{100 * statistics.mean(values):.2f}% ({100 * min(values):.2f}-{100 * max(values):.2f})"


def main() -> None:
    arms = {label: rows(name) for label, name in ARMS.items()}
    seeds = sorted({seed for _, seed in next(iter(arms.values()))})
    print("| evaluation (8,192 shots, 3 seeds) | " + " | ".join(ARMS) + " | noise-aware minus shot-only, per seed |")
    print("|---|---|---|---|")
    exact = [[arm[("fake_torino", s)]["exact_test_accuracy"] for s in seeds] for arm in arms.values()]
    diffs = ", ".join(f"{100 * (b - a):+.2f}" for a, b in zip(*exact, strict=True))
    print(f"| exact (noiseless P) | {cell(exact[0])} | {cell(exact[1])} | {diffs} |")
    for device in DEVICES:
        values = [[arm[(device, s)]["test_accuracy"] for s in seeds] for arm in arms.values()]
        diffs = ", ".join(f"{100 * (b - a):+.2f}" for a, b in zip(*values, strict=True))
        seen = " (trained under)" if device == "fake_torino" else " (unseen)"
        print(f"| {device}{seen} | {cell(values[0])} | {cell(values[1])} | {diffs} |")
    drops = [
        statistics.mean(
            arm[(d, s)]["exact_test_accuracy"] - arm[(d, s)]["test_accuracy"] for d in DEVICES for s in seeds
        )
        for arm in arms.values()
    ]
    print(f"| mean drop, exact to device (5 devices) | {100 * drops[0]:.2f} points | {100 * drops[1]:.2f} points | - |")


if __name__ == "__main__":
    main()
