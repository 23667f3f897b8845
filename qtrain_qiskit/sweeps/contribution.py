"""The contribution map: where does a trained circuit earn its place, and can a device still read it?

Each cell of the map is one point on the axes that move the balance between circuit and mapping
(weights per state k, blocks, mapping width, ...). Every cell is trained as the trained circuit
beside the controls that remove what the circuit adds: the circuit frozen at its start, a fixed
random probability vector, and a classical generator of P with the circuit's parameter count.
The cell's figure is the trained circuit's lead over its *best* control (paired by seed), and the
trained circuit's accuracy read from a fake device at a device's shot budget.

A map is a folder: ``map.json`` (the plan: base config, flags, axes, seeds), ``runs/`` (ordinary
run directories, resumable), and the table and picture written from them.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import ConfigError, apply, from_yaml_and_flags, validate
from ..readout import summarize
from ..rundir import SUMMARY_FILE, write_atomic, write_text
from .grid import grid_points, point_name, stage_overrides

VARIANTS = ("trained", "frozen", "random_vector", "classical_generator")
SNR_COLUMNS = {"readout_snr": "readout SNR", "device_snr": "device SNR", "needed_snr": "needed SNR"}
MANIFEST, TABLE, CSV, PICTURE = "map.json", "contribution.md", "contribution.csv", "contribution.png"


@dataclass(frozen=True)
class MapPlan:
    """What a map trains: the base configuration, the flags applied everywhere, the axes and seeds,
    the shots that cells with k > 1 (the device-readable ones) train under, and the head bits of
    the k = 1 cells (one output unit shared by thousands of weights keeps k = 1 at chance for
    hundreds of steps without them, docs/start.md; the shipped k = 1 models use 4)."""

    config: str | None
    flags: dict[str, Any]
    axes: dict[str, list[str]]
    seeds: list[int]
    readable_train_shots: int | None
    k1_head_bits: int
    device: str
    device_shots: int

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2)  # axis order names the runs: keep it


def check_axes(axes: dict[str, list[str]]) -> None:
    """Every axis names a configuration key and holds at least one value (one line otherwise)."""
    if not axes:
        raise ConfigError("the map needs at least one --axis key=v1,v2")
    for key, values in axes.items():
        if not [v for v in values if v.strip()]:
            raise ConfigError(f"axis {key}: no values (use {key}=v1,v2)")
        try:
            apply(from_yaml_and_flags(None, {}), {key: values[0]}, f"axis {key}")
        except ConfigError as exc:
            raise ConfigError(f"axis {key}: {exc}") from None


def open_map(out: Path, plan: MapPlan) -> None:
    """Start a new map in ``out`` or resume the same one; refuse a folder that holds anything else."""
    manifest = out / MANIFEST
    if manifest.exists():
        held = json.loads(manifest.read_text())
        if held != json.loads(plan.to_json()):
            raise ConfigError(f"{out} holds another map (its {MANIFEST} differs): choose a new --out")
        if list(held["axes"]) != list(plan.axes):  # equal as dicts, but the order names the runs
            raise ConfigError(f"{out}: give the --axis flags in the map's order: {', '.join(held['axes'])}")
        return
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty and holds no {MANIFEST}: not a map folder; choose a new --out")
    out.mkdir(parents=True, exist_ok=True)
    write_text(manifest, plan.to_json())


def read_plan(out: Path) -> MapPlan:
    """The plan of an existing map folder (for reporting only), or a one-line error."""
    manifest = out / MANIFEST
    if not manifest.exists():
        raise ConfigError(f"{out} holds no {MANIFEST}: not a contribution map (run the map command first)")
    return MapPlan(**json.loads(manifest.read_text()))


def cell_overrides(plan: MapPlan, cell: dict[str, str]) -> dict[str, Any]:
    """A cell's keys, plus shot-noise training where k > 1 (k = 1 spreads a device's shots over
    thousands of outcomes and cannot be read at any affordable budget, so it trains exact) and
    the head bits of the k = 1 cells."""
    config = validate(from_yaml_and_flags(plan.config, {**plan.flags, **cell}))
    if config.model.weights_per_state == 1:
        return {"head_bits": plan.k1_head_bits, **cell, "train_shots": "none"}
    return {**cell, "train_shots": plan.readable_train_shots or "none"}


def plan_tasks(plan: MapPlan, out: Path) -> list[tuple[str, dict[str, Any]]]:
    """(run directory, resolved config) for every cell x variant x seed; all validated up front."""
    tasks = []
    for cell in grid_points(plan.axes):
        keys = cell_overrides(plan, cell)
        name = point_name(validate(from_yaml_and_flags(plan.config, {**plan.flags, **keys})).name, cell)
        for label in VARIANTS:
            for seed in plan.seeds:
                values = {**plan.flags, **keys, **stage_overrides(label, {}), "seed": seed}
                run = validate(from_yaml_and_flags(plan.config, values))
                run = validate(apply(run, {"name": f"{name}_{label}", "group": name}, "map"))
                tasks.append((str(out / "runs" / f"{run.name}_seed{seed}"), run.to_dict()))
    return tasks


def device_accuracy(run: Path, device: str, shots: int) -> dict[str, Any]:
    """The trained run read from ``device``'s noise model at ``shots``, beside its exact accuracy, and
    the SNRs that say why it reads as it does (`qtrain_qiskit.readout`); cached beside the run, with
    the reading's P (``.npy``) so that a later measure of it needs no simulation."""
    from ..evaluation import EXACT_EXECUTION, restore, run_config, score, test_split, total_variation
    from ..rundir import BEST_CHECKPOINT, RunDir

    cache, saved = run / f"device_{device}_{shots}.json", run / f"device_{device}_{shots}.npy"
    if cache.exists() and saved.exists():
        return json.loads(cache.read_text())
    rundir = RunDir.existing(run)
    state = rundir.load_checkpoint(BEST_CHECKPOINT)["model"]
    config = run_config(rundir, EXACT_EXECUTION)
    cpu = torch.device("cpu")
    model = restore(config, state, cpu)
    reader = restore(run_config(rundir, {"backend": "aer_noisy", "noise": device, "shots": shots}), state, cpu)
    data = test_split(config)
    with torch.no_grad():
        probs, reading = model.quantum().double(), reader.quantum().double()
    used = model.mapping.num_rows  # the outcomes that generate weights: ceil(M / k)
    batch = config.train.eval_batch_size
    result = {
        "backend": "aer_noisy",
        "device": device,
        "shots": shots,
        "test_accuracy": score(reader, data, batch, probs=reading)[1],
        "tvd_to_exact": total_variation(reading, probs),
        **summarize(model, probs, reading, data, used=used, shots=shots, batch_size=batch, seed=config.train.seed),
    }
    write_atomic(saved, lambda handle: np.save(handle, reading.numpy()))
    write_text(cache, json.dumps(result, indent=2))
    return result


