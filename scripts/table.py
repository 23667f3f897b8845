"""Write a table of docs/results/ from the files kept there.

A thin wrapper kept for ``python scripts/table.py``; the command lives in `qtrain_qiskit.commands.table`
(also installed as ``qtrain-table``). Run with --help for its options.
"""

from qtrain_qiskit.commands.table import cli, main

__all__ = ["main"]

if __name__ == "__main__":
    cli()
