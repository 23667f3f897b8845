"""Print JSON with the median training-step time of a configuration.

python scripts/benchmark.py --backend torch_statevector --grad adjoint --steps 200
python scripts/benchmark.py --backend aer_statevector --grad param_shift --steps 10
"""

from __future__ import annotations

import argparse
import json
import sys

from qtrain_qiskit.benchmark import time_steps
from qtrain_qiskit.cli import run_main
from qtrain_qiskit.config import build_parser, from_args


def main(argv: list[str] | None = None) -> int:
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--steps", type=int, default=50, help="timed steps")
        parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")

    args = build_parser(__doc__.splitlines()[0], extra).parse_args(argv)
    print(json.dumps(time_steps(from_args(args), args.steps, args.warmup), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
