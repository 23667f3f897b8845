"""Train the contribution map (each cell's trained circuit beside its controls) and write its table and picture.

A thin wrapper kept for ``python scripts/contribution_map.py``; the command lives in
`qtrain_qiskit.commands.contribution_map` (also installed as ``qtrain-contribution-map``). Run with --help.
"""

from qtrain_qiskit.commands.contribution_map import cli, main

__all__ = ["main"]

if __name__ == "__main__":
    cli()
