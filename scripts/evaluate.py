"""Evaluate a run directory or an exported classical model on the official test split.

python scripts/evaluate.py runs/<name>                       # best checkpoint, run's backend
python scripts/evaluate.py runs/<name> --backend torch_statevector --checkpoint last
python scripts/evaluate.py runs/<name>/classical_model.pt --target mnist_cnn --dataset mnist
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from qtrain_qiskit.cli import run_main
from qtrain_qiskit.config import ConfigError
from qtrain_qiskit.data import DATASETS
from qtrain_qiskit.evaluation import CHECKPOINTS, evaluate_exported, evaluate_run
from qtrain_qiskit.targets import TARGETS


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise ConfigError(message)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("path", help="a run directory, or an exported classical_model.pt")
    parser.add_argument("--checkpoint", choices=sorted(CHECKPOINTS), default="best", help="run checkpoint to use")
    parser.add_argument("--backend", help="execute the run's circuit on another backend")
    parser.add_argument("--target", choices=sorted(TARGETS), default="mnist_cnn", help="target of an exported model")
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="mnist", help="dataset of an exported model")
    parser.add_argument("--data-dir", help="dataset root (default: $QTRAIN_DATA_DIR, else ./data)")
    args = parser.parse_args(argv)
    path = Path(args.path)
    if path.is_dir():
        overrides = {key: value for key, value in (("backend", args.backend), ("data_dir", args.data_dir)) if value}
        result = evaluate_run(path, checkpoint=args.checkpoint, overrides=overrides)
    else:
        result = evaluate_exported(path, target=args.target, dataset=args.dataset, data_dir=args.data_dir)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