def _accuracies(out: Path, cell: str, label: str, seeds: list[int]) -> dict[int, float]:
    values = {}
    for seed in seeds:
        summary = out / "runs" / f"{cell}_{label}_seed{seed}" / SUMMARY_FILE
        if summary.exists():
            values[seed] = json.loads(summary.read_text())["test_accuracy"]
    return values


def cell_rows(plan: MapPlan, out: Path) -> list[dict[str, Any]]:
    """One row per cell: each variant's mean accuracy, the trained circuit's lead over its best
    control (paired by seed, with its bootstrap interval) and its accuracy on the device."""
    from ..reporting.comparison import bootstrap_ci, paired_differences

    rows = []
    for cell in grid_points(plan.axes):
        name = point_name(validate(from_yaml_and_flags(plan.config, {**plan.flags, **cell})).name, cell)
        accuracy = {label: _accuracies(out, name, label, plan.seeds) for label in VARIANTS}
        trained = accuracy["trained"]
        if not trained:
            continue
        controls = {label: acc for label, acc in accuracy.items() if label != "trained" and acc}
        missing = [label for label, acc in accuracy.items() if label != "trained" and not acc]
        best = max(controls, key=lambda label: statistics.mean(controls[label].values())) if controls else None
        lead = [-d for d in paired_differences(trained, controls[best])] if best else []
        readings = [
            json.loads(path.read_text())
            for seed in trained
            if (
                path := out / "runs" / f"{name}_trained_seed{seed}" / f"device_{plan.device}_{plan.device_shots}.json"
            ).exists()
        ]
        device = [r["test_accuracy"] for r in readings]
        snrs = {key: [_snr(r.get(key, float("nan"))) for r in readings] for key in SNR_COLUMNS}
        low, high = bootstrap_ci(lead) if lead else (float("nan"), float("nan"))
        rows.append(
            {
                "cell": ", ".join(f"{key}={value}" for key, value in cell.items()),
                **{label: statistics.mean(acc.values()) if acc else float("nan") for label, acc in accuracy.items()},
                "seeds": len(trained),
                "best_control": (best or "-") + (f" (untrained: {', '.join(missing)})" if missing else ""),
                "lead": statistics.mean(lead) if lead else float("nan"),
                "lead_low": low,
                "lead_high": high,
                "device": statistics.mean(device) if device else float("nan"),
                **{key: statistics.mean(values) if values else float("nan") for key, values in snrs.items()},
            }
        )
    return rows


