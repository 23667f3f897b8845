"""The torch engine's real RY circuits, one parameter set on CPU, as two compiled loops (numba).

At 7 qubits a state is 128 amplitudes: each torch operation of the engine (a few dozen forward, more
in the reverse sweep) does almost nothing, and their dispatch is what a training step pays. At 12-19
qubits the torch sweep's chunk products do real work, but keep every layer's state and make a new
tensor per op. Here the whole forward is one compiled call and the whole reverse sweep another
(float32 or float64 like the engine); the gate matrices and the angles' gradient stay torch
operations of the engine (`_slot_matrices`, the adjoint plan's columns), so what this module
computes is only the state and the per-slot overlaps.

The loops are written so that LLVM vectorizes them, with as few passes over memory as it allows:

- a layer's qubits 0-2 (runs of 1, 2 and 4 pairs, which a pass per qubit cannot vectorize) take one
  pass over groups of 8 amplitudes, kept in registers, the loop over groups vectorized (float32 gains);
- the other qubits go two at a time, each pass one loop per block over four contiguous runs;
- the reverse sweep uncomputes the state beside the adjoint (the layers are orthogonal) in the same
  passes, taking each qubit's overlap just before its own matrix is undone (`_undo_layer`);
- a permutation is one gather into a second buffer, which then becomes the state; a sign vector one
  product.

Forward and reverse (angles -> probabilities -> the angles' gradient, the engine's autograd node
included) of the 8-block ansatz, one thread, the two paths alternated, medians in ms, compiled
against the torch sweep (`scripts/compiled_sweep_timing.py --repeats 100`: 100 turns, 20 from 17
qubits; 2 shared cores, load about 1.8): float32: 11 qubits 0.34 against 1.20, 12: 0.44 / 1.29,
13: 0.68 / 1.80, 15: 2.13 / 7.12, 17: 7.55 / 30.2, 19: 27.3 / 140; float64: 11: 0.66 / 2.15,
12: 0.69 / 2.07, 13: 1.04 / 3.38, 15: 3.39 / 12.4, 17: 11.5 / 42.4, 19: 59.8 / 329. The loops win
at every count measured (2.6-5.5x), so `COMPILED_QUBITS` is 19, the most measured. (The earlier
scalar loops, a pass per qubit and separate overlap passes, took 3.9 ms at 13 qubits in float32
where these took 1.3, alternated in one run under heavier load, and lost to the torch sweep from
12 qubits.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numba import njit

COMPILED_QUBITS = 19  # circuits of at most this many qubits take the compiled path on CPU (faster at 11-19)
LAYER, PERM, DIAG = 0, 1, 2
# FMA contraction and reordered sums (the overlaps are reductions, which vectorize only reordered);
# no assumption about NaN or infinity
FASTMATH = {"contract", "reassoc", "nsz"}


@njit(fastmath=FASTMATH, cache=True)
def _rotate(x0: float, x1: float, a: float, b: float, c: float, d: float) -> tuple[float, float]:
    """[[a, b], [c, d]] @ (x0, x1)."""
    return a * x0 + b * x1, c * x0 + d * x1


@njit(fastmath=FASTMATH, cache=True)
def _one_qubit(state: np.ndarray, qubit: int, m: np.ndarray) -> None:
    """``m`` on ``qubit`` of ``state``, in place: per block, a contiguous run of 2^qubit pairs."""
    a, b, c, d = m[0, 0], m[0, 1], m[1, 0], m[1, 1]
    stride = 1 << qubit
    for base in range(0, state.shape[0], 2 * stride):
        lo, hi = state[base : base + stride], state[base + stride : base + 2 * stride]
        for i in range(stride):
            lo[i], hi[i] = _rotate(lo[i], hi[i], a, b, c, d)


@njit(fastmath=FASTMATH, cache=True)
def _two_qubits(state: np.ndarray, qubit: int, m: np.ndarray, k: np.ndarray) -> None:
    """``m`` on ``qubit`` and ``k`` on ``qubit + 1``, in place, in one pass over the state.

    Per block, four contiguous runs of 2^qubit amplitudes as separate slices: the inner loop
    vectorizes (LLVM checks once per block that the slices do not overlap).
    """
    a, b, c, d = m[0, 0], m[0, 1], m[1, 0], m[1, 1]
    e, f, g, h = k[0, 0], k[0, 1], k[1, 0], k[1, 1]
    stride = 1 << qubit
    for base in range(0, state.shape[0], 4 * stride):
        v0, v1 = state[base : base + stride], state[base + stride : base + 2 * stride]
        v2, v3 = state[base + 2 * stride : base + 3 * stride], state[base + 3 * stride : base + 4 * stride]
        for i in range(stride):
            x0, x1 = _rotate(v0[i], v1[i], a, b, c, d)
            x2, x3 = _rotate(v2[i], v3[i], a, b, c, d)
            v0[i], v2[i] = _rotate(x0, x2, e, f, g, h)
            v1[i], v3[i] = _rotate(x1, x3, e, f, g, h)


@njit(fastmath=FASTMATH, cache=True)
def _low_qubits(state: np.ndarray, m0: np.ndarray, m1: np.ndarray, m2: np.ndarray) -> None:
    """``m0``, ``m1``, ``m2`` on qubits 0, 1, 2, in place, in one pass over groups of 8 amplitudes.

    Written as one loop over groups with fixed offsets, so that LLVM vectorizes it across groups
    (2.4x the speed of the same loop stepping by 8 in float32; no gain in float64); a pass per qubit
    over runs of 1, 2 or 4 pairs does not vectorize at all.
    """
    a0, b0, c0, d0 = m0[0, 0], m0[0, 1], m0[1, 0], m0[1, 1]
    a1, b1, c1, d1 = m1[0, 0], m1[0, 1], m1[1, 0], m1[1, 1]
    a2, b2, c2, d2 = m2[0, 0], m2[0, 1], m2[1, 0], m2[1, 1]
    for group in range(state.shape[0] // 8):
        g = 8 * group
        x0, x1 = _rotate(state[g], state[g + 1], a0, b0, c0, d0)
        x2, x3 = _rotate(state[g + 2], state[g + 3], a0, b0, c0, d0)
        x4, x5 = _rotate(state[g + 4], state[g + 5], a0, b0, c0, d0)
        x6, x7 = _rotate(state[g + 6], state[g + 7], a0, b0, c0, d0)
        x0, x2 = _rotate(x0, x2, a1, b1, c1, d1)
        x1, x3 = _rotate(x1, x3, a1, b1, c1, d1)
        x4, x6 = _rotate(x4, x6, a1, b1, c1, d1)
        x5, x7 = _rotate(x5, x7, a1, b1, c1, d1)
        state[g], state[g + 4] = _rotate(x0, x4, a2, b2, c2, d2)
        state[g + 1], state[g + 5] = _rotate(x1, x5, a2, b2, c2, d2)
        state[g + 2], state[g + 6] = _rotate(x2, x6, a2, b2, c2, d2)
        state[g + 3], state[g + 7] = _rotate(x3, x7, a2, b2, c2, d2)


@njit(fastmath=FASTMATH, cache=True)
def _apply_layer(state: np.ndarray, layer: np.ndarray) -> None:
    """A layer's (n, 2, 2) matrices on their qubits: qubits 0-2 in one pass, then two qubits a pass."""
    n, qubit = layer.shape[0], 0
    if n >= 3:
        _low_qubits(state, layer[0], layer[1], layer[2])
        qubit = 3
    while qubit + 1 < n:
        _two_qubits(state, qubit, layer[qubit], layer[qubit + 1])
        qubit += 2
    if qubit < n:
        _one_qubit(state, qubit, layer[qubit])


