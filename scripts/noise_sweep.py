"""Noise-robustness sweep of a trained run: finite shots, depolarizing, readout, fake IBM devices.

A thin wrapper kept for ``python scripts/noise_sweep.py``; the command lives in `qtrain_qiskit.commands.noise_sweep`
(also installed as ``qtrain-noise-sweep``). Run with --help for its options.
"""

from qtrain_qiskit.commands.noise_sweep import cli, main

__all__ = ["main"]

if __name__ == "__main__":
    cli()
