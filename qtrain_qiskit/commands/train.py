"""Train a target network through a quantum circuit (Quantum-Train).

python scripts/train.py                                      # the main job (MAIN_JOB below, on aer_statevector)
python scripts/train.py --config configs/mnist.yaml          # the seed's reference configuration
python scripts/train.py --config configs/mnist_425.yaml --epochs 3 --train-subset 2000  # quick look: ~78% in 94 steps
python scripts/train.py --resume runs/<name>                 # continue after an interruption
torchrun --nproc-per-node 2 scripts/train.py --backend torch_statevector   # data parallel, 2 ranks

Under torchrun, rank 0 creates and writes the run directory; every rank reads it on --resume and
--init-from, so ranks on several machines need it on a shared filesystem for those.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

from ..build import resolve_device
from ..cli import run_main
from ..config import Config, apply, build_parser, from_args
from ..distributed import session
from ..rundir import RunDir, RunDirError
from ..trainer import train

# What a run without --config trains: the device configuration (configs/mnist_hardware.yaml: k = 64
# weights per basis state of 7 qubits x 8 blocks, mapping [8, 16, 64], 1,288 trainable, trained
# under 8,192-shot estimates of P) on the design card's path, Aer's statevector. It reached
# 97.99 +- 0.08% test at 20 epochs (98.13% at 30, 3 seeds each, docs/hardware.md), and its 20-epoch
# runs were already at 96.9-97.2% validation by epoch 10; 10 epochs (cosine decay over them) keep the
# run well within 5 minutes on 2 cores (docs/performance.md). The seed's reference (92.09% in 50
# epochs) is --config configs/mnist.yaml. Keys as in a config file: only what differs from the defaults.
MAIN_JOB = {
    "name": "mnist_main",
    "model": {"weights_per_state": 64, "hidden": [16], "features": "standard"},
    "circuit": {"blocks": 8},
    "execution": {"backend": "aer_statevector"},
    "train": {"train_shots": 8192, "epochs": 10, "lr": 0.01, "schedule": "cosine"},
}


def run_config(args: argparse.Namespace, run: RunDir | None) -> Config:
    """A resumed run's own configuration, else --config, else `MAIN_JOB`; then the flags."""
    if run is not None:
        return from_args(args, run.config())
    if args.config:
        return from_args(args)
    return from_args(args, apply(Config(), MAIN_JOB, "the main job (MAIN_JOB in qtrain_qiskit/commands/train.py)"))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(
        __doc__.splitlines()[0],
        extra=lambda p: p.add_argument(
            "--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint"
        ),
    )
    args = parser.parse_args(argv)
    run = RunDir.existing(args.resume) if args.resume else None
    config = run_config(args, run)
    if run is None and not args.config:
        print("no --config: the main job (configs/mnist_hardware.yaml at 20 epochs on aer_statevector); "
              "--config configs/mnist.yaml trains the seed's reference")  # fmt: skip
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
