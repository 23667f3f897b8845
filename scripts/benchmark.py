"""Print JSON with the median training-step time (or circuit-evaluation time) of a configuration.

A thin wrapper kept for ``python scripts/benchmark.py``; the command lives in `qtrain_qiskit.commands.benchmark`
(also installed as ``qtrain-benchmark``). Run with --help for its options.
"""

from qtrain_qiskit.commands.benchmark import cli, main

__all__ = ["main"]

if __name__ == "__main__":
    cli()
