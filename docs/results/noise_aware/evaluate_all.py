"""Evaluate every run of both arms on each device at 8,192 shots, one process per device list.

    python docs/results/noise_aware/evaluate_all.py OUT.jsonl RUN... [--devices fake_torino,fake_fez]

Each line of OUT.jsonl is one `evaluate_run` result (scripts/evaluate.py's JSON) with the run and
device; rows already in OUT.jsonl are skipped, so an interrupted evaluation resumes. The noise
model of a device is built once for all runs (Aer keeps it per process).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from qtrain_qiskit.evaluation import evaluate_run

DEVICES = "fake_torino,fake_fez,fake_kingston,fake_marrakesh,fake_brisbane"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--devices", default=DEVICES)
    parser.add_argument("--shots", type=int, default=8192)
    parser.add_argument("--seed", type=int, default=1000, help="simulator seed (training drew with the run's seed)")
    args = parser.parse_args()
    out = Path(args.out)
    rows = map(json.loads, out.read_text().splitlines()) if out.exists() else []
    done = {(row["run"], row["device"]) for row in rows}
    for device in args.devices.split(","):
        for run in args.runs:
            if (run, device) in done:
                continue
            overrides = {"backend": "aer_noisy", "noise": device, "shots": args.shots, "seed": args.seed}
            result = {"run": run, "device": device, **evaluate_run(run, overrides=overrides)}
            with open(out, "a") as handle:
                handle.write(json.dumps(result) + "\n")
            exact = result["exact_test_accuracy"]
            print(f"{run} {device}: {result['test_accuracy']:.4f} (exact {exact:.4f})", flush=True)


if __name__ == "__main__":
    main()
