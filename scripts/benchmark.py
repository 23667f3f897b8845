"""Print JSON with the median training-step time (or circuit-evaluation time) of a configuration.

python scripts/benchmark.py --backend torch_statevector --grad adjoint --steps 200
python scripts/benchmark.py --backend aer_statevector --grad param_shift --steps 10
python scripts/benchmark.py --evaluate --backend aer_noisy --noise fake_torino --shots 4096 --steps 3
"""

from __future__ import annotations

import argparse
import json
import sys

from qtrain_qiskit.benchmark import time_evaluations, time_steps
from qtrain_qiskit.cli import run_main
from qtrain_qiskit.config import build_parser, from_args


def main(argv: list[str] | None = None) -> int:
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--steps", type=int, default=50, help="timed steps")
        parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
        parser.add_argument("--evaluate", action="store_true", help="time --steps circuit evaluations instead")

    args = build_parser(__doc__.splitlines()[0], extra).parse_args(argv)
    config = from_args(args)
    result = time_evaluations(config, args.steps) if args.evaluate else time_steps(config, args.steps, args.warmup)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
