"""Print how a configuration's generated weights and target activations start, beside a standard init.

python scripts/start_stats.py --config configs/mnist.yaml --seeds 0,1,2
python scripts/start_stats.py --config configs/mnist_425.yaml --bit-init-scale 0 --weight-scale none
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch

from ..cli import run_main
from ..config import ConfigError, build_parser, from_args
from ..data import load_dataset, resolve_data_dir
from ..diagnostics import start_statistics


def main(argv: list[str] | None = None) -> int:
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--seeds", default="0,1,2", help="initialization seeds, comma-separated")
        parser.add_argument("--images", type=int, default=256, help="test images the activations are taken on")

    args = build_parser(__doc__.splitlines()[0], extra).parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        raise ConfigError(f"--seeds: expected integers such as 0,1,2, got {args.seeds!r}") from None
    if args.images < 2:
        raise ConfigError(f"--images must be >= 2, got {args.images}")
    config = from_args(args)
    data = load_dataset(config.data.dataset, resolve_data_dir(config.data.data_dir), train=False)
    x, _ = data.batch(torch.arange(min(args.images, len(data))), torch.device("cpu"))
    per_seed = [start_statistics(config, seed, x) for seed in seeds]
    print(f"step 0 of {config.name} (seeds {args.seeds}, {len(x)} test images): mean over seeds\n")
    print("| quantity | generated | standard init |\n|---|---|---|")
    for i, row in enumerate(per_seed[0]):
        generated = statistics.mean(rows[i]["generated"] for rows in per_seed)
        standard = statistics.mean(rows[i]["standard"] for rows in per_seed)
        print(f"| {row['what']} | {generated:.3f} | {standard:.3f} |")
    return 0


def cli() -> None:
    """Console entry point ``qtrain-start-stats``."""
    sys.exit(run_main(main))


if __name__ == "__main__":
    cli()
