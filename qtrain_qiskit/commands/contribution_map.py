"""Train the contribution map: each cell's trained circuit beside its frozen, random-vector and generator controls.

python scripts/contribution_map.py --config configs/contribution_map.yaml --axis weights_per_state=1,16,64 \
    --axis blocks=8,32 --axis "hidden=4;16" --seeds 0,1 --out runs/map --workers 2
python scripts/contribution_map.py --out runs/map --report-only      # table and picture from what has finished

Cells with k > 1 train under --readable-train-shots (8192, a device's budget); k = 1 trains exact. Each
trained circuit is then read on --map-device at --map-device-shots. Rerunning the same command resumes
(finished runs are skipped, interrupted ones resume); another map's folder is refused. Writes
OUT/contribution.md, contribution.csv and contribution.png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli import run_main
from ..config import ConfigError, build_parser, flag_values
from ..sweeps.contribution import (
    MapPlan,
    check_axes,
    device_accuracy,
    open_map,
    plan_tasks,
    read_plan,
    write_map_report,
)
from ..sweeps.executor import run_tasks
from ..sweeps.grid import parse_grid, train_point


def _extra(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("map")
    group.add_argument("--axis", action="append", default=[], help="key=v1,v2 (';' between list values)")
    group.add_argument("--seeds", default="0,1", help="seeds of every cell and variant (default 0,1)")
    group.add_argument("--out", required=True, help="the map's folder")
    group.add_argument("--workers", type=int, default=1, help="runs trained in parallel (processes)")
    group.add_argument(
        "--readable-train-shots", type=int, default=8192, metavar="N", help="train shots where k > 1 (0: exact)"
    )
    group.add_argument("--k1-head-bits", type=int, default=4, help="head bits of the k = 1 cells (docs/start.md)")
    group.add_argument("--map-device", default="fake_torino", help="fake device the trained circuits are read on")
    group.add_argument("--map-device-shots", type=int, default=8192, metavar="N", help="shots of that reading")
    group.add_argument("--report-only", action="store_true", help="write the table and picture, train nothing")


def main(argv: list[str] | None = None) -> int:
    args = build_parser(__doc__.splitlines()[0], _extra).parse_args(argv)
    out = Path(args.out)
    if args.report_only:
        plan = read_plan(out)
    else:
        try:
            seeds = [int(s) for s in args.seeds.split(",")]
        except ValueError:
            raise ConfigError(f"--seeds: {args.seeds!r} is not a comma-separated list of integers") from None
        axes = parse_grid(args.axis)
        check_axes(axes)
        flags = {k: v for k, v in flag_values(args).items() if k != "seed"}
        shots = args.readable_train_shots or None
        plan = MapPlan(
            args.config, flags, axes, seeds, shots, args.k1_head_bits, args.map_device, args.map_device_shots
        )
        tasks = plan_tasks(plan, out)  # validated before anything is written
        open_map(out, plan)
        print(f"{len(tasks)} runs into {out / 'runs'}", flush=True)
        for (path, _), summary in run_tasks(train_point, tasks, workers=args.workers):
            print(f"{path}: test accuracy {summary['test_accuracy']:.4f}, {summary['train_seconds']:.0f} s", flush=True)
            if Path(path).name.rsplit("_seed", 1)[0].endswith("_trained"):  # read as soon as it is trained
                result = device_accuracy(Path(path), plan.device, plan.device_shots)
                print(f"{path}: {plan.device} {result['test_accuracy']:.4f}", flush=True)
    for path in write_map_report(plan, out):
        print(path)
    print((out / "contribution.md").read_text(), end="")
    return 0


def cli() -> None:
    """Console entry point ``qtrain-contribution-map``."""
    sys.exit(run_main(main))
