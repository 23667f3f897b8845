"""Pool the noise sweeps of several runs (e.g. one per seed) into one table and its plots.

A thin wrapper kept for ``python scripts/sweep_table.py``; the command lives in
`qtrain_qiskit.commands.sweep_table` (also installed as ``qtrain-sweep-table``). Run with --help for its options.
"""

from qtrain_qiskit.commands.sweep_table import cli, main

__all__ = ["main"]

if __name__ == "__main__":
    cli()
