"""Evaluate a run directory or an exported classical model on the official test split.

    python scripts/evaluate.py runs/<name>                                   # best checkpoint, run's backend
    python scripts/evaluate.py runs/<name> --backend ibm_runtime --ibm-backend fake_torino --shots 4096
    python scripts/evaluate.py runs/<name>/classical_model.pt --target mnist_cnn --dataset mnist

Any configuration key can be overridden for a run (e.g. another backend, noise or shot count); on a
sampled backend the exact accuracy and the distance of the sampled distribution are printed beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..cli import run_main
from ..config import Config, apply, build_parser, flag_values, validate
from ..evaluation import CHECKPOINTS, evaluate_exported, evaluate_run


def main(argv: list[str] | None = None) -> int:
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("path", help="a run directory, or an exported classical_model.pt")
        parser.add_argument("--checkpoint", choices=sorted(CHECKPOINTS), default="best", help="run checkpoint to use")

    args = build_parser(__doc__.splitlines()[0], extra).parse_args(argv)
    flags = flag_values(args)
    path = Path(args.path)
    if path.is_dir():
        result = evaluate_run(path, checkpoint=args.checkpoint, overrides=flags)
    else:
        config = validate(apply(Config(), flags, "command line"))
        result = evaluate_exported(
            path, target=config.model.target, dataset=config.data.dataset, data_dir=config.data.data_dir
        )
    print(json.dumps(result, indent=2))
    return 0


def cli() -> None:
    """Console entry point ``qtrain-evaluate``."""
    sys.exit(run_main(main))
