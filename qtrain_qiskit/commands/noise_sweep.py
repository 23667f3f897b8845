"""Noise-robustness sweep of a trained run: finite shots, depolarizing, readout, fake IBM devices.

python scripts/noise_sweep.py --config configs/noise_sweep.yaml --run runs/<name> --out sweeps/<name>
python scripts/noise_sweep.py --config configs/noise_sweep.yaml --run runs/<name> --out sweeps/<name> --repeats 1
python scripts/noise_sweep.py ... --workers 2                 # cells in 2 processes
python scripts/noise_sweep.py ... --ray-address auto          # cells as tasks on a Ray cluster

Writes OUT/results.csv (one row per cell and repeat, appended as cells finish), OUT/table.md and
the plots. Rerunning the same command skips finished cells, so an interrupted sweep just resumes.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import yaml
from tqdm.auto import tqdm

from ..cli import run_main
from ..config import NO_CIRCUIT, ConfigError, StrictParser, add_field_flags, apply_flat, load_yaml
from ..evaluation import CHECKPOINTS
from ..helptext import add_groups
from ..reporting.noise import write_report
from ..rundir import RunDir, write_text
from ..sweeps.executor import run_tasks
from ..sweeps.noise import (
    COLUMNS,
    HELP_GROUPS,
    NoiseSweepConfig,
    SweepContext,
    check_settings,
    estimate,
    plan,
    run_cell,
)
from ..sweeps.results import ResultFile

RESULTS_FILE, SETTINGS_FILE = "results.csv", "sweep.yaml"
# Settings that change what a finished row means: a rerun into the same folder must keep them.
IDENTITY = ("run", "checkpoint", "seed", "test_subset", "train_steps", "train_lr", "train_init")


def parse(argv: list[str] | None) -> tuple[NoiseSweepConfig, Path, Path]:
    parser = StrictParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--config", help="YAML file of sweep settings (configs/noise_sweep.yaml)")
    parser.add_argument("--run", required=True, help="a trained run directory")
    parser.add_argument("--out", required=True, help="output folder (reuse it to resume)")
    add_field_flags(parser, dataclasses.fields(NoiseSweepConfig), add_groups(parser, HELP_GROUPS))
    args = parser.parse_args(argv)
    settings = NoiseSweepConfig()
    if args.config:
        apply_flat(settings, load_yaml(args.config), args.config)
    flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(NoiseSweepConfig) if hasattr(args, f.name)}
    apply_flat(settings, flags, "command line")
    return check_settings(settings), Path(args.run), Path(args.out)


def claim_output(out: Path, identity: dict[str, object]) -> None:
    """Create OUT or check that it holds a sweep of the same run and settings (resume)."""
    manifest = out / SETTINGS_FILE
    if manifest.exists():
        previous = yaml.safe_load(manifest.read_text()) or {}
        changed = [key for key in IDENTITY if previous.get(key) != identity[key]]
        if changed:
            key = changed[0]
            raise ConfigError(
                f"{out} holds a sweep with {key}={previous.get(key)!r}, not {identity[key]!r}; use another --out"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    write_text(manifest, yaml.safe_dump(identity, sort_keys=False))


def main(argv: list[str] | None = None) -> int:
    settings, run_path, out = parse(argv)
    run = RunDir.existing(run_path)
    run.load_checkpoint(CHECKPOINTS[settings.checkpoint])  # a missing or unreadable one fails here, not in a worker
    if (stage := run.config().model.quantum) in NO_CIRCUIT:
        raise ConfigError(f"noise sweep: {run.path} was trained with --quantum {stage}: no circuit to put under noise")
    identity = {"run": str(run.path.resolve()), **dataclasses.asdict(settings)}
    identity = {key: identity[key] for key in IDENTITY} | {"settings": dataclasses.asdict(settings)}
    claim_output(out, identity)

    results = ResultFile(out / RESULTS_FILE, COLUMNS)
    done = {(row["protocol"], row["condition"], row["trained_under"], int(row["repeat"])) for row in results.rows()}
    cells = [c for c in plan(settings) if (c.protocol, c.condition.key, c.trained_under or "", c.repeat) not in done]
    context = SweepContext(
        run=identity["run"],
        out=str(out.resolve()),
        checkpoint=settings.checkpoint,
        base_seed=settings.seed,
        data_dir=settings.data_dir,
        test_subset=settings.test_subset,
        train_steps=settings.train_steps,
        train_lr=settings.train_lr,
        train_init=settings.train_init,
    )
    cost = estimate(cells, run.config(), settings.train_steps)
    print(f"sweep of {run.path} into {out}: {len(cells)} cells to run, {len(done)} already done")
    for protocol in settings.protocols:
        keys = dict.fromkeys(c.key.removeprefix(f"{protocol}/") for c in plan(settings) if c.protocol == protocol)
        print(f"  {protocol} grid ({settings.repeats} repeats): {', '.join(keys)}")
    for line in cost.describe(settings.workers):
        print("  " + line)

    where = f"Ray at {settings.ray_address}" if settings.ray_address else f"{settings.workers} process(es)"
    tasks = [(context, cell) for cell in cells]
    for _, row in tqdm(
        run_tasks(run_cell, tasks, workers=settings.workers, ray_address=settings.ray_address),
        total=len(tasks),
        desc=f"cells ({where})",
        disable=None,
    ):
        results.append(row)

    written = write_report(results.rows(), out, f"Noise sweep of {run.path.name}")
    print(f"results: {out / RESULTS_FILE}; report: {', '.join(str(out / name) for name in written)}")
    return 0


def cli() -> None:
    """Console entry point ``qtrain-noise-sweep``."""
    sys.exit(run_main(main))
