"""The torch engine's real RY circuits as two compiled loops on CPU: for small circuits, op overhead is the cost.

At 7 qubits a state is 128 amplitudes: each torch operation of the engine (a few dozen forward, more
in the reverse sweep) does almost nothing, and their dispatch is what a training step pays (0.9 ms
for `mnist_hardware`'s circuit forward and backward, one thread). Here the whole forward is one
compiled call and the whole reverse sweep another (numba, float32 or float64 like the engine):
each layer applies its 2x2 matrices qubit by qubit, a permutation is one gather, a sign vector one
product; the sweep uncomputes the state beside the adjoint (the layers are orthogonal) and takes
every RY angle's overlap on the way. The gate matrices and the angles' gradient stay torch
operations of the engine (`_slot_matrices`, the adjoint plan's columns), so what this module
computes is only the state and the per-slot overlaps.

Forward and reverse sweep of the 8-block ansatz, one thread, 200 calls alternated with the torch
sweep, medians (machine under load): 7 qubits 0.40 ms against 1.01; 9 qubits 0.75 against 1.58;
11 qubits 1.64 against 2.76; 12 qubits 2.65 against 3.03, and slower than the torch sweep in an
earlier, unalternated measurement (2.2 against 1.8): from about 12 qubits the engine's dense chunk
products catch up, so `COMPILED_QUBITS` stops at 11.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numba import njit

COMPILED_QUBITS = 11  # circuits of at most this many qubits take the compiled path on CPU (12: slower)
LAYER, PERM, DIAG = 0, 1, 2


@njit(cache=True)
def _apply_matrix(state: np.ndarray, qubit: int, a: float, b: float, c: float, d: float) -> None:
    """[[a, b], [c, d]] on ``qubit`` of ``state``, in place."""
    stride = 1 << qubit
    for base in range(0, state.shape[0], 2 * stride):
        for i in range(base, base + stride):
            x0, x1 = state[i], state[i + stride]
            state[i] = a * x0 + b * x1
            state[i + stride] = c * x0 + d * x1


@njit(cache=True)
def _forward(matrices: np.ndarray, kinds: np.ndarray, args: np.ndarray, perms: np.ndarray, signs: np.ndarray,
             state: np.ndarray) -> np.ndarray:  # fmt: skip
    """The program's final state from |0...0> (``state``: a zeroed buffer of 2^n, reused)."""
    state[0] = 1
    scratch = np.empty_like(state)
    for k in range(kinds.shape[0]):
        if kinds[k] == LAYER:
            layer = matrices[args[k]]
            for q in range(layer.shape[0]):
                _apply_matrix(state, q, layer[q, 0, 0], layer[q, 0, 1], layer[q, 1, 0], layer[q, 1, 1])
        elif kinds[k] == PERM:
            index = perms[args[k]]
            for i in range(state.shape[0]):
                scratch[i] = state[index[i]]
            state[:] = scratch
        else:
            state *= signs[args[k]]
    return state


@njit(cache=True)
def _reverse(matrices: np.ndarray, kinds: np.ndarray, args: np.ndarray, inverse_perms: np.ndarray,
             signs: np.ndarray, state: np.ndarray, adjoint: np.ndarray) -> np.ndarray:  # fmt: skip
    """Per layer and qubit, 1/2 sum over pairs (adjoint_1 state_0 - adjoint_0 state_1) just after the layer.

    That is adjoint . (-iY/2)_q state, the derivative of the expectation along an RY angle on qubit q
    that is the last gate of its slot (the adjoint plan's condition). ``state`` and ``adjoint`` are
    overwritten: each layer is undone on both with its transpose, its inverse.
    """
    overlaps = np.zeros((matrices.shape[0], matrices.shape[1]), dtype=state.dtype)
    scratch = np.empty_like(state)
    for k in range(kinds.shape[0] - 1, -1, -1):
        if kinds[k] == LAYER:
            layer_index = args[k]
            layer = matrices[layer_index]
            for q in range(layer.shape[0]):
                stride, total = 1 << q, 0.0
                for base in range(0, state.shape[0], 2 * stride):
                    for i in range(base, base + stride):
                        total += adjoint[i + stride] * state[i] - adjoint[i] * state[i + stride]
                overlaps[layer_index, q] = 0.5 * total
            for q in range(layer.shape[0]):  # the transpose: [[a, c], [b, d]]
                a, b, c, d = layer[q, 0, 0], layer[q, 0, 1], layer[q, 1, 0], layer[q, 1, 1]
                _apply_matrix(state, q, a, c, b, d)
                _apply_matrix(adjoint, q, a, c, b, d)
        elif kinds[k] == PERM:
            index = inverse_perms[args[k]]
            for vector in (state, adjoint):
                for i in range(vector.shape[0]):
                    scratch[i] = vector[index[i]]
                vector[:] = scratch
        else:
            state *= signs[args[k]]
            adjoint *= signs[args[k]]
    return overlaps


