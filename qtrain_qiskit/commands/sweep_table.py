"""Pool the noise sweeps of several runs (e.g. one per seed) into one table and its plots.

python scripts/sweep_table.py sweeps/hw_s0 sweeps/hw_s1 sweeps/hw_s2 --out docs/results/hardware/sweep

Each row of the pooled table is a cell over every run and repeat (R = runs x repeats): its mean and
standard deviation are then over seeds as well as simulator draws. OUT gets the pooled results.csv,
table.md and the plots the rows allow.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli import run_main
from ..config import ConfigError, StrictParser
from ..reporting.noise import write_report
from ..sweeps.noise import COLUMNS
from ..sweeps.results import ResultFile
from .noise_sweep import RESULTS_FILE


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = StrictParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("sweeps", nargs="+", help="output folders of scripts/noise_sweep.py")
    parser.add_argument("--out", required=True, help="folder for the pooled results.csv, table.md and plots")
    parser.add_argument("--title", default="Noise sweep pooled over runs", help="heading of table.md")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    rows = []
    for folder in args.sweeps:
        found = ResultFile(Path(folder) / RESULTS_FILE, COLUMNS).rows()
        if not found:
            raise ConfigError(f"{folder} holds no {RESULTS_FILE} rows: run scripts/noise_sweep.py there first")
        rows += found
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pooled = ResultFile(out / RESULTS_FILE, COLUMNS)
    if pooled.path.exists():
        pooled.path.unlink()
    for row in rows:
        pooled.append(row)
    written = write_report(rows, out, args.title)
    print(f"{len(rows)} rows from {len(args.sweeps)} sweeps; report: {', '.join(str(out / n) for n in written)}")
    return 0


def cli() -> None:
    """Console entry point ``qtrain-sweep-table``."""
    sys.exit(run_main(main))
