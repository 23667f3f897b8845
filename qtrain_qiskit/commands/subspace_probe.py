"""Train the target in four linear subspaces (random or generator directions, standard or QT start).

qtrain-subspace-probe configs/mnist_425.yaml --seeds 0 1 --out docs/results/start/subspace_mnist_425.md
qtrain-subspace-probe configs/mnist_425.yaml --seeds 0 1 --set weights_per_state=16 hidden=12   # k = 16

Prints one Markdown row per (start, directions) pair and seed as it finishes (test accuracy after
the quick budget at each lr); --out also writes the whole table. See qtrain_qiskit/subspace.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ..cli import run_main
from ..config import StrictParser
from ..reporting.tables import markdown_table
from ..rundir import write_text
from ..subspace import probe_rows


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = StrictParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("config", help="YAML configuration of the QT model")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds [0]")
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 1e-2, 3e-2], help="Adam lrs on z")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="configuration overrides")
    parser.add_argument("--out", help="also write the table to this Markdown file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    torch.set_num_threads(1)
    header = [f"{args.config} {' '.join(args.set)}", "seed", *(f"lr {lr:g}" for lr in args.lrs)]
    print(markdown_table(header, []), end="", flush=True)
    rows = []
    for seed in args.seeds:
        for row in probe_rows(args.config, seed, dict(kv.split("=", 1) for kv in args.set), args.lrs):
            print(markdown_table(header, [row]).splitlines()[-1], flush=True)
            rows.append(row)
    if args.out:
        write_text(Path(args.out), markdown_table(header, rows))
    return 0


def cli() -> None:
    """Console entry point ``qtrain-subspace-probe``."""
    sys.exit(run_main(main))
