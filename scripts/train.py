"""Train a target network through a quantum circuit (Quantum-Train).

A thin wrapper kept for ``python scripts/train.py``; the command lives in `qtrain_qiskit.commands.train`
(also installed as ``qtrain-train``). Run with --help for its options.
"""

from qtrain_qiskit.commands.train import cli, main

__all__ = ["main"]

if __name__ == "__main__":
    cli()
