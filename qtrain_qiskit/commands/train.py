"""Train a target network through a quantum circuit (Quantum-Train).

python scripts/train.py --backend aer_statevector            # the reference MNIST run
python scripts/train.py --config configs/mnist_425.yaml --epochs 3 --train-subset 2000  # quick look: ~78% in 94 steps
python scripts/train.py --resume runs/<name>                 # continue after an interruption
torchrun --nproc-per-node 2 scripts/train.py --backend torch_statevector   # data parallel, 2 ranks

Under torchrun, rank 0 creates and writes the run directory; every rank reads it on --resume and
--init-from, so ranks on several machines need it on a shared filesystem for those.
"""

from __future__ import annotations

import contextlib
import sys
import time

from ..build import resolve_device
from ..cli import run_main
from ..config import build_parser, from_args
from ..distributed import session
from ..rundir import RunDir, RunDirError
from ..trainer import train


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(
        __doc__.splitlines()[0],
        extra=lambda p: p.add_argument(
            "--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint"
        ),
    )
    args = parser.parse_args(argv)
    run = RunDir.existing(args.resume) if args.resume else None
    config = from_args(args, run.config() if run else None)
    with session(resolve_device(config.execution.device)) as context:
        if run is None:  # a new run directory, created by rank 0 and named to the others
            created = None
            try:
                if context.is_main:
                    stamp = time.strftime("%Y%m%d-%H%M%S")
                    name = config.run_dir or f"runs/{config.name}_{config.execution.backend}_{stamp}"
                    created = RunDir.create(name).path
            finally:  # also when creating failed: the other ranks then stop with one line, not a hang
                path = context.broadcast(created)
            if path is None:
                raise RunDirError("rank 0 could not create the run directory")
            run = RunDir(path)
        try:
            with run.lock() if context.is_main else contextlib.nullcontext():
                summary = train(config, run, resume=bool(args.resume), context=context)
        finally:
            if not args.resume and context.is_main:
                run.discard_if_unused()  # a run that failed before writing anything leaves no folder
    if summary is not None:
        print(f"test accuracy {summary['test_accuracy']:.4f} (best validation {summary['best_val_accuracy']:.4f})")
        print(f"run files: {run.path}")
    return 0


def cli() -> None:
    """Console entry point ``qtrain-train``."""
    sys.exit(run_main(main))