@njit(fastmath=FASTMATH, cache=True)
def _forward(matrices: np.ndarray, kinds: np.ndarray, args: np.ndarray, perms: np.ndarray, signs: np.ndarray,
             state: np.ndarray) -> np.ndarray:  # fmt: skip
    """The program's final state from |0...0> (``state``: a zeroed buffer of 2^n)."""
    state[0] = 1
    scratch = np.empty_like(state)
    for k in range(kinds.shape[0]):
        if kinds[k] == LAYER:
            _apply_layer(state, matrices[args[k]])
        elif kinds[k] == PERM:
            index = perms[args[k]]
            for i in range(state.shape[0]):
                scratch[i] = state[index[i]]
            state, scratch = scratch, state
        else:
            state *= signs[args[k]]
    return state


@njit(fastmath=FASTMATH, cache=True)
def _undo_pair(total: float, s0: float, s1: float, a0: float, a1: float, a: float, b: float, c: float, d: float
               ) -> tuple[float, float, float, float, float]:  # fmt: skip
    """``total`` plus twice the overlap adjoint . (-iY/2) state of one pair of amplitudes, then the
    pair of the state (s0, s1) and of the adjoint (a0, a1), each with [[a, b], [c, d]] applied."""
    total += a1 * s0 - a0 * s1
    s0, s1 = _rotate(s0, s1, a, b, c, d)
    a0, a1 = _rotate(a0, a1, a, b, c, d)
    return total, s0, s1, a0, a1


