"""Print how a configuration's generated weights and target activations start, beside a standard init.

A thin wrapper kept for ``python scripts/start_stats.py``; the command lives in
`qtrain_qiskit.commands.start_stats` (also installed as ``qtrain-start-stats``). Run with --help for its options.
"""

from qtrain_qiskit.commands.start_stats import cli, main

__all__ = ["main"]

if __name__ == "__main__":
    cli()
