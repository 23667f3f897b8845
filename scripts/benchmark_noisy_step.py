"""Time a noise-aware training step beside the noiseless and the classical one, interleaved in one run.

python scripts/benchmark_noisy_step.py --config configs/mnist_hardware.yaml --noise fake_torino --steps 20 --rounds 3

Arms (each a full training step: forward, backward, clip, Adam, on random inputs of MNIST's shape):
the configuration as given (exact torch engine, with its --train-shots); the same under the device's
noise (`torch_density --noise NAME`, same shots); the target CNN trained directly (``method:
classical``). Each round times every arm once, so a load change on the machine hits all of them; the
figures are medians over rounds of each round's median step, and the ratios of those medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from qtrain_qiskit.benchmark import time_steps
from qtrain_qiskit.cli import run_main
from qtrain_qiskit.config import ConfigError, from_yaml_and_flags, validate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/mnist_hardware.yaml")
    parser.add_argument("--noise", default="fake_torino", help="fake device whose noise the noisy arm trains under")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per arm and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all arms, interleaved")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.rounds < 1:
        raise ConfigError(f"--steps and --rounds must be >= 1, got {args.steps} and {args.rounds}")
    overrides = {
        "noiseless": {},
        "noisy": {"backend": "torch_density", "noise": args.noise},
        "classical": {"method": "classical", "train_shots": None},
    }
    arms = {name: validate(from_yaml_and_flags(args.config, values)) for name, values in overrides.items()}
    medians: dict[str, list[float]] = {name: [] for name in arms}
    details = {}
    for _ in range(args.rounds):
        for name, config in arms.items():
            details[name] = time_steps(config, args.steps)
            medians[name].append(details[name]["median_step_ms"])
    step = {name: statistics.median(values) for name, values in medians.items()}
    result = {
        "config": args.config,
        "noise": args.noise,
        "median_step_ms": step,
        "round_medians_ms": medians,
        "noisy_over_noiseless": step["noisy"] / step["noiseless"],
        "noisy_over_classical": step["noisy"] / step["classical"],
        "torch_threads": details["noisy"]["torch_threads"],
        "steps": args.steps,
        "rounds": args.rounds,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
