"""Build the results table (Markdown + CSV) and the accuracy-vs-parameters curve from run directories.

A thin wrapper kept for ``python scripts/report.py``; the command lives in `qtrain_qiskit.commands.report`
(also installed as ``qtrain-report``). Run with --help for its options.
"""

from qtrain_qiskit.commands.report import cli, main

__all__ = ["main"]

if __name__ == "__main__":
    cli()
