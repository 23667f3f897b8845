"""Run a trained model's hardware trial as one batch (plan, M3, raw / DD / twirling, fine-tune, report).

A thin wrapper kept for ``python scripts/trial.py``; the command lives in `qtrain_qiskit.commands.trial`
(also installed as ``qtrain-trial``). Run with --help for its options.
"""

from qtrain_qiskit.commands.trial import cli, main

__all__ = ["main"]

if __name__ == "__main__":
    cli()
