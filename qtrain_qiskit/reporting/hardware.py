"""The hardware tables of docs/hardware.md, from the run directories and evaluations kept under
docs/results/hardware/ (`qtrain-table targets|device-in-the-loop|layout`).

Every cell is read from a file (summary.json, eval_*.json, benchmark_*.json, config.yaml,
sweep_results.csv) or computed from a fake device's snapshot: nothing is typed in.
"""

from __future__ import annotations

import csv
import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ..config import ConfigError
from .tables import markdown_table

SEEDS = (0, 1, 2)
TARGET_CONFIGS = ("mnist_hardware", "mnist_hardware_compact")
TRAINING_SECONDS = 600.0  # the training-time target of mnist_hardware
TARGET_ROWS = [  # label, source, target per configuration (None: no target)
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
LAYOUT_DEVICES = ("fake_sherbrooke", "fake_torino", "fake_fez")


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _accuracy(run: Path, source: str) -> float | None:
    """One run's test accuracy from `source`: its summary, a noise-sweep row or an eval_<source>.json."""
    if source == "exact":
        return load(run / "summary.json")["test_accuracy"]
    if source.startswith("sweep:"):
        with (run / "sweep_results.csv").open() as handle:
            found = [float(r["accuracy"]) for r in csv.DictReader(handle) if r["condition"] == source[6:]]
        return found[0] if found else None
    path = run / f"eval_{source}.json"
    return load(path)["test_accuracy"] if path.exists() else None


def _target_cell(values: list[float | None], target: float | None) -> list[str]:
    """Mean (min-max) over the seeds that have the figure, and its verdict against ``target``."""
    found = [v for v in values if v is not None]
    if not found:
        return ["not run", "-" if target is None else f">= {100 * target:.1f}%"]
    mean = statistics.mean(found)
    text = f"{100 * mean:.2f}% ({100 * min(found):.2f}-{100 * max(found):.2f})"
    if target is None:
        return [text, "-"]
    verdict = "met" if mean >= target else f"missed by {100 * (target - mean):.2f}"
    return [text, f">= {100 * target:.1f}%: {verdict}"]


def targets_table(runs: Path) -> str:
    """Each shipped device configuration's evaluations (mean over seeds 0-2) against its targets.

    ``runs`` holds ``<config>_seed<s>/`` for every configuration of TARGET_CONFIGS.
    """
    header = ["evaluation"]
    for name in TARGET_CONFIGS:
        size = load(runs / f"{name}_seed0" / "summary.json")["trainable_params"]
        header += [f"{name} ({size:,} trainable)", "target"]
    rows = []
    for label, source, targets in TARGET_ROWS:
        cells = [label]
        for name, target in zip(TARGET_CONFIGS, targets, strict=True):
            cells += _target_cell([_accuracy(runs / f"{name}_seed{seed}", source) for seed in SEEDS], target)
        rows.append(cells)
    cells = ["training time (s, with 2-4 processes on the 2 cores)"]
    for name, target in zip(TARGET_CONFIGS, (TRAINING_SECONDS, None), strict=True):
        seconds = [load(runs / f"{name}_seed{seed}" / "summary.json")["train_seconds"] for seed in SEEDS]
        mean = statistics.mean(seconds)
        cells.append(f"{mean:.0f} ({min(seconds):.0f}-{max(seconds):.0f})")
        cells.append("-" if target is None else f"<= {target:.0f}: {'met' if mean <= target else 'missed'}")
    return markdown_table(header, [*rows, cells])


def recovered(exact: float, before: float, after: float) -> float:
    """Fraction of the exact-to-device drop that fine-tuning on the device won back."""
    return (after - before) / (exact - before)


def _sampled_shots(run: Path) -> int:
    """Shots a fine-tuning on a sampled backend spent: one circuit per step, validation pass and test."""
    config = yaml.safe_load((run / "config.yaml").read_text())
    validations = len((run / "metrics.jsonl").read_text().splitlines())
    return (config["train"]["max_steps"] + validations + 1) * config["execution"]["shots"]


def _fine_tuning_row(label: str, acc: Sequence[float], shots: str, wall: str, note: str = "") -> list[str]:
    """exact, device before, device after, drop recovered, after read from exact P, shots, wall."""
    exact, before, after, exact_after = acc
    percents = [f"{a:.2%}" for a in (exact, before, after)]
    return [label, *percents, f"{recovered(exact, before, after):.0%}{note}", f"{exact_after:.2%}", shots, wall]


def device_in_the_loop_table(folder: Path) -> str:
    """Per seed: the exactly trained run on one fake_torino evaluation, then its mapping fine-tuned
    on the device's shots, evaluated on fresh shots (``exact_seed<s>/``, ``ft_seed<s>/``)."""
    rows = []
    for seed in SEEDS:
        before_path = folder / f"exact_seed{seed}" / "eval_fake_torino.json"
        after_path = folder / f"ft_seed{seed}" / "eval_fake_torino_seed1000.json"
        if before_path.exists() and after_path.exists():
            before, after = load(before_path), load(after_path)
            wall = load(folder / f"ft_seed{seed}" / "summary.json")["wall_seconds"]
            exact, device = before["exact_test_accuracy"], before["test_accuracy"]
            accuracies = (exact, device, after["test_accuracy"], after["exact_test_accuracy"])
            rows.append((seed, accuracies, _sampled_shots(folder / f"ft_seed{seed}"), wall))
    lines = [_fine_tuning_row(str(seed), acc, f"{shots:,}", f"{wall / 60:.1f} min") for seed, acc, shots, wall in rows]
    if len(rows) > 1:
        mean = tuple(statistics.mean(r[1][i] for r in rows) for i in range(4))
        lines.append(_fine_tuning_row("mean", mean, "", "", " (of the mean drop)"))
    header = ["seed", "exact", "fake_torino before", "fake_torino after (fresh shots)", "drop recovered"]
    return markdown_table([*header, "after, exact P", "shots", "wall"], lines)


def device_in_the_loop_level2_table(folder: Path) -> str:
    """The same fine-tuning through the noise-aware layout: ten fresh evaluations before and after
    (``level2/exact_seed<s>/``, ``level2/ft_seed<s>/``), beside the exact figure of ``exact_seed<s>/``."""

    def ten(run: Path) -> list[float]:
        return load(run / "benchmark_fake_torino_10x_seed2000.json")["test_accuracies"]

    rows = []
    for seed in SEEDS:
        tuned = folder / "level2" / f"ft_seed{seed}"
        if not (tuned / "benchmark_fake_torino_10x_seed2000.json").exists():
            continue
        exact = load(folder / f"exact_seed{seed}" / "summary.json")["test_accuracy"]
        before, after = ten(folder / "level2" / f"exact_seed{seed}"), ten(tuned)
        fraction = recovered(exact, statistics.mean(before), statistics.mean(after))
        cells = [f"{100 * statistics.mean(v):.2f} ± {100 * statistics.stdev(v):.2f}%" for v in (before, after)]
        exact_after = load(tuned / "eval_exact.json")["test_accuracy"]
        minutes = load(tuned / "summary.json")["wall_seconds"] / 60
        rows.append([str(seed), f"{100 * exact:.2f}%", *cells, f"{100 * fraction:.0f}%", f"{100 * exact_after:.2f}%"])
        rows[-1].append(f"{minutes:.1f} min")
    header = ["seed", "exact", "fake_torino before (10 evaluations)", "after (10 fresh evaluations)"]
    return markdown_table([*header, "drop recovered", "after, exact P", "wall"], rows)


def layout_table(qubits: int = 7, blocks: int = 8, devices: Sequence[str] = LAYOUT_DEVICES) -> str:
    """Where transpiler levels 1 and 2 place the device configuration's chain, and the errors there."""
    from ..ansatz import build_ansatz  # Qiskit's transpiler: only this table needs it
    from ..backends.devices import fake_device, to_isa

    rows = []
    for name in devices:
        target = fake_device(name).target
        gate = "ecr" if "ecr" in target.operation_names else "cz"
        for level in (1, 2):
            isa = to_isa(build_ansatz(qubits, blocks), fake_device(name), seed=0, optimization_level=level)
            layout = isa.layout.final_index_layout()
            errors = [
                target[gate][tuple(isa.find_bit(q).index for q in ins.qubits)].error
                for ins in isa.data
                if ins.operation.name == gate
            ]
            readout = max(target["measure"][(q,)].error for q in layout)
            qubits_used = ", ".join(map(str, layout))
            rows.append([f"{name}, {level}", qubits_used, f"{max(errors):.4f}", f"{sum(errors):.3f}", f"{readout:.3f}"])
    header = ["device, level", "physical qubits", "worst two-qubit error", "sum of two-qubit errors"]
    return markdown_table([*header, "worst readout error"], rows)


NOISE_AWARE_ARMS = {
    "shot-only (torch_statevector + 8,192 train shots)": "eval_shots.jsonl",
    "noise-aware (torch_density fake_torino + 8,192 train shots)": "eval_noise.jsonl",
}
NOISE_AWARE_DEVICES = ("fake_torino", "fake_fez", "fake_kingston", "fake_marrakesh", "fake_brisbane")


def _evaluations(path: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """(device, seed) -> one line of a `qtrain-evaluate-devices` JSONL file."""
    out = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        out[(row["device"], int(row["run"].rsplit("seed", 1)[1]))] = row
    return out


def _spread(values: list[float]) -> str:
    return f"{100 * statistics.mean(values):.2f}% ({100 * min(values):.2f}-{100 * max(values):.2f})"


def noise_aware_table(folder: Path, devices: Sequence[str] = NOISE_AWARE_DEVICES) -> str:
    """Noise-aware training (under fake_torino's noise) beside shot-only training, per device read
    at 8,192 shots: mean (min-max) over seeds and the per-seed difference, from the two arms' JSONL."""
    arms = [_evaluations(folder / name) for name in NOISE_AWARE_ARMS.values()]
    seeds = sorted({seed for _, seed in arms[0]})
    for name, arm in zip(NOISE_AWARE_ARMS.values(), arms, strict=True):
        missing = [f"{d} seed {s}" for d in devices for s in seeds if (d, s) not in arm]
        if missing:
            raise ConfigError(f"{folder / name} has no reading of {', '.join(missing)}: run qtrain-evaluate-devices")

    def row(label: str, key: str, device: str) -> list[str]:
        values = [[arm[(device, s)][key] for s in seeds] for arm in arms]
        diffs = ", ".join(f"{100 * (b - a):+.2f}" for a, b in zip(*values, strict=True))
        return [label, _spread(values[0]), _spread(values[1]), diffs]

    rows = [row("exact (noiseless P)", "exact_test_accuracy", devices[0])]
    for device in devices:
        seen = " (trained under)" if device == devices[0] else " (unseen)"
        rows.append(row(f"{device}{seen}", "test_accuracy", device))
    drops = [
        statistics.mean(
            arm[(d, s)]["exact_test_accuracy"] - arm[(d, s)]["test_accuracy"] for d in devices for s in seeds
        )
        for arm in arms
    ]
    label = f"mean drop, exact to device ({len(devices)} devices)"
    rows.append([label, *(f"{100 * d:.2f} points" for d in drops), "-"])
    header = [f"evaluation (8,192 shots, {len(seeds)} seeds)", *NOISE_AWARE_ARMS]
    return markdown_table([*header, "noise-aware minus shot-only, per seed"], rows)
