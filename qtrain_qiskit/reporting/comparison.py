"""Each Quantum-Train configuration beside its controls: ablations and equal-budget classical CNNs.

Runs that `train_grid --compare` trained share a ``group``. Within a group the trained circuit is
the reference; every other variant is compared with it seed by seed (same seed: same data order,
same mapping start), so the paired difference removes the seed-to-seed spread that both share.
With few seeds the bootstrap interval is crude (3 seeds: 10 distinct resample means) and is said
to be; the Wilcoxon signed-rank test is reported only from 5 seeds, below which its smallest
possible two-sided p-value exceeds 0.05.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..rundir import save_figure, write_text
from ..stages import QUANTUM_STAGES
from .runs import Group, RunResult
from .tables import markdown_table

COMPARISON_FILE, COMPARISON_CURVE = "comparison.md", "comparison_vs_params.png"
REFERENCE = QUANTUM_STAGES[0]  # "trained": the model every other variant is paired with
WILCOXON_MIN_SEEDS = 5
EXACT_BOOTSTRAP_LIMIT = 50_000  # enumerate all n^n resamples up to this many, else sample


def variant(run: RunResult, reference_target: str) -> str:
    """The run's role in its group: a quantum stage, or the equal-budget / full classical CNN.

    A quantum run is named by what its name adds to the group's (``--compare`` names runs
    ``<group>_<stage>``), so a run added to a comparison by hand, e.g. ``<group>_none_seedstart``
    with another start, gets a row of its own.
    """
    if run.method != "classical":
        prefix = f"{run.group}_"
        return run.name.removeprefix(prefix) if run.group and run.name.startswith(prefix) else run.quantum
    return f"full CNN ({run.target})" if run.target == reference_target else f"equal-budget CNN ({run.target})"


def paired_differences(reference: dict[int, float], other: dict[int, float]) -> list[float]:
    """other - reference for every seed both have, in seed order."""
    return [other[seed] - reference[seed] for seed in sorted(reference.keys() & other.keys())]


def bootstrap_ci(values: Sequence[float], level: float = 0.95, resamples: int = 20_000) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values``.

    Exact where all n^n equally likely resamples can be enumerated (n <= 6), so small cases are
    deterministic and checkable by hand; otherwise ``resamples`` draws from a fixed seed.
    """
    data = np.asarray(values, dtype=float)
    n = len(data)
    if n == 0:
        return math.nan, math.nan
    if n**n <= EXACT_BOOTSTRAP_LIMIT:
        means = np.array([data[list(idx)].mean() for idx in itertools.product(range(n), repeat=n)])
    else:
        means = data[np.random.default_rng(0).integers(0, n, (resamples, n))].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail], method="inverted_cdf")
    return float(low), float(high)


