"""Training grids: one run per combination of configuration values (seeds, block counts, ...).

With ``compare`` every point also expands into its controls (`comparison_variants`): the quantum
stage's ablations, the equal-budget classical CNN and the full CNN, all sharing the point's group.
Each point is an ordinary run directory named after its values, trained in a worker process (or
a Ray task) by the same `trainer.train`; a finished point (its summary written) is skipped on a
rerun, an interrupted one resumes from its last checkpoint.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from ..build import trainable_count
from ..config import CircuitConfig, Config, ConfigError, apply, from_yaml_and_flags, validate
from ..rundir import SUMMARY_FILE
from ..stages import STAGES
from ..targets import matched_baselines


def parse_grid(specs: list[str]) -> dict[str, list[str]]:
    """``key=v1,v2`` items (``;`` separates values that contain commas, e.g. hidden=20;32,32)."""
    grid: dict[str, list[str]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        if not sep or not key or not values:
            raise ConfigError(f"grid item {spec!r}: use key=value1,value2 (e.g. seed=0,1,2)")
        grid[key.replace("-", "_")] = values.split(";") if ";" in values else values.split(",")
    return grid


def grid_points(grid: dict[str, list[str]]) -> list[dict[str, str]]:
    """Every combination, in the order the keys and values were given."""
    return [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]


def point_name(base: str, point: dict[str, str]) -> str:
    """``mnist_blocks4_seed1``: the run name says which values it holds."""
    values = "_".join(f"{key}{value.replace(',', '-')}" for key, value in point.items() if key != "seed")
    return f"{base}_{values}" if values else base


def stage_overrides(name: str, extra: dict[str, str]) -> dict[str, str]:
    """The keys that turn a trained-circuit configuration into its ``name`` control: the stage, and
    the circuit keys that stage cannot honour back at their defaults."""
    defaults = {key: str(CircuitConfig.__dataclass_fields__[key].default) for key in STAGES[name].refuses}
    return {"quantum": name, **defaults, **extra}


def comparison_variants(config: Config) -> list[tuple[str, dict[str, str]]]:
    """(label, overrides) of a Quantum-Train configuration and its controls, the trained circuit first.

    Each ablation changes only the quantum stage; the baselines train a classical CNN directly (same
    trainer, data, epochs, seeds): the ``cnn_*`` and ``gap_*`` members within 10% of the trained
    model's trainable parameters, and the full target. A configuration no member matches is refused (ConfigError).
    """
    if config.model.method == "classical" or config.model.quantum != "trained":
        raise ConfigError("--compare starts from a quantum_train configuration with --quantum trained")
    try:
        matched = matched_baselines(trainable_count(config))
    except ValueError as exc:
        raise ConfigError(f"--compare: {exc}") from None
    # the bits-only mapping starts from torch's default weights on its only input (see check_quantum_stage)
    bits_only = {"bit_init_scale": str(config.model.bit_init_scale or 1.0)}
    ablations = [(name, stage_overrides(name, bits_only if name == "none" else {})) for name in STAGES]
    # a classical baseline executes no circuit, so a QT run's shot-noise training has nothing to sample
    classical = {"method": "classical", "train_shots": "none"}
    baselines = [(target, {**classical, "target": target}) for target in (*matched, config.model.target)]
    return ablations + baselines


def plan_runs(
    config_file: str | None, flags: dict[str, Any], grid: dict[str, list[str]], root: Path, *, compare: bool = False
) -> list[tuple]:
    """(run directory, resolved config as a dict) per point (and per variant with ``compare``);
    every run is validated up front."""
    tasks = []
    for point in grid_points(grid):
        config = validate(from_yaml_and_flags(config_file, {**flags, **point}))
        name = point_name(config.name, point)
        variants = comparison_variants(config) if compare else [("", {})]
        for label, overrides in variants:
            run = from_yaml_and_flags(config_file, {**flags, **point, **overrides})
            values = {"name": f"{name}_{label}", "group": name} if compare else {"name": name}
            run = validate(apply(run, values, "grid"))
            tasks.append((str(root / f"{run.name}_seed{run.train.seed}"), run.to_dict()))
    return tasks


def train_point(task: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """Train one point (or finish it); returns its summary."""
    import json

    from .resume import train_or_resume

    path, values = task
    summary = Path(path) / SUMMARY_FILE
    if summary.exists():
        return json.loads(summary.read_text())
    return train_or_resume(validate(apply(Config(), values, path)), path, log=lambda _: None)
