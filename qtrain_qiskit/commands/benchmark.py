"""Print JSON with the median training-step time (or circuit-evaluation time) of a configuration.

python scripts/benchmark.py --backend torch_statevector --grad adjoint --steps 200
python scripts/benchmark.py --backend aer_statevector --grad param_shift --steps 10
python scripts/benchmark.py --evaluate --backend aer_noisy --noise fake_torino --shots 4096 --steps 3
python scripts/benchmark.py --evaluate --run RUN --backend aer_noisy --noise fake_torino --shots 8192 --steps 10
python scripts/benchmark.py --backend torch_statevector --scaling 13,14,15,16 --steps 5   # target mlp ~ 2^N
python scripts/benchmark.py --suite --steps 30 --out docs/results/benchmarks/suite   # the steps side by side, ratios
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..benchmark import run_suite, suite_table, time_evaluations, time_scaling, time_steps
from ..cli import run_main
from ..config import ConfigError, build_parser, from_args


def parse_qubits(text: str) -> list[int]:
    """``13,14,16`` or ``13-16`` -> qubit counts, each with an mlp target of that size (>= 10)."""
    try:
        parts = [part.split("-") for part in text.split(",")]
        qubits = [n for part in parts for n in range(int(part[0]), int(part[-1]) + 1)]
    except ValueError:
        raise ConfigError(f"--scaling: expected qubit counts such as 13,14,15 or 13-20, got {text!r}") from None
    if not qubits or min(qubits) < 10 or any(len(part) > 2 for part in parts):
        raise ConfigError(f"--scaling: qubit counts must be >= 10 (the smallest mlp target), got {text!r}")
    return qubits


def main(argv: list[str] | None = None) -> int:
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--steps", type=int, default=50, help="timed steps")
        parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
        parser.add_argument("--evaluate", action="store_true", help="time --steps circuit evaluations instead")
        parser.add_argument(
            "--run",
            metavar="RUN_DIR",
            help="with --evaluate: this run's best angles and configuration, timed over its test pass",
        )
        parser.add_argument(
            "--suite",
            action="store_true",
            help="time the reference steps alternated; print medians and ratios (docs/performance.md)",
        )
        parser.add_argument("--threads", type=int, help="with --suite: torch intra-op threads (default: torch's)")
        parser.add_argument("--no-cifar", action="store_true", help="with --suite: leave out the 19-qubit CIFAR pair")
        parser.add_argument(
            "--parts", action="store_true", help="with --suite: also time each QT step's circuit and mapping alone"
        )
        parser.add_argument("--configs", default="configs", help="with --suite: folder of the shipped config files")
        parser.add_argument("--out", metavar="DIR", help="with --suite: also write suite.json and suite.md there")
        parser.add_argument(
            "--scaling",
            metavar="N,N,...",
            help="time steps and peak memory per qubit count N, target mlp_<hidden> with M just under 2^N",
        )

    args = build_parser(__doc__.splitlines()[0], extra).parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        raise ConfigError(f"--steps must be >= 1 and --warmup >= 0, got {args.steps} and {args.warmup}")
    if args.suite:
        return suite(args)
    if args.run and not args.evaluate:
        raise ConfigError("--run times a run's evaluations: add --evaluate")
    base = None
    if args.run:
        from ..rundir import RunDir

        base = RunDir.existing(args.run).config()
    config = from_args(args, base)
    if args.scaling:
        result = time_scaling(config, parse_qubits(args.scaling), args.steps, args.warmup)
    elif args.evaluate:
        result = time_evaluations(config, args.steps, args.run)
    else:
        result = time_steps(config, args.steps, args.warmup)
    print(json.dumps(result, indent=2))
    return 0


def suite(args: argparse.Namespace) -> int:
    """``--suite``: the side-by-side table (and, with --out, its JSON and markdown)."""
    configs = Path(args.configs)
    if not (configs / "cifar10_qt.yaml").is_file():
        raise ConfigError(f"--configs: {configs} does not hold the shipped config files (run from the checkout)")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    result = run_suite(configs, args.steps, args.warmup, args.threads, cifar=not args.no_cifar, parts=args.parts)
    table = suite_table(result)
    print(table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "suite.json").write_text(json.dumps(result, indent=2) + "\n")
        (out / "suite.md").write_text(table + "\n")
    return 0


def cli() -> None:
    """Console entry point ``qtrain-benchmark``."""
    sys.exit(run_main(main))