def _snr(value: float | None) -> float:
    return float("inf") if value is None else value  # a needed SNR that no rung of the ladder reached


def _ratio(value: float) -> str:
    return "-" if value != value else "> ladder" if value == float("inf") else f"{value:.1f}"


def _pct(value: float) -> str:
    return "-" if value != value else f"{100 * value:.2f}"


def write_map_report(plan: MapPlan, out: Path) -> list[Path]:
    """contribution.md and .csv (one row per cell) and contribution.png: lead vs device accuracy."""
    from ..reporting.tables import markdown_table

    rows = cell_rows(plan, out)
    if not rows:
        raise ConfigError(f"{out} has no finished trained runs yet: nothing to report")
    header = [
        "cell",
        *VARIANTS,
        "seeds",
        "best control",
        "lead (points)",
        "95% bootstrap",
        f"{plan.device} raw",
        *SNR_COLUMNS.values(),
    ]
    body = [
        [
            r["cell"],
            *(_pct(r[label]) for label in VARIANTS),
            r["seeds"],
            r["best_control"],
            _pct(r["lead"]),
            f"[{_pct(r['lead_low'])}, {_pct(r['lead_high'])}]",
            _pct(r["device"]),
            *(_ratio(r[key]) for key in SNR_COLUMNS),
        ]
        for r in rows
    ]
    note = (
        f"Test accuracy (%), mean over seeds {plan.seeds}; lead = trained minus its best control, paired by seed "
        f"(the bootstrap over {len(plan.seeds)} seeds is crude: its interval spans the per-seed leads). "
        f"{plan.device}: the trained circuit's best-validation weights read at {plan.device_shots} shots. Readout SNR: "
        "spread of the exact P over the used outcomes / shot noise of one outcome at that budget (below ~1 a device "
        "cannot tell the trained values apart). Device SNR: the same spread / the rms error of the device's reading "
        "beyond the offset and scale that the standard feature removes. "
        "Needed SNR: the least shot-noise SNR at which the model stays within 1 point of its exact accuracy "
        "(docs/contribution.md); a model whose device SNR is below it cannot be read from that device.\n\n"
    )
    write_text(out / TABLE, note + markdown_table(header, body) + "\n")
    columns = ["cell", *VARIANTS, "seeds", "best_control", "lead", "lead_low", "lead_high", "device", *SNR_COLUMNS]
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / CSV, text.getvalue())
    plot_map(rows, plan, out / PICTURE)
    return [out / TABLE, out / CSV, out / PICTURE]


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both axes (higher is better on each), by rising x: the
    best lead a model can keep at each device accuracy."""
    finite = sorted((p for p in points if p[0] == p[0] and p[1] == p[1]), key=lambda p: (-p[0], -p[1]))
    front: list[tuple[float, float]] = []
    for x, y in finite:  # by falling x, a point joins when it leads by more than every more accurate one
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front[::-1]


def _device_or_exact(row: dict[str, Any]) -> float:
    return 100 * (row["device"] if row["device"] == row["device"] else row["trained"])


def plot_map(rows: list[dict[str, Any]], plan: MapPlan, path: Path) -> None:
    """Each cell at (accuracy on the device, lead over its best control): up and right is the goal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    for r in rows:
        x = _device_or_exact(r)
        marker = "o" if r["device"] == r["device"] else "x"  # x: no device figure (exact accuracy)
        y, low, high = 100 * r["lead"], 100 * r["lead_low"], 100 * r["lead_high"]
        ax.errorbar(x, y, yerr=[[y - low], [high - y]], fmt=marker, capsize=3)
        label = r["cell"].replace("weights_per_state=", "k=").replace("blocks=", "L=").replace("hidden=", "h=")
        ax.annotate(label, (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
    front = pareto_front([(_device_or_exact(r), 100 * r["lead"]) for r in rows])
    if len(front) > 1:
        ax.plot(*zip(*front, strict=True), color="tab:red", lw=1, ls="--", label="best trade-off (Pareto front)")
        ax.legend(fontsize=8, loc="upper right")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel(f"trained circuit's test accuracy on {plan.device}, {plan.device_shots} shots (%)")
    ax.set_ylabel("lead over its best control (points)")
    ax.set_title("Trained circuit's lead vs its device accuracy (x marker: no device figure)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