@njit(fastmath=FASTMATH, cache=True)
def _undo_one(state: np.ndarray, adjoint: np.ndarray, qubit: int, m: np.ndarray) -> float:
    """``m``'s transpose on ``qubit`` of ``state`` and ``adjoint``; returns the qubit's overlap before it."""
    a, b, c, d = m[0, 0], m[1, 0], m[0, 1], m[1, 1]
    stride, total = 1 << qubit, 0.0
    for base in range(0, state.shape[0], 2 * stride):
        s0, s1 = state[base : base + stride], state[base + stride : base + 2 * stride]
        a0, a1 = adjoint[base : base + stride], adjoint[base + stride : base + 2 * stride]
        for i in range(stride):
            total, s0[i], s1[i], a0[i], a1[i] = _undo_pair(total, s0[i], s1[i], a0[i], a1[i], a, b, c, d)
    return 0.5 * total


@njit(fastmath=FASTMATH, cache=True)
def _undo_two(state: np.ndarray, adjoint: np.ndarray, qubit: int, m: np.ndarray, k: np.ndarray) -> tuple[float, float]:
    """`_undo_one` for ``qubit`` (``m``) and ``qubit + 1`` (``k``) in one pass over both vectors."""
    a, b, c, d = m[0, 0], m[1, 0], m[0, 1], m[1, 1]
    e, f, g, h = k[0, 0], k[1, 0], k[0, 1], k[1, 1]
    stride, low, high = 1 << qubit, 0.0, 0.0
    for base in range(0, state.shape[0], 4 * stride):
        s0, s1 = state[base : base + stride], state[base + stride : base + 2 * stride]
        s2, s3 = state[base + 2 * stride : base + 3 * stride], state[base + 3 * stride : base + 4 * stride]
        a0, a1 = adjoint[base : base + stride], adjoint[base + stride : base + 2 * stride]
        a2, a3 = adjoint[base + 2 * stride : base + 3 * stride], adjoint[base + 3 * stride : base + 4 * stride]
        for i in range(stride):
            low, x0, x1, y0, y1 = _undo_pair(low, s0[i], s1[i], a0[i], a1[i], a, b, c, d)
            low, x2, x3, y2, y3 = _undo_pair(low, s2[i], s3[i], a2[i], a3[i], a, b, c, d)
            high, s0[i], s2[i], a0[i], a2[i] = _undo_pair(high, x0, x2, y0, y2, e, f, g, h)
            high, s1[i], s3[i], a1[i], a3[i] = _undo_pair(high, x1, x3, y1, y3, e, f, g, h)
    return 0.5 * low, 0.5 * high


