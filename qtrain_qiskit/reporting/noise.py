"""The noise sweep's table and figures, rebuilt from its CSV (so they always match the rows)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..rundir import save_figure, write_text
from .tables import markdown_table, mean_std

TABLE_FILE, SHOTS_PLOT, DEPOLARIZING_PLOT, DEVICES_PLOT, TRAINING_PLOT = (
    "table.md",
    "accuracy_vs_shots.png",
    "accuracy_vs_depolarizing.png",
    "devices.png",
    "training.png",
)


@dataclass
class Group:
    """All repeats of one cell: the statistics the table and plots show."""

    protocol: str
    condition: str
    kind: str
    value: str
    shots: str
    trained_under: str
    accuracy: tuple[float, float]
    tvd: tuple[float, float]
    exact_accuracy: tuple[float, float]
    wall_s: float
    repeats: int


KIND_ORDER = {"shots": 0, "exact": 1, "depolarizing": 2, "readout": 3, "device": 4}


def _order(group: Group) -> tuple:
    """Protocol, then shots ascending and exact, then each noise kind by its level."""
    try:
        level: tuple = (0, float(group.value or group.shots or 0))
    except ValueError:
        level = (1, group.value)  # device names
    return (group.protocol != "inference", KIND_ORDER.get(group.kind, 9), level, group.trained_under != "exact")


def summarize(rows: Sequence[dict[str, str]]) -> list[Group]:
    """Rows grouped by cell, in table order, with mean and standard deviation over repeats."""
    cells: dict[tuple[str, str, str], list[dict[str, str]]] = {}
    for row in rows:
        cells.setdefault((row["protocol"], row["condition"], row["trained_under"]), []).append(row)
    groups = []
    for (protocol, condition, trained_under), members in cells.items():
        first = members[0]
        groups.append(
            Group(
                protocol,
                condition,
                first["kind"],
                first["value"],
                first["shots"],
                trained_under,
                mean_std(float(r["accuracy"]) for r in members),
                mean_std(float(r["tvd"]) for r in members),
                mean_std(float(r["exact_accuracy"]) for r in members),
                sorted(float(r["wall_s"]) for r in members)[len(members) // 2],
                len(members),
            )
        )
    return sorted(groups, key=_order)


def _pm(stat: tuple[float, float], digits: int = 4) -> str:
    mean, std = stat
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def table(groups: Sequence[Group], title: str) -> str:
    """Markdown: one table per protocol, mean ± standard deviation over repeats."""
    text = f"# {title}\n\n"
    inference = [g for g in groups if g.protocol == "inference"]
    if inference:
        text += "## Inference-time robustness (the trained run executed under each condition)\n\n"
        text += markdown_table(
            ["condition", "shots", "R", "test accuracy", "TV distance to exact", "median s/cell"],
            [
                (g.condition, g.shots or "exact", g.repeats, _pm(g.accuracy), _pm(g.tvd), f"{g.wall_s:.1f}")
                for g in inference
            ],
        )
    training = [g for g in groups if g.protocol == "training"]
    if training:
        text += "\n## Training-time robustness (trained under, then tested under, the condition)\n\n"
        text += markdown_table(
            ["condition", "trained under", "R", "test accuracy", "same model, exact", "TV distance", "median s/cell"],
            [
                (
                    g.condition,
                    g.trained_under,
                    g.repeats,
                    _pm(g.accuracy),
                    _pm(g.exact_accuracy),
                    _pm(g.tvd),
                    f"{g.wall_s:.1f}",
                )
                for g in training
            ],
        )
    return text


def _exact_line(ax: object, groups: Sequence[Group]) -> None:
    exact = next((g for g in groups if g.protocol == "inference" and g.kind == "exact"), None)
    if exact is not None:
        ax.axhline(exact.accuracy[0], color="gray", linestyle="--", label="exact")


def plot_shots(groups: Sequence[Group], path: Path) -> bool:
    """Accuracy vs shots (log x) with the TV distance and a 1/sqrt(shots) guide on a second axis.

    The guide goes through the largest shot count: below ~2^N shots most outcomes are never seen
    and the distance saturates near 1 instead of following it.
    """
    import matplotlib.pyplot as plt

    sampled = sorted((g for g in groups if g.protocol == "inference" and g.kind == "shots"), key=lambda g: int(g.shots))
    if not sampled:
        return False
    shots = [int(g.shots) for g in sampled]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.errorbar(shots, [g.accuracy[0] for g in sampled], [g.accuracy[1] for g in sampled], marker="o", label="accuracy")
    _exact_line(ax, groups)
    ax.set(xscale="log", xlabel="shots", ylabel="test accuracy", title="Accuracy vs shots")
    tvd_ax = ax.twinx()
    tvd_ax.errorbar(
        shots, [g.tvd[0] for g in sampled], [g.tvd[1] for g in sampled], color="C1", marker="s", label="TVD"
    )
    guide = [sampled[-1].tvd[0] * math.sqrt(shots[-1] / s) for s in shots]  # through the most shots
    tvd_ax.plot(shots, guide, color="C1", linestyle=":", label="1/sqrt(shots)")
    tvd_ax.set(yscale="log", ylabel="TV distance to exact")
    handles = ax.get_legend_handles_labels()[0] + tvd_ax.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="center right")
    ax.grid(alpha=0.3)
    save_figure(fig, path)
    return True


def plot_depolarizing(groups: Sequence[Group], path: Path) -> bool:
    """Accuracy vs depolarizing rate (log x) at the noisy cells' shot count, with its noiseless level."""
    import matplotlib.pyplot as plt

    noisy = sorted(
        (g for g in groups if g.protocol == "inference" and g.kind == "depolarizing"), key=lambda g: float(g.value)
    )
    if not noisy:
        return False
    fig, ax = plt.subplots(figsize=(6.5, 4))
    rates = [float(g.value) for g in noisy]
    ax.errorbar(rates, [g.accuracy[0] for g in noisy], [g.accuracy[1] for g in noisy], marker="o", label="depolarizing")
    noiseless = next((g for g in groups if g.kind == "shots" and g.shots == noisy[0].shots), None)
    if noiseless is not None:
        ax.axhline(noiseless.accuracy[0], color="C2", linestyle=":", label=f"{noisy[0].shots} shots, no noise")
    _exact_line(ax, groups)
    ax.set(
        xscale="log", xlabel="depolarizing probability (1q and 2q)", ylabel="test accuracy", title="Accuracy vs noise"
    )
    ax.legend()
    ax.grid(alpha=0.3)
    save_figure(fig, path)
    return True


