"""Evaluate trained runs on several fake devices at a fixed shot budget, one JSON line per (run, device).

qtrain-evaluate-devices docs/results/noise_aware/eval_noise.jsonl runs/noise_aware/* --devices fake_torino,fake_fez

Each line is `evaluate_run`'s result (as qtrain-evaluate prints it) with the run and the device.
Pairs already in OUT are skipped, so an interrupted evaluation resumes; devices are the outer loop,
so each device's noise model is built once for all runs (Aer keeps it per process).
`qtrain-table noise-aware` reads these files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..cli import run_main
from ..config import StrictParser
from ..evaluation import evaluate_run

DEVICES = "fake_torino,fake_fez,fake_kingston,fake_marrakesh,fake_brisbane"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = StrictParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("out", type=Path, help="JSONL file the evaluations are appended to")
    parser.add_argument("runs", nargs="+", help="trained run directories")
    parser.add_argument("--devices", default=DEVICES, help=f"fake devices, comma-separated [{DEVICES}]")
    parser.add_argument("--shots", type=int, default=8192, help="shots of each evaluation [8192]")
    parser.add_argument("--seed", type=int, default=1000, help="simulator seed (training drew with the run's) [1000]")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    rows = map(json.loads, args.out.read_text().splitlines()) if args.out.exists() else []
    done = {(row["run"], row["device"]) for row in rows}
    for device in args.devices.split(","):
        for run in args.runs:
            if (run, device) in done:
                continue
            overrides = {"backend": "aer_noisy", "noise": device, "shots": args.shots, "seed": args.seed}
            result = {"run": run, "device": device, **evaluate_run(run, overrides=overrides)}
            with args.out.open("a") as handle:
                handle.write(json.dumps(result) + "\n")
            exact = result["exact_test_accuracy"]
            print(f"{run} {device}: {result['test_accuracy']:.4f} (exact {exact:.4f})", flush=True)
    return 0


def cli() -> None:
    """Console entry point ``qtrain-evaluate-devices``."""
    sys.exit(run_main(main))