def wilcoxon_p(values: Sequence[float]) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value of the paired differences; None below 5 seeds."""
    if len(values) < WILCOXON_MIN_SEEDS:
        return None
    from scipy.stats import wilcoxon

    if all(v == 0 for v in values):
        return 1.0
    return float(wilcoxon(values).pvalue)


def comparison_groups(groups: Sequence[Group]) -> dict[str, list[Group]]:
    """Groups of runs (one per variant) by their comparison, the trained circuit first in each."""
    out: dict[str, list[Group]] = {}
    for group in groups:
        if group.first.group:
            out.setdefault(group.first.group, []).append(group)
    for members in out.values():
        members.sort(key=_order)
    return out


def _order(group: Group) -> tuple[int, int]:
    """The trained circuit, its ablations in QUANTUM_STAGES order, then the CNNs by size."""
    run = group.first
    if run.method == "classical":
        return len(QUANTUM_STAGES), run.trainable_params
    return QUANTUM_STAGES.index(run.quantum), 0


HEADER = [
    "comparison",
    "variant",
    "trainable",
    "seeds",
    "test accuracy (mean ± std)",
    "paired diff. vs trained (points)",
    "95% bootstrap CI",
    "Wilcoxon p",
]


def _points(value: float) -> str:
    return f"{100 * value:+.2f}"


def comparison_rows(name: str, members: Sequence[Group]) -> list[list[str]]:
    """One row per variant of one comparison: its accuracy, and its paired difference to the trained circuit."""
    reference = next((g for g in members if g.first.method != "classical" and g.first.quantum == REFERENCE), None)
    by_seed = {r.seed: r.test_accuracy for r in reference.runs} if reference else {}
    rows = []
    for group in members:
        mean, std = group.stat("test_accuracy")
        diffs = paired_differences(by_seed, {r.seed: r.test_accuracy for r in group.runs})
        if group is reference or not diffs:
            paired = ["-", "-", "-"]
        else:
            low, high = bootstrap_ci(diffs)
            p = wilcoxon_p(diffs)
            spread = f" ± {100 * statistics.stdev(diffs):.2f}" if len(diffs) > 1 else ""
            paired = [
                f"{_points(statistics.fmean(diffs))}{spread}",
                f"[{_points(low)}, {_points(high)}]",
                f"{p:.3f}" if p is not None else f"- (n={len(diffs)} < {WILCOXON_MIN_SEEDS})",
            ]
        label = variant(group.first, reference.first.target if reference else "")
        seeds = ",".join(str(r.seed) for r in group.runs)
        accuracy = f"{100 * mean:.2f} ± {100 * std:.2f} %"
        rows.append([name, label, f"{group.first.trainable_params:,}", seeds, accuracy, *paired])
    return rows


def comparison_table(groups: Sequence[Group]) -> str:
    rows = [row for name, members in comparison_groups(groups).items() for row in comparison_rows(name, members)]
    return markdown_table(HEADER, rows)


OFF_SCALE = 0.5  # a variant whose mean accuracy is below this (seeds at chance) is marked, not scaled to


def family_points(groups: Sequence[Group]) -> dict[str, list[tuple[int, float, float, str]]]:
    """(x, mean %, std %, variant) per family of variants, as `plot_families` draws them.

    One comparison: each variant at its own trainable count (the ablations that train no angles sit
    left of the trained circuit). Several: every variant of a comparison at the trained model's
    count, its budget, so each budget reads as one column of controls. The equal-budget CNNs of the
    two architecture families (``cnn_*``, ``gap_*``) are separate series.
    """
    comparisons = comparison_groups(groups)
    families: dict[str, list[tuple[int, float, float, str]]] = {}
    for members in comparisons.values():
        target, budget = members[0].first.target, members[0].first.trainable_params
        for group in members:
            label = variant(group.first, target)
            family = label.split(" (")[0]
            if group.first.method == "classical" and group.first.target != target:
                family += f" ({group.first.target.split('_')[0]}_*)"
            x = group.first.trainable_params if len(comparisons) == 1 else budget
            mean, std = group.stat("test_accuracy")
            families.setdefault(family, []).append((x, 100 * mean, 100 * std, label))
    for points in families.values():
        points.sort()
    return families


def plot_families(groups: Sequence[Group], path: Path) -> None:
    """Test accuracy vs trainable parameters, one marker series per family (`family_points`, log x).

    A variant with seeds that never left chance would squash the axis: its mean is drawn at the
    bottom edge and labelled with its value.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = family_points(groups)
    # The axis fits the variants that trained at every seed (mean >= 50%, std < 5 points), or all of
    # them where none did (tiny runs); a mean below it is drawn at the bottom edge with its value.
    every = [(m, s) for points in families.values() for _, m, s, _ in points]
    steady = [(m, s) for m, s in every if m >= 100 * OFF_SCALE and s < 5] or every
    bottom = min(m - s for m, s in steady) - 1
    fig, ax = plt.subplots(figsize=(9, 4.5))
    labelled = itertools.count()  # off-scale labels stack upwards, so close budgets do not overprint
    for (family, points), marker in zip(families.items(), itertools.cycle("os^vDPX*"), strict=False):
        on = [p for p in points if p[1] >= bottom]
        line = ax.errorbar(
            [p[0] for p in on],
            [p[1] for p in on],
            [p[2] for p in on],
            marker=marker,
            capsize=3,
            linestyle="-" if len(on) > 1 else "none",
            label=family,
        )
        for x, mean, _, label in (p for p in points if p[1] < bottom):
            ax.plot([x], [bottom], marker="v", color=line[0].get_color(), clip_on=False)
            offset = (4, 4 + 10 * next(labelled))
            ax.annotate(f"{label}: {mean:.1f}%", (x, bottom), textcoords="offset points", xytext=offset, fontsize=7)
    ax.set_ylim(bottom, min(100, max(m + s for m, s in steady) + 1))
    several = len(comparison_groups(groups)) > 1
    xlabel = "trainable parameters" + (" of the trained circuit (its budget)" if several else "")
    ax.set(xscale="log", xlabel=xlabel, ylabel="test accuracy (%)")
    ax.set_title("Quantum-Train, its ablations and classical CNNs (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    save_figure(fig, path)


def write_comparison(groups: Sequence[Group], out: Path) -> list[Path]:
    """comparison.md and its plot when any run belongs to a comparison; no files otherwise."""
    if not comparison_groups(groups):
        return []
    write_text(out / COMPARISON_FILE, comparison_table(groups))
    plot_families(groups, out / COMPARISON_CURVE)
    return [out / COMPARISON_FILE, out / COMPARISON_CURVE]
