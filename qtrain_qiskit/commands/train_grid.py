"""Train one run per combination of configuration values, in parallel processes or on Ray.

python scripts/train_grid.py --config configs/mnist.yaml --grid seed=0,1,2 --out runs/seeds --workers 2
python scripts/train_grid.py --grid blocks=2,4,8,16,32 --grid "hidden=20;64" --epochs 15 --out runs/curve
python scripts/train_grid.py ... --ray-address auto        # points as tasks on a Ray cluster
python scripts/train_grid.py --config configs/mnist_425.yaml --compare --grid seed=0,1,2 --out runs/cmp --workers 2
    # each point with its ablations (frozen, random_vector, separable, none), the equal-budget
    # classical CNN and the full CNN; then: python scripts/report.py runs/cmp/* --out REPORT

Every other flag is a configuration key applied to all points. Rerunning skips finished points and
resumes interrupted ones; `python scripts/report.py OUT/* --out REPORT` then tabulates them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli import run_main
from ..config import build_parser, flag_values
from ..sweeps.executor import run_tasks
from ..sweeps.grid import parse_grid, plan_runs, train_point


def main(argv: list[str] | None = None) -> int:
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--grid", action="append", default=[], help="key=v1,v2 (';' between list values)")
        parser.add_argument("--out", required=True, help="folder of the run directories")
        parser.add_argument("--workers", type=int, default=1, help="points trained in parallel (processes)")
        parser.add_argument("--ray-address", help="train points as Ray tasks: 'local' or a cluster address")
        parser.add_argument(
            "--compare", action="store_true", help="also train each point's ablations and classical baselines"
        )

    args = build_parser(__doc__.splitlines()[0], extra).parse_args(argv)
    tasks = plan_runs(args.config, flag_values(args), parse_grid(args.grid), Path(args.out), compare=args.compare)
    print(f"{len(tasks)} runs into {args.out}")
    for (path, _), summary in run_tasks(train_point, tasks, workers=args.workers, ray_address=args.ray_address):
        print(f"{path}: test accuracy {summary['test_accuracy']:.4f}, {summary['train_seconds']:.0f} s", flush=True)
    return 0


def cli() -> None:
    """Console entry point ``qtrain-train-grid``."""
    sys.exit(run_main(main))


if __name__ == "__main__":
    cli()
