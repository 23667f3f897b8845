"""Run a trained model's hardware trial as one batch: plan, M3, raw / DD / twirling, fine-tune, report.

python scripts/trial.py RUN --ibm-backend ibm_torino --max-qpu-seconds 120      # a real device
python scripts/trial.py RUN --ibm-backend fake_torino                           # the local rehearsal

The plan (jobs, shots, estimated QPU seconds) is printed and checked against --max-qpu-seconds before
anything is submitted; a rerun with the same --out collects the jobs that finished instead of paying
for them again. Writes OUT/trial.md, OUT/trial.png, OUT/trial.json, the device's P (p_*.npy), the
M3 calibration and the job ledger (jobs.jsonl).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli import run_main
from ..config import ConfigError, StrictParser
from ..finetune import PARAMS, SOURCES
from ..trial import TrialSettings, run_trial


def _finetune_arguments(parser: argparse._ArgumentGroup, defaults: TrialSettings) -> None:
    """The fine-tune's flags (`qtrain_qiskit.finetune`); their defaults are `TrialSettings`'."""
    parser.add_argument("--finetune-steps", type=int, default=defaults.finetune_steps, help="steps on the measured P")
    parser.add_argument("--finetune-lr", type=float, default=defaults.finetune_lr, help="Adam's learning rate")
    parser.add_argument(
        "--finetune-source",
        choices=SOURCES,
        default=defaults.finetune_source,
        help="one estimate per step, their mean, or a fresh --shots draw from their mean",
    )
    parser.add_argument(
        "--finetune-params", choices=PARAMS, default=defaults.finetune_params, help="the mapping, or its last layer"
    )
    parser.add_argument(
        "--finetune-prox", type=float, default=defaults.finetune_prox, help="L2 pull toward the trained mapping"
    )
    parser.add_argument("--finetune-batch", type=int, default=defaults.finetune_batch, help="training images a step")
    parser.add_argument(
        "--finetune-search",
        action="store_true",
        help="also run the settings search (validation split): OUT/finetune_search.md",
    )


def main(argv: list[str] | None = None) -> int:
    defaults = TrialSettings(run="", device="", out="")
    parser = StrictParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("run", help="a trained run directory")
    device = parser.add_argument_group("device and plan")
    device.add_argument("--ibm-backend", required=True, help="device name (ibm_*), or fake_* for the local rehearsal")
    device.add_argument("--shots", type=int, default=defaults.shots, help="shots of each circuit job")
    device.add_argument("--calibration-shots", type=int, default=defaults.calibration_shots, help="per M3 circuit")
    device.add_argument(
        "--repeats", type=int, default=defaults.repeats, help="jobs per variant (>= 2 to judge the fine-tune)"
    )
    device.add_argument("--max-qpu-seconds", type=float, default=defaults.max_qpu_seconds, help="refuse plans above")
    device.add_argument("--ibm-mode", default=defaults.mode, help="batch or job (the Open Plan has no session)")
    device.add_argument("--seed", type=int, default=defaults.seed, help="transpiler, simulator, fine-tune seed")
    device.add_argument(
        "--threads", type=int, default=defaults.threads, help="torch threads of the fine-tune and the scoring"
    )
    _finetune_arguments(parser.add_argument_group("fine-tune of the mapping on the measured P"), defaults)
    parser.add_argument_group("output").add_argument("--out", help="trial folder (default RUN/trial_<device>)")
    args = parser.parse_args(argv)
    if args.finetune_lr <= 0 or args.finetune_prox < 0 or args.finetune_batch < 1:
        raise ConfigError(
            "--finetune-lr must be > 0, --finetune-prox >= 0 and --finetune-batch >= 1, got "
            f"{args.finetune_lr}, {args.finetune_prox}, {args.finetune_batch}"
        )
    for name in ("shots", "calibration_shots", "repeats", "finetune_steps", "threads"):
        if getattr(args, name) < (0 if name == "finetune_steps" else 1):
            raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    out = args.out or str(Path(args.run) / f"trial_{args.ibm_backend}")
    settings = TrialSettings(
        run=args.run,
        device=args.ibm_backend,
        out=out,
        shots=args.shots,
        calibration_shots=args.calibration_shots,
        repeats=args.repeats,
        max_qpu_seconds=args.max_qpu_seconds,
        mode=args.ibm_mode,
        finetune_steps=args.finetune_steps,
        finetune_lr=args.finetune_lr,
        finetune_source=args.finetune_source,
        finetune_params=args.finetune_params,
        finetune_prox=args.finetune_prox,
        finetune_batch=args.finetune_batch,
        finetune_search=args.finetune_search,
        seed=args.seed,
        threads=args.threads,
    )
    result = run_trial(settings)
    print(Path(out, "trial.md").read_text(), end="")
    print(f"trial files: {out} ({'local rehearsal' if result['local'] else result['device']})")
    return 0


def cli() -> None:
    """Console entry point ``qtrain-trial``."""
    sys.exit(run_main(main))