def _bars(ax: object, labels: list[str], stats: list[tuple[float, float]], offset: float, width: float, **kw) -> None:
    positions = [i + offset for i in range(len(labels))]
    ax.bar(positions, [m for m, _ in stats], width, yerr=[s for _, s in stats], capsize=3, **kw)


def plot_devices(groups: Sequence[Group], path: Path) -> bool:
    """One bar per fake device (and readout level), beside the noiseless run at the same shots."""
    import matplotlib.pyplot as plt

    chosen = [g for g in groups if g.protocol == "inference" and g.kind in ("device", "readout")]
    if not chosen:
        return False
    noiseless = next((g for g in groups if g.kind == "shots" and g.shots == chosen[0].shots), None)
    chosen = ([noiseless] if noiseless else []) + chosen
    labels = [{"device": g.value, "readout": f"readout {g.value}"}.get(g.kind, "no noise") for g in chosen]
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(chosen)), 4))
    _bars(ax, labels, [g.accuracy for g in chosen], 0, 0.6, color="C0")
    _exact_line(ax, groups)
    ax.set_xticks(range(len(labels)), labels, rotation=20)
    ax.set(ylabel="test accuracy", title=f"Devices and readout error, {chosen[-1].shots} shots")
    ax.legend()
    save_figure(fig, path)
    return True


def plot_training(groups: Sequence[Group], path: Path) -> bool:
    """Per condition: trained under it vs trained exactly, both tested under it."""
    import matplotlib.pyplot as plt

    training = [g for g in groups if g.protocol == "training"]
    if not training:
        return False
    conditions = list(dict.fromkeys(g.condition for g in training))
    fig, ax = plt.subplots(figsize=(max(5, 2 * len(conditions)), 4))
    for offset, under_exact, label in ((-0.2, False, "trained under condition"), (0.2, True, "trained exactly")):
        stats = []
        for condition in conditions:
            match = [g for g in training if g.condition == condition and (g.trained_under == "exact") == under_exact]
            stats.append(match[0].accuracy if match else (math.nan, 0.0))
        _bars(ax, conditions, stats, offset, 0.4, label=label)
    ax.set_xticks(range(len(conditions)), conditions)
    ax.set(ylabel="test accuracy under the condition", title="Training under noise vs exact training")
    ax.legend()
    save_figure(fig, path)
    return True


def write_report(rows: Sequence[dict[str, str]], out: Path, title: str) -> list[str]:
    """Table and every plot the rows allow; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    groups = summarize(rows)
    write_text(out / TABLE_FILE, table(groups, title))
    written = [TABLE_FILE]
    for name, plot in (
        (SHOTS_PLOT, plot_shots),
        (DEPOLARIZING_PLOT, plot_depolarizing),
        (DEVICES_PLOT, plot_devices),
        (TRAINING_PLOT, plot_training),
    ):
        if plot(groups, out / name):
            written.append(name)
    return written
