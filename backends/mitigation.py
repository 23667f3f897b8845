"""Readout-error mitigation of measured outcome frequencies with mthree (M3).

A device misreads each measured bit with a few percent probability; for a QT model that reads its
weights from 2^N probabilities this bias moves every P(i) the same way on every run, so averaging
more shots does not remove it. M3 (Nation et al., PRX Quantum 2021) calibrates the readout of the
measured physical qubits, solves the linear system of the reduced assignment matrix for the
observed bitstrings and returns quasi-probabilities; the nearest probability vector (in L2,
mthree's `nearest_probability_distribution`) is what the mapping is given.

Calibration runs through the device object the sampled backend executes on (a fake device runs it
locally with the device's noise), on the physical qubits the ISA circuit measures, before any
circuit of the run executes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from qiskit import QuantumCircuit

from .options import BackendOptions, option

MITIGATIONS = ("none", "mthree")


def needs_device_readout(backend: type, value: str, state: str | None = None) -> str:
    """The refusal of mitigation on a backend that measures no device: there is nothing to correct."""
    state = state or f"{backend.name} {'is exact' if backend.exact else 'has no device readout'}"
    return f"{value} corrects a device's measured counts; {state}: use aer_noisy --noise fake_<device> or ibm_runtime"


@dataclass(frozen=True)
class MitigationOptions(BackendOptions):
    """Backends that read a device's (or a fake device's) measured bits, which M3 can correct."""

    mitigation: str = option(
        "none",
        "readout mitigation: none, or mthree (M3, calibrated on the device)",
        choices=MITIGATIONS,
        if_unused=needs_device_readout,
    )


def calibration_method(device_name: str) -> str:
    """The calibration M3 picks by default: ``independent`` for a simulator, which it takes every
    ``fake`` device for, ``balanced`` for a real device (mthree's rule, restated to estimate a run's
    cost before any device is contacted)."""
    return "independent" if "fake" in device_name else "balanced"


def calibration_shots(method: str, num_qubits: int, shots: int) -> int:
    """Shots M3 spends calibrating ``num_qubits`` measured qubits at ``shots`` (its own rules).

    ``independent``: both basis states on every qubit, 2 n circuits of ``shots``; ``balanced``: one
    circuit per row of a Hadamard design of length L, 2 ``shots`` / L shots each (rounded up), so
    about 2 ``shots`` in all whatever n.
    """
    if method == "independent":
        return 2 * num_qubits * shots
    from mthree.generators import HadamardGenerator

    length = HadamardGenerator(num_qubits).length
    return -(-2 * shots // length) * length


def calibration_cost(mitigation: str, device_name: str, num_qubits: int, shots: int) -> int:
    """Shots a run with ``mitigation`` spends calibrating ``num_qubits`` measured qubits of ``device_name``
    (0 without M3): what a mitigation-capable backend answers for `Backend.calibration_shots`."""
    if mitigation != "mthree":
        return 0
    return calibration_shots(calibration_method(device_name), num_qubits, shots)


class ReadoutMitigator:
    """M3 calibrated once for the measured qubits of one ISA circuit; `correct` maps frequencies.

    A ``ledger`` gets one line per calibration (its jobs, method and shots), so a paid run's record
    of what it spent includes the calibration.
    """

    _calibrations: ClassVar[dict[tuple, Any]] = {}  # (device, qubits, shots) -> M3Mitigation, per process

    def __init__(
        self,
        device: Any,
        isa: QuantumCircuit,
        shots: int,
        *,
        runtime_mode: Any = None,
        ledger: Any = None,
        cals_file: Path | None = None,
    ) -> None:
        """``cals_file``: where the calibration is kept; an existing one is loaded instead of measured
        again (a resumed trial does not pay for its calibration twice)."""
        import mthree

        # clbit -> physical qubit (mthree's docstring says the reverse; the dict it returns is this way)
        self.qubits = mthree.utils.final_measurement_mapping(isa)
        self.num_bits = isa.num_clbits
        key = (device.name, tuple(sorted(self.qubits.items())), shots)
        if cals_file is not None and cals_file.is_file():
            self._calibrations[key] = mthree.M3Mitigation(device)
            self._calibrations[key].cals_from_file(str(cals_file))
        if key not in self._calibrations:
            mitigation = mthree.M3Mitigation(device)
            jobs = mitigation.cals_from_system(
                qubits=list(self.qubits.values()), shots=shots, async_cal=False, runtime_mode=runtime_mode
            )
            if ledger is not None:
                spent = calibration_shots(mitigation.cal_method, len(self.qubits), shots)
                info = {"purpose": "mthree calibration", "method": mitigation.cal_method, "shots": spent}
                ledger.record(f"mthree:{key}", ",".join(job.job_id() for job in jobs), info)
            if cals_file is not None:
                mitigation.cals_to_file(str(cals_file))
            self._calibrations[key] = mitigation
        self.mitigation = self._calibrations[key]

    def correct(self, frequencies: np.ndarray, shots: int) -> np.ndarray:
        """Mitigated probability vectors (batch, 2^num_bits) from measured frequencies of ``shots`` shots."""
        return np.stack([self._correct_row(row, shots) for row in np.atleast_2d(frequencies)])

    def _correct_row(self, frequencies: np.ndarray, shots: int) -> np.ndarray:
        seen = np.flatnonzero(frequencies)
        counts = {format(i, f"0{self.num_bits}b"): round(frequencies[i] * shots) for i in seen}
        quasi = self.mitigation.apply_correction(counts, self.qubits)
        nearest = quasi.nearest_probability_distribution()
        out = np.zeros(2**self.num_bits)
        out[[int(bits, 2) for bits in nearest]] = list(nearest.values())
        return out
