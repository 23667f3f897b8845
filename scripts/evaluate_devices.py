"""Evaluate trained runs on several fake devices at a fixed shot budget, one JSON line per (run, device).

A thin wrapper kept for ``python scripts/evaluate_devices.py``; the command lives in
`qtrain_qiskit.commands.evaluate_devices` (also installed as ``qtrain-evaluate-devices``). Run with
--help for its options.
"""

from qtrain_qiskit.commands.evaluate_devices import cli, main

__all__ = ["main"]

if __name__ == "__main__":
    cli()
