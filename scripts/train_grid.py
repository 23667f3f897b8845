"""Train one run per combination of configuration values, in parallel processes or on Ray.

A thin wrapper kept for ``python scripts/train_grid.py``; the command lives in `qtrain_qiskit.commands.train_grid`
(also installed as ``qtrain-train-grid``). Run with --help for its options.
"""

from qtrain_qiskit.commands.train_grid import cli, main

__all__ = ["main"]

if __name__ == "__main__":
    cli()
