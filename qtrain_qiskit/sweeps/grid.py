"""Training grids: one run per combination of configuration values (seeds, block counts, ...).

Each point is an ordinary run directory named after its values, trained in a worker process (or
a Ray task) by the same `trainer.train`; a finished point (its summary written) is skipped on a
rerun, an interrupted one resumes from its last checkpoint.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from ..config import ConfigError, apply, from_yaml_and_flags, validate
from ..rundir import SUMMARY_FILE


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


def plan_runs(config_file: str | None, flags: dict[str, Any], grid: dict[str, list[str]], root: Path) -> list[tuple]:
    """(run directory, resolved config as a dict) per point; every point is validated up front."""
    tasks = []
    for point in grid_points(grid):
        config = from_yaml_and_flags(config_file, {**flags, **point})
        config = validate(apply(config, {"name": point_name(config.name, point)}, "grid"))
        path = root / f"{config.name}_seed{config.train.seed}"
        tasks.append((str(path), config.to_dict()))
    return tasks


def train_point(task: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """Train one point (or finish it); returns its summary."""
    import json

    from ..config import Config
    from .resume import train_or_resume

    path, values = task
    summary = Path(path) / SUMMARY_FILE
    if summary.exists():
        return json.loads(summary.read_text())
    return train_or_resume(validate(apply(Config(), values, path)), path, log=lambda _: None)
