"""Train the target in four linear subspaces (random or generator directions, standard or QT start).

A thin wrapper kept for ``python scripts/subspace_probe.py``; the command lives in
`qtrain_qiskit.commands.subspace_probe` (also installed as ``qtrain-subspace-probe``). Run with --help
for its options.
"""

from qtrain_qiskit.commands.subspace_probe import cli, main

__all__ = ["main"]

if __name__ == "__main__":
    cli()
