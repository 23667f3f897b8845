"""Write a table of docs/results/ from the files kept there (nothing is typed in by hand).

qtrain-table shipped docs/results/shipped.yaml --out docs/results/shipped.md   # README's results table
qtrain-table targets docs/results/hardware/runs --out docs/results/hardware/targets.md
qtrain-table device-in-the-loop docs/results/hardware/device_in_the_loop --out .../table.md
qtrain-table device-in-the-loop docs/results/hardware/device_in_the_loop --level2 --out .../table_level2.md
qtrain-table noise-aware docs/results/noise_aware --out docs/results/noise_aware/table.md
qtrain-table noise-aware docs/results/noise_aware_quantum --devices fake_torino,fake_sherbrooke --out .../table.md
qtrain-table layout --out docs/results/hardware/layout/table.md
qtrain-table steps-to-val 0.90 docs/results/start/runs_hb/mnist_425_hb4_seed? --out docs/results/start/steps_hb.md

Each prints the Markdown table; --out also writes it (atomically). The full list of tables and
the commands that regenerate them: docs/index.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli import run_main
from ..config import StrictParser
from ..reporting import hardware, shipped, start
from ..rundir import write_text


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = StrictParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    tables = parser.add_subparsers(dest="table", required=True, metavar="TABLE", parser_class=StrictParser)
    readme = tables.add_parser("shipped", help="README's table: each shipped configuration beside its best control")
    readme.add_argument("index", type=Path, help="docs/results/shipped.yaml: which kept files back each row")
    targets = tables.add_parser("targets", help="shipped device configurations against their targets")
    targets.add_argument("runs", type=Path, help="folder of <config>_seed<s>/ run directories")
    loop = tables.add_parser("device-in-the-loop", help="exact-to-device drop won back by fine-tuning")
    loop.add_argument("folder", type=Path, help="folder of exact_seed<s>/ and ft_seed<s>/")
    loop.add_argument("--level2", action="store_true", help="the ten-evaluation re-measurement in level2/")
    aware = tables.add_parser("noise-aware", help="noise-aware beside shot-only training, read on fake devices")
    aware.add_argument("folder", type=Path, help="folder of eval_shots.jsonl and eval_noise.jsonl")
    aware.add_argument(
        "--devices", default=",".join(hardware.NOISE_AWARE_DEVICES), help="rows, the trained-under device first"
    )
    layout = tables.add_parser("layout", help="transpiler levels 1 and 2 on fake devices: qubits and errors")
    layout.add_argument("--qubits", type=int, default=7, help="qubits of the chain [7]")
    layout.add_argument("--blocks", type=int, default=8, help="ansatz blocks [8]")
    steps = tables.add_parser("steps-to-val", help="steps until validation accuracy reaches a threshold")
    steps.add_argument("threshold", type=float, help="validation accuracy, e.g. 0.90")
    steps.add_argument("runs", type=Path, nargs="+", help="run directories (config.yaml, metrics.jsonl)")
    for sub in (readme, targets, loop, aware, layout, steps):
        sub.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    return parser.parse_args(argv)


def build(args: argparse.Namespace) -> str:
    """The requested table's Markdown text."""
    if args.table == "shipped":
        return shipped.shipped_table(args.index)
    if args.table == "targets":
        return hardware.targets_table(args.runs)
    if args.table == "device-in-the-loop":
        make = hardware.device_in_the_loop_level2_table if args.level2 else hardware.device_in_the_loop_table
        return make(args.folder)
    if args.table == "noise-aware":
        return hardware.noise_aware_table(args.folder, args.devices.split(","))
    if args.table == "layout":
        return hardware.layout_table(args.qubits, args.blocks)
    return start.steps_to_val_table(args.threshold, args.runs)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    text = build(args)
    if args.out:
        write_text(args.out, text)
    print(text, end="")
    return 0


def cli() -> None:
    """Console entry point ``qtrain-table``."""
    sys.exit(run_main(main))
