"""Alternated timing of one parameter set's circuit forward and backward: compiled loops against the torch sweep.

What `backends/compiled_sweep.py`'s COMPILED_QUBITS is chosen from. For each qubit count and
precision, the ansatz (``--blocks`` blocks of RY on every qubit then a CNOT chain) runs both ways
the torch engine can take for one parameter set on CPU, taking turns in one process
(`qtrain_qiskit.benchmark.alternate`): angles -> probabilities -> reverse pass for a fixed random
cotangent. Prints one JSON line per qubit count and precision, wall medians in ms.

    OMP_NUM_THREADS=1 python scripts/compiled_sweep_timing.py --qubits 11 12 13 15 17 19
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import numpy as np
import torch

from qtrain_qiskit import backends
from qtrain_qiskit.ansatz import build_ansatz
from qtrain_qiskit.benchmark import alternate

ENGINE, LOOPS = backends.torch_statevector, backends.compiled_sweep  # the torch sweep's module, the loops'


def paths(num_qubits: int, blocks: int, precision: str) -> dict[str, Callable[[], None]]:
    """The compiled loops and the torch sweep, each a step from angles to the angles' gradient."""
    circuit = build_ansatz(num_qubits, blocks)
    engine = backends.get_backend("torch_statevector", precision=precision)
    program = engine.program(circuit)
    program.compiled = LOOPS.CompiledPlan(program, engine.dtype)
    rng = np.random.default_rng(0)
    values = torch.tensor(rng.uniform(-np.pi, np.pi, (1, circuit.num_parameters)), dtype=engine.dtype)
    cotangent = torch.tensor(rng.normal(size=(1, 2**num_qubits)), dtype=engine.dtype)

    def compiled() -> None:
        angles = values.clone().requires_grad_(True)
        matrices = ENGINE._slot_matrices(program, values, engine.dtype)
        (LOOPS.CompiledProbabilities.apply(angles, program, matrices) * cotangent).sum().backward()

    def torch_sweep() -> None:
        angles = values.clone().requires_grad_(True)
        (ENGINE._AdjointProbabilities.apply(angles, program, engine.dtype) * cotangent).sum().backward()

    return {"compiled": compiled, "torch": torch_sweep}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--qubits", type=int, nargs="+", default=[11, 12, 13, 15, 17, 19])
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--precisions", nargs="+", default=["float32", "float64"], choices=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=50, help="timed turns per path (a fifth from 17 qubits)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for precision in args.precisions:
        for num_qubits in args.qubits:
            repeats = args.repeats if num_qubits < 17 else max(5, args.repeats // 5)
            timed = alternate(paths(num_qubits, args.blocks, precision), repeats, args.warmup)
            row = {"qubits": num_qubits, "blocks": args.blocks, "precision": precision, "repeats": repeats}
            row |= {f"{path}_ms": round(timed[path]["median_ms"], 3) for path in timed}
            row["torch_over_compiled"] = round(timed["torch"]["median_ms"] / timed["compiled"]["median_ms"], 2)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