@njit(fastmath=FASTMATH, cache=True)
def _undo_low(
    state: np.ndarray, adjoint: np.ndarray, m0: np.ndarray, m1: np.ndarray, m2: np.ndarray
) -> tuple[float, float, float]:
    """`_undo_one` for qubits 0, 1, 2 in one pass over groups of 8 amplitudes (see `_low_qubits`)."""
    a0, b0, c0, d0 = m0[0, 0], m0[1, 0], m0[0, 1], m0[1, 1]
    a1, b1, c1, d1 = m1[0, 0], m1[1, 0], m1[0, 1], m1[1, 1]
    a2, b2, c2, d2 = m2[0, 0], m2[1, 0], m2[0, 1], m2[1, 1]
    o0, o1, o2 = 0.0, 0.0, 0.0
    for group in range(state.shape[0] // 8):
        g = 8 * group
        x0, x1, x2, x3 = state[g], state[g + 1], state[g + 2], state[g + 3]
        x4, x5, x6, x7 = state[g + 4], state[g + 5], state[g + 6], state[g + 7]
        y0, y1, y2, y3 = adjoint[g], adjoint[g + 1], adjoint[g + 2], adjoint[g + 3]
        y4, y5, y6, y7 = adjoint[g + 4], adjoint[g + 5], adjoint[g + 6], adjoint[g + 7]
        o0, x0, x1, y0, y1 = _undo_pair(o0, x0, x1, y0, y1, a0, b0, c0, d0)
        o0, x2, x3, y2, y3 = _undo_pair(o0, x2, x3, y2, y3, a0, b0, c0, d0)
        o0, x4, x5, y4, y5 = _undo_pair(o0, x4, x5, y4, y5, a0, b0, c0, d0)
        o0, x6, x7, y6, y7 = _undo_pair(o0, x6, x7, y6, y7, a0, b0, c0, d0)
        o1, x0, x2, y0, y2 = _undo_pair(o1, x0, x2, y0, y2, a1, b1, c1, d1)
        o1, x1, x3, y1, y3 = _undo_pair(o1, x1, x3, y1, y3, a1, b1, c1, d1)
        o1, x4, x6, y4, y6 = _undo_pair(o1, x4, x6, y4, y6, a1, b1, c1, d1)
        o1, x5, x7, y5, y7 = _undo_pair(o1, x5, x7, y5, y7, a1, b1, c1, d1)
        o2, x0, x4, y0, y4 = _undo_pair(o2, x0, x4, y0, y4, a2, b2, c2, d2)
        o2, x1, x5, y1, y5 = _undo_pair(o2, x1, x5, y1, y5, a2, b2, c2, d2)
        o2, x2, x6, y2, y6 = _undo_pair(o2, x2, x6, y2, y6, a2, b2, c2, d2)
        o2, x3, x7, y3, y7 = _undo_pair(o2, x3, x7, y3, y7, a2, b2, c2, d2)
        state[g], state[g + 1], state[g + 2], state[g + 3] = x0, x1, x2, x3
        state[g + 4], state[g + 5], state[g + 6], state[g + 7] = x4, x5, x6, x7
        adjoint[g], adjoint[g + 1], adjoint[g + 2], adjoint[g + 3] = y0, y1, y2, y3
        adjoint[g + 4], adjoint[g + 5], adjoint[g + 6], adjoint[g + 7] = y4, y5, y6, y7
    return 0.5 * o0, 0.5 * o1, 0.5 * o2


@njit(fastmath=FASTMATH, cache=True)
def _undo_layer(state: np.ndarray, adjoint: np.ndarray, layer: np.ndarray, overlaps: np.ndarray) -> None:
    """A layer undone on ``state`` and ``adjoint`` (each qubit's transpose, its inverse), with every
    qubit's overlap taken just before its own matrix is undone.

    That is the overlap just after the layer: the other qubits' matrices, undone already or not,
    are orthogonal and commute with (-iY/2) on this qubit, so they cancel in adjoint . (-iY/2) state.
    """
    n, qubit = layer.shape[0], 0
    if n >= 3:
        overlaps[0], overlaps[1], overlaps[2] = _undo_low(state, adjoint, layer[0], layer[1], layer[2])
        qubit = 3
    while qubit + 1 < n:
        overlaps[qubit], overlaps[qubit + 1] = _undo_two(state, adjoint, qubit, layer[qubit], layer[qubit + 1])
        qubit += 2
    if qubit < n:
        overlaps[qubit] = _undo_one(state, adjoint, qubit, layer[qubit])


@njit(fastmath=FASTMATH, cache=True)
def _reverse(matrices: np.ndarray, kinds: np.ndarray, args: np.ndarray, inverse_perms: np.ndarray,
             signs: np.ndarray, state: np.ndarray, adjoint: np.ndarray) -> np.ndarray:  # fmt: skip
    """Per layer and qubit, 1/2 sum over pairs (adjoint_1 state_0 - adjoint_0 state_1) just after the layer.

    That is adjoint . (-iY/2)_q state, the derivative of the expectation along an RY angle on qubit q
    that is the last gate of its slot (the adjoint plan's condition). ``state`` and ``adjoint`` are
    overwritten: each layer is undone on both.
    """
    overlaps = np.zeros((matrices.shape[0], matrices.shape[1]), dtype=state.dtype)
    state_scratch, adjoint_scratch = np.empty_like(state), np.empty_like(adjoint)
    for k in range(kinds.shape[0] - 1, -1, -1):
        if kinds[k] == LAYER:
            _undo_layer(state, adjoint, matrices[args[k]], overlaps[args[k]])
        elif kinds[k] == PERM:
            index = inverse_perms[args[k]]
            for i in range(state.shape[0]):
                state_scratch[i], adjoint_scratch[i] = state[index[i]], adjoint[index[i]]
            state, state_scratch = state_scratch, state
            adjoint, adjoint_scratch = adjoint_scratch, adjoint
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
        # uint32 gather indices: half the memory of int64 (a permutation and its inverse: 4 MB at 19
        # qubits), and unsigned, so the gathers skip negative-index wraparound (15% faster)
        self.perms = np.array(perms, dtype=np.uint32).reshape(-1, size)
        self.inverse_perms = np.argsort(self.perms, axis=1).astype(np.uint32)
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
