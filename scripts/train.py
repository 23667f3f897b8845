"""Train a target network through a quantum circuit (Quantum-Train).

python scripts/train.py --backend aer_statevector            # the reference MNIST run
python scripts/train.py --config configs/mnist.yaml --epochs 3 --train-subset 2000
python scripts/train.py --resume runs/<name>                 # continue after an interruption
"""

from __future__ import annotations

import sys
import time

from qtrain_qiskit.cli import run_main
from qtrain_qiskit.config import build_parser, from_args
from qtrain_qiskit.rundir import RunDir
from qtrain_qiskit.trainer import train


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(
        __doc__.splitlines()[0],
        extra=lambda p: p.add_argument(
            "--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint"
        ),
    )
    args = parser.parse_args(argv)
    if args.resume:
        run = RunDir.existing(args.resume)
        config = from_args(args, run.config())
    else:
        config = from_args(args)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run = RunDir.create(config.run_dir or f"runs/{config.name}_{config.execution.backend}_{stamp}")
    try:
        with run.lock():
            summary = train(config, run, resume=bool(args.resume))
    finally:
        if not args.resume:
            run.discard_if_unused()  # a run that failed before writing anything leaves no folder
    print(f"test accuracy {summary['test_accuracy']:.4f} (best validation {summary['best_val_accuracy']:.4f})")
    print(f"run files: {run.path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
