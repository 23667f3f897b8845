"""Evaluate a run directory or an exported classical model on the official test split.

A thin wrapper kept for ``python scripts/evaluate.py``; the command lives in `qtrain_qiskit.commands.evaluate`
(also installed as ``qtrain-evaluate``). Run with --help for its options.
"""

from qtrain_qiskit.commands.evaluate import cli, main

__all__ = ["main"]

if __name__ == "__main__":
    cli()
