"""Build the results table (Markdown + CSV) and the accuracy-vs-parameters curve from run directories.

python scripts/report.py runs/* --out docs/results/accuracy
python scripts/report.py runs/mnist_best_s0 runs/mnist_best_s1 runs/mnist_best_s2 --out /tmp/report
qtrain-report docs/results/comparison_425_hb/results.csv --out docs/results/comparison_425_hb   # from the kept CSV

Runs are grouped by their configuration name (mean ± std over the seeds of a group); runs of
`train_grid.py --compare` also get comparison.md (each variant's paired difference to the trained
circuit) and comparison_vs_params.png.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..cli import run_main
from ..config import StrictParser
from ..reporting.results import write_report


def main(argv: list[str] | None = None) -> int:
    parser = StrictParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("runs", nargs="+", help="finished run directories, or results.csv files kept from them")
    parser.add_argument("--out", required=True, help="folder for results.md, results.csv, accuracy_vs_params.png")
    args = parser.parse_args(argv)
    written = write_report(args.runs, Path(args.out))
    for path in written:
        print(path)
    for path in written:
        if path.suffix == ".md":
            print(path.read_text(), end="")
    return 0


def cli() -> None:
    """Console entry point ``qtrain-report``."""
    sys.exit(run_main(main))