class CompiledPlan:
    """A compiled engine program as the arrays the two loops read (built once per program).

    ``program`` is the torch engine's `_Program` (typed loosely: that module imports this one).
    """

    def __init__(self, program: Any, dtype: torch.dtype) -> None:
        self.dtype = np.float32 if dtype == torch.float32 else np.float64
        perms = [data.cpu().numpy() for kind, data in program.ops if kind == "perm"]
        signs = [data.cpu().numpy() for kind, data in program.ops if kind == "diag"]
        counters = {"perm": 0, "diag": 0}
        kinds, args = [], []
        for kind, data in program.ops:
            kinds.append({"layer": LAYER, "perm": PERM, "diag": DIAG}[kind])
            if kind == "layer":
                args.append(data)
            else:
                args.append(counters[kind])
                counters[kind] += 1
        self.size = size = 2**program.num_qubits
        self.kinds, self.args = np.array(kinds, dtype=np.int64), np.array(args, dtype=np.int64)
        self.perms = np.array(perms, dtype=np.int64).reshape(-1, size)
        self.inverse_perms = np.argsort(self.perms, axis=1)
        self.signs = np.array(signs, dtype=self.dtype).reshape(-1, size)
        self.shape = (program.num_layers, program.num_qubits, 2, 2)

    def layers(self, matrices: torch.Tensor) -> np.ndarray:
        """The slot matrices (layers * n, 1, 2, 2) of one parameter set as the loops read them."""
        return matrices.reshape(self.shape).numpy().astype(self.dtype, copy=False)

    def state(self, layers: np.ndarray) -> np.ndarray:
        """Final state (2^n,) for one parameter set's `layers`."""
        return _forward(layers, self.kinds, self.args, self.perms, self.signs, np.zeros(self.size, dtype=self.dtype))

    def overlaps(self, layers: np.ndarray, state: np.ndarray, adjoint: np.ndarray) -> np.ndarray:
        """(layers, n) overlaps of the reverse sweep from the final ``state`` and its ``adjoint``."""
        return _reverse(layers, self.kinds, self.args, self.inverse_perms, self.signs, state.copy(), adjoint)


def angle_gradient(program: Any, layers: np.ndarray, state: np.ndarray, grad_probs: np.ndarray) -> torch.Tensor:
    """Gradient (1, P) of sum(grad_probs * state^2) from the final ``state`` (2^n,) of one parameter set,
    computed by this engine or by another exact simulator of the same circuit (Aer's, on the card's path);
    ``layers``: `CompiledPlan.layers` of its slot matrices."""
    adjoint = 2 * grad_probs.reshape(-1).astype(state.dtype, copy=False) * state
    overlaps = torch.from_numpy(program.compiled.overlaps(layers, state, adjoint))
    return program.adjoint.parameter_gradient(overlaps.reshape(1, -1), program.num_parameters)


class CompiledProbabilities(torch.autograd.Function):
    """P = state^2 of one parameter set, forward and reverse sweep each one compiled call.

    ``matrices``: the slot matrices of ``values`` (the engine's `_slot_matrices`), built by the caller.
    """

    @staticmethod
    def forward(ctx: Any, values: torch.Tensor, program: Any, matrices: torch.Tensor) -> torch.Tensor:
        layers = program.compiled.layers(matrices)  # converted once, read by both sweeps
        state = program.compiled.state(layers)
        ctx.program, ctx.layers, ctx.state, ctx.values_dtype = program, layers, state, values.dtype
        return torch.from_numpy(state * state).view(1, -1)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        gradient = angle_gradient(ctx.program, ctx.layers, ctx.state, grad.numpy())
        return gradient.to(ctx.values_dtype), None, None
