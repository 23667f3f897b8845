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
- the training path's forward keeps every layer's output state (each gather or sign product writes
  a new buffer: no extra pass, 2^n amplitudes a permutation more memory, 18 MB at 19 qubits in
  float32, 36 in float64, where allocating them fresh costs about 2.6 ms of a 15.8 ms forward), and
  its reverse sweep reads each layer's overlaps from the kept state and the adjoint (read only;
  three qubits a pass in float32), then takes only the adjoint back through the layer with the
  forward's loops, qubits 0-2's overlaps in the pass that takes them back (`_reverse_kept`): no
  state is uncomputed;
- from a final state alone (another simulator's, on the card's path) the reverse sweep uncomputes the
  state beside the adjoint (the layers are orthogonal) in the same passes, taking each qubit's
  overlap just before its own matrix is undone (`_undo_layer`); its qubits 5-6 and 7-8 (runs of 32
  and 128) have loops with the runs' length written in (`_undo_5_6`), which skip the overlap checks
  the general loop pays on every short block;
- a permutation is one gather into another buffer, which then becomes the state; a sign vector one
  product. The ansatz's linear CNOT chain (cx(0, 1), cx(1, 2), ... in that order: amplitude i from
  i ^ (i << 1)) and its inverse are gathered at fixed offsets with no index array
  (`_chain_gather`, `_prefix_gathers`; other permutations load theirs); the reverse sweep reads the
  final state through its first gather instead of copying it.

Alternated against the previous loops (a copy of them; `state` + `overlaps` of the 8-block ansatz
against `kept_states` + `kept_overlaps`, the adjoint 2 g * state included; 40 turns, 13 from 17
qubits, one thread, 2 shared cores, load about 1.5), medians in ms, before / after: float32:
13 qubits 0.298 / 0.204, 15: 1.29 / 0.894, 17: 5.58 / 3.77, 19: 23.3 / 16.1; float64: 13: 0.487 /
0.374, 15: 2.23 / 1.77, 17: 9.53 / 7.57, 19: 44.7 / 36.6 (the chain gathers, the 32- and 128-runs'
loops and the skipped copy alone: float32 0.249, 1.07, 4.66, 19.9; float64 0.453, 1.98, 8.62,
40.9). The cifar10_qt circuit part (`benchmark.part_steps`, 19 qubits, float32, the previous and
these loops alternated in one process, 30 turns): 23.8 -> 17.2 ms. Per layer at 19 qubits in
float32 the forward is about 0.15 ms for qubits 0-2, 0.13 for the pass over qubits 3-4 (runs of 8:
shorter than the 16 lanes, so not vectorized) and 0.04-0.05 for each other pair, 0.15 for the chain
gather; the kept reverse about 0.45 for the overlaps, 0.6 taking the adjoint back, 0.1 its gather.
Measured and dropped (slower, alternated): cache blocking (a layer's low qubits applied to one
2^11-2^12 block after another, then 2^15-2^16, the gather fused into the first block: at 19 qubits
the passes over the whole state run about as fast as in-cache ones, 0.04 ms a pass in float32, so
the loops are not memory-bound; the short runs are what costs: a two-qubit pass over runs of 8
takes 3x one over long runs, its uncomputing reverse 4x); three qubits a pass in the layer's loops
(eight runs; 10-20% slower); the chain's index computed per amplitude (i ^ (i << 1): slower than the
loaded index); qubits 0-3 in one pass over groups of 16 (4x the 0-2 pass in float32); loops with
the runs' length 8 written in (numba leaves the SLP vectorizer off and LLVM's loop vectorizer skips
loops of fewer than 16 iterations); state and adjoint interleaved in one vector; the overlaps of
qubits 3-4 from one flat loop with masks.

The figures below are the previous loops' against the torch sweep:

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
    qubit = 0
    if layer.shape[0] >= 3:
        _low_qubits(state, layer[0], layer[1], layer[2])
        qubit = 3
    _apply_from(state, layer, qubit)


@njit(fastmath=FASTMATH, cache=True)
def _apply_from(state: np.ndarray, layer: np.ndarray, qubit: int) -> None:
    """A layer's matrices on its qubits from ``qubit`` on, two a pass."""
    n = layer.shape[0]
    while qubit + 1 < n:
        _two_qubits(state, qubit, layer[qubit], layer[qubit + 1])
        qubit += 2
    if qubit < n:
        _one_qubit(state, qubit, layer[qubit])


@njit(cache=True)
def _chain_gather(out: np.ndarray, source: np.ndarray) -> None:
    """``out[i] = source[i ^ (i << 1)]`` (bits above n dropped): the gather of a linear CNOT chain
    cx(0, 1), cx(1, 2), ... in that order (each bit XOR the one below it), with no index array.

    Per block of 16 outputs the sources are two 16-blocks, ``b`` and ``b ^ 1`` with ``b`` the block's
    own gather, at fixed offsets: written out, the loads are constant offsets from two bases (2^5
    amplitudes or more).
    """
    mask = (out.shape[0] >> 4) - 1
    for h in range(out.shape[0] >> 4):
        b = (h ^ (h << 1)) & mask
        o, lo, hi = 16 * h, 16 * b, 16 * (b ^ 1)
        out[o], out[o + 1], out[o + 2], out[o + 3] = source[lo], source[lo + 3], source[lo + 6], source[lo + 5]
        out[o + 4], out[o + 5] = source[lo + 12], source[lo + 15]
        out[o + 6], out[o + 7] = source[lo + 10], source[lo + 9]
        out[o + 8], out[o + 9] = source[hi + 8], source[hi + 11]
        out[o + 10], out[o + 11] = source[hi + 14], source[hi + 13]
        out[o + 12], out[o + 13], out[o + 14], out[o + 15] = (
            source[hi + 4],
            source[hi + 7],
            source[hi + 2],
            source[hi + 1],
        )


@njit(cache=True)
def _prefix_xor(h: int, mask: int) -> int:
    """Bit k of the result: the XOR of bits 0-k of ``h`` (up to 32 bits), masked."""
    c = h ^ (h << 1)
    c ^= c << 2
    c ^= c << 4
    c ^= c << 8
    c ^= c << 16
    return c & mask


@njit(cache=True)
def _prefix_gather(out: np.ndarray, source: np.ndarray, h: int, even: int, odd: int) -> None:
    """One block of 16 of `_prefix_gathers`: outputs of even parity from ``even``, odd from ``odd``."""
    o, e, d = 16 * h, even, odd
    out[o], out[o + 1], out[o + 2], out[o + 3] = source[e], source[d + 15], source[d + 14], source[e + 1]
    out[o + 4], out[o + 5], out[o + 6], out[o + 7] = source[d + 12], source[e + 3], source[e + 2], source[d + 13]
    out[o + 8], out[o + 9], out[o + 10], out[o + 11] = source[d + 8], source[e + 7], source[e + 6], source[d + 9]
    out[o + 12], out[o + 13], out[o + 14], out[o + 15] = source[e + 4], source[d + 11], source[d + 10], source[e + 5]


@njit(cache=True)
def _prefix_gathers(state: np.ndarray, adjoint: np.ndarray, state_source: np.ndarray, adjoint_source: np.ndarray
                    ) -> None:  # fmt: skip
    """`_chain_gather`'s inverse on both vectors: ``out[i] = source[j]``, bit k of j the XOR of the
    bits 0-k of i. Per block of 16 outputs, those whose low 4 bits have even parity come from the
    16-block of the block's own prefix XOR, the others from its complement, at fixed offsets."""
    mask = (state.shape[0] >> 4) - 1
    for h in range(state.shape[0] >> 4):
        c = _prefix_xor(h, mask)
        _prefix_gather(state, state_source, h, 16 * c, 16 * (c ^ mask))
        _prefix_gather(adjoint, adjoint_source, h, 16 * c, 16 * (c ^ mask))


@njit(cache=True)
def _prefix_gathers_one(out: np.ndarray, source: np.ndarray) -> None:
    """`_prefix_gathers` on one vector."""
    mask = (out.shape[0] >> 4) - 1
    for h in range(out.shape[0] >> 4):
        c = _prefix_xor(h, mask)
        _prefix_gather(out, source, h, 16 * c, 16 * (c ^ mask))


@njit(cache=True)
def _permute(out: np.ndarray, source: np.ndarray, chain: bool, index: np.ndarray, inverse: bool) -> None:
    """``out`` = ``source`` through a program's permutation (``inverse``: its inverse; ``index`` is then
    the inverse's): a linear CNOT chain at fixed offsets, any other through its index array."""
    if chain:
        if inverse:
            _prefix_gathers_one(out, source)
        else:
            _chain_gather(out, source)
    else:
        for i in range(source.shape[0]):
            out[i] = source[index[i]]


@njit(fastmath=FASTMATH, cache=True)
def _forward(matrices: np.ndarray, kinds: np.ndarray, args: np.ndarray, perms: np.ndarray, chain: np.ndarray,
             signs: np.ndarray, state: np.ndarray) -> np.ndarray:  # fmt: skip
    """The program's final state from |0...0> (``state``: a zeroed buffer of 2^n)."""
    state[0] = 1
    scratch = np.empty_like(state)
    for k in range(kinds.shape[0]):
        if kinds[k] == LAYER:
            _apply_layer(state, matrices[args[k]])
        elif kinds[k] == PERM:
            _permute(scratch, state, chain[args[k]], perms[args[k]], False)
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


def _undo_fixed(run: int) -> Any:
    """`_undo_two` on the qubits whose runs are ``run`` and 2 ``run`` long, that length written in (a
    constant of the compiled loop): one loop per block with fixed offsets from one base per vector,
    where `_undo_two`'s eight slices per block pay LLVM's overlap checks on every short block (half the
    time, alternated at 19 qubits in float32; with ``run`` an argument instead, 4-6x the time)."""

    @njit(fastmath=FASTMATH, cache=True)
    def undo(state: np.ndarray, adjoint: np.ndarray, m: np.ndarray, k: np.ndarray) -> tuple[float, float]:
        a, b, c, d = m[0, 0], m[1, 0], m[0, 1], m[1, 1]
        e, f, g, h = k[0, 0], k[1, 0], k[0, 1], k[1, 1]
        low, high = 0.0, 0.0
        for block in range(state.shape[0] // (4 * run)):
            for i in range(4 * run * block, 4 * run * block + run):
                s0, s1, s2, s3 = state[i], state[i + run], state[i + 2 * run], state[i + 3 * run]
                a0, a1, a2, a3 = adjoint[i], adjoint[i + run], adjoint[i + 2 * run], adjoint[i + 3 * run]
                low, s0, s1, a0, a1 = _undo_pair(low, s0, s1, a0, a1, a, b, c, d)
                low, s2, s3, a2, a3 = _undo_pair(low, s2, s3, a2, a3, a, b, c, d)
                high, state[i], state[i + 2 * run], adjoint[i], adjoint[i + 2 * run] = _undo_pair(
                    high, s0, s2, a0, a2, e, f, g, h
                )
                high, state[i + run], state[i + 3 * run], adjoint[i + run], adjoint[i + 3 * run] = _undo_pair(
                    high, s1, s3, a1, a3, e, f, g, h
                )
        return 0.5 * low, 0.5 * high

    return undo


_undo_5_6, _undo_7_8 = _undo_fixed(32), _undo_fixed(128)  # qubits 5 and 6, 7 and 8


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
        if qubit == 5:
            overlaps[5], overlaps[6] = _undo_5_6(state, adjoint, layer[5], layer[6])
        elif qubit == 7:
            overlaps[7], overlaps[8] = _undo_7_8(state, adjoint, layer[7], layer[8])
        else:
            overlaps[qubit], overlaps[qubit + 1] = _undo_two(state, adjoint, qubit, layer[qubit], layer[qubit + 1])
        qubit += 2
    if qubit < n:
        overlaps[qubit] = _undo_one(state, adjoint, qubit, layer[qubit])


@njit(fastmath=FASTMATH, cache=True)
def _reverse(matrices: np.ndarray, kinds: np.ndarray, args: np.ndarray, inverse_perms: np.ndarray, chain: np.ndarray,
             signs: np.ndarray, final: np.ndarray, adjoint: np.ndarray) -> np.ndarray:  # fmt: skip
    """Per layer and qubit, 1/2 sum over pairs (adjoint_1 state_0 - adjoint_0 state_1) just after the layer.

    That is adjoint . (-iY/2)_q state, the derivative of the expectation along an RY angle on qubit q
    that is the last gate of its slot (the adjoint plan's condition). Each layer is undone on the state
    and ``adjoint`` (overwritten); ``final`` is not written: a gather reads it into a buffer of this
    function's, or it is copied before the first operation in place.
    """
    overlaps = np.zeros((matrices.shape[0], matrices.shape[1]), dtype=final.dtype)
    state, state_scratch, adjoint_scratch = final, np.empty_like(final), np.empty_like(adjoint)
    owned = False  # whether ``state`` is a buffer of this function's
    for k in range(kinds.shape[0] - 1, -1, -1):
        if kinds[k] == PERM:
            if chain[args[k]]:
                _prefix_gathers(state_scratch, adjoint_scratch, state, adjoint)
            else:
                index = inverse_perms[args[k]]
                for i in range(state.shape[0]):
                    state_scratch[i], adjoint_scratch[i] = state[index[i]], adjoint[index[i]]
            if owned:
                state, state_scratch = state_scratch, state
            else:
                state, state_scratch, owned = state_scratch, np.empty_like(final), True
            adjoint, adjoint_scratch = adjoint_scratch, adjoint
            continue
        if not owned:
            state, owned = final.copy(), True
        if kinds[k] == LAYER:
            _undo_layer(state, adjoint, matrices[args[k]], overlaps[args[k]])
        else:
            state *= signs[args[k]]
            adjoint *= signs[args[k]]
    return overlaps


@njit(fastmath=FASTMATH, cache=True)
def _forward_kept(matrices: np.ndarray, kinds: np.ndarray, args: np.ndarray, perms: np.ndarray, chain: np.ndarray,
                  signs: np.ndarray, buffers: np.ndarray, kept: np.ndarray) -> int:  # fmt: skip
    """`_forward` that keeps every layer's output state for `_reverse_kept`: each gather and sign
    product writes the next row of ``buffers`` (one row more than there are of them), so the row a
    layer was applied in (``kept[layer]``) is never written again. Returns the final state's row."""
    buffers[0] = 0
    buffers[0, 0] = 1
    row = 0
    for k in range(kinds.shape[0]):
        state = buffers[row]
        if kinds[k] == LAYER:
            _apply_layer(state, matrices[args[k]])
            kept[args[k]] = row
            continue
        out = buffers[row + 1]
        if kinds[k] == PERM:
            _permute(out, state, chain[args[k]], perms[args[k]], False)
        else:
            sign = signs[args[k]]
            for i in range(state.shape[0]):
                out[i] = state[i] * sign[i]
        row += 1
    return row


@njit(fastmath=FASTMATH, cache=True)
def _overlaps_low_undo(
    state: np.ndarray, adjoint: np.ndarray, m0: np.ndarray, m1: np.ndarray, m2: np.ndarray
) -> tuple[float, float, float]:
    """The overlaps of qubits 0, 1, 2 (see `_reverse`), read in one pass over groups of 8 amplitudes, and
    ``m0``, ``m1``, ``m2`` on those qubits of ``adjoint`` in the same pass (`_low_qubits`; the first
    matrices applied to the adjoint since the overlaps of the others)."""
    a0, b0, c0, d0 = m0[0, 0], m0[0, 1], m0[1, 0], m0[1, 1]
    a1, b1, c1, d1 = m1[0, 0], m1[0, 1], m1[1, 0], m1[1, 1]
    a2, b2, c2, d2 = m2[0, 0], m2[0, 1], m2[1, 0], m2[1, 1]
    o0, o1, o2 = 0.0, 0.0, 0.0
    for group in range(state.shape[0] // 8):
        g = 8 * group
        x0, x1, x2, x3 = state[g], state[g + 1], state[g + 2], state[g + 3]
        x4, x5, x6, x7 = state[g + 4], state[g + 5], state[g + 6], state[g + 7]
        y0, y1, y2, y3 = adjoint[g], adjoint[g + 1], adjoint[g + 2], adjoint[g + 3]
        y4, y5, y6, y7 = adjoint[g + 4], adjoint[g + 5], adjoint[g + 6], adjoint[g + 7]
        o0 += y1 * x0 - y0 * x1 + y3 * x2 - y2 * x3 + y5 * x4 - y4 * x5 + y7 * x6 - y6 * x7
        o1 += y2 * x0 - y0 * x2 + y3 * x1 - y1 * x3 + y6 * x4 - y4 * x6 + y7 * x5 - y5 * x7
        o2 += y4 * x0 - y0 * x4 + y5 * x1 - y1 * x5 + y6 * x2 - y2 * x6 + y7 * x3 - y3 * x7
        y0, y1 = _rotate(y0, y1, a0, b0, c0, d0)
        y2, y3 = _rotate(y2, y3, a0, b0, c0, d0)
        y4, y5 = _rotate(y4, y5, a0, b0, c0, d0)
        y6, y7 = _rotate(y6, y7, a0, b0, c0, d0)
        y0, y2 = _rotate(y0, y2, a1, b1, c1, d1)
        y1, y3 = _rotate(y1, y3, a1, b1, c1, d1)
        y4, y6 = _rotate(y4, y6, a1, b1, c1, d1)
        y5, y7 = _rotate(y5, y7, a1, b1, c1, d1)
        adjoint[g], adjoint[g + 4] = _rotate(y0, y4, a2, b2, c2, d2)
        adjoint[g + 1], adjoint[g + 5] = _rotate(y1, y5, a2, b2, c2, d2)
        adjoint[g + 2], adjoint[g + 6] = _rotate(y2, y6, a2, b2, c2, d2)
        adjoint[g + 3], adjoint[g + 7] = _rotate(y3, y7, a2, b2, c2, d2)
    return 0.5 * o0, 0.5 * o1, 0.5 * o2


@njit(fastmath=FASTMATH, cache=True)
def _overlaps_two(state: np.ndarray, adjoint: np.ndarray, qubit: int) -> tuple[float, float]:
    """The overlaps of ``qubit`` and ``qubit + 1``, read in one pass (four runs per block of each vector)."""
    stride, low, high = 1 << qubit, 0.0, 0.0
    for base in range(0, state.shape[0], 4 * stride):
        s0, s1 = state[base : base + stride], state[base + stride : base + 2 * stride]
        s2, s3 = state[base + 2 * stride : base + 3 * stride], state[base + 3 * stride : base + 4 * stride]
        a0, a1 = adjoint[base : base + stride], adjoint[base + stride : base + 2 * stride]
        a2, a3 = adjoint[base + 2 * stride : base + 3 * stride], adjoint[base + 3 * stride : base + 4 * stride]
        for i in range(stride):
            low += a1[i] * s0[i] - a0[i] * s1[i] + a3[i] * s2[i] - a2[i] * s3[i]
            high += a2[i] * s0[i] - a0[i] * s2[i] + a3[i] * s1[i] - a1[i] * s3[i]
    return 0.5 * low, 0.5 * high


@njit(fastmath=FASTMATH, cache=True)
def _overlaps_three(state: np.ndarray, adjoint: np.ndarray, qubit: int) -> tuple[float, float, float]:
    """The overlaps of ``qubit`` to ``qubit + 2``, read in one pass (eight runs per block of each vector)."""
    stride, o0, o1, o2 = 1 << qubit, 0.0, 0.0, 0.0
    for base in range(0, state.shape[0], 8 * stride):
        s0, s1 = state[base : base + stride], state[base + stride : base + 2 * stride]
        s2, s3 = state[base + 2 * stride : base + 3 * stride], state[base + 3 * stride : base + 4 * stride]
        s4, s5 = state[base + 4 * stride : base + 5 * stride], state[base + 5 * stride : base + 6 * stride]
        s6, s7 = state[base + 6 * stride : base + 7 * stride], state[base + 7 * stride : base + 8 * stride]
        a0, a1 = adjoint[base : base + stride], adjoint[base + stride : base + 2 * stride]
        a2, a3 = adjoint[base + 2 * stride : base + 3 * stride], adjoint[base + 3 * stride : base + 4 * stride]
        a4, a5 = adjoint[base + 4 * stride : base + 5 * stride], adjoint[base + 5 * stride : base + 6 * stride]
        a6, a7 = adjoint[base + 6 * stride : base + 7 * stride], adjoint[base + 7 * stride : base + 8 * stride]
        for i in range(stride):
            x0, x1, x2, x3, x4, x5, x6, x7 = s0[i], s1[i], s2[i], s3[i], s4[i], s5[i], s6[i], s7[i]
            y0, y1, y2, y3, y4, y5, y6, y7 = a0[i], a1[i], a2[i], a3[i], a4[i], a5[i], a6[i], a7[i]
            o0 += y1 * x0 - y0 * x1 + y3 * x2 - y2 * x3 + y5 * x4 - y4 * x5 + y7 * x6 - y6 * x7
            o1 += y2 * x0 - y0 * x2 + y3 * x1 - y1 * x3 + y6 * x4 - y4 * x6 + y7 * x5 - y5 * x7
            o2 += y4 * x0 - y0 * x4 + y5 * x1 - y1 * x5 + y6 * x2 - y2 * x6 + y7 * x3 - y3 * x7
    return 0.5 * o0, 0.5 * o1, 0.5 * o2


@njit(fastmath=FASTMATH, cache=True)
def _overlaps_one(state: np.ndarray, adjoint: np.ndarray, qubit: int) -> float:
    """The overlap of ``qubit`` alone."""
    stride, total = 1 << qubit, 0.0
    for base in range(0, state.shape[0], 2 * stride):
        s0, s1 = state[base : base + stride], state[base + stride : base + 2 * stride]
        a0, a1 = adjoint[base : base + stride], adjoint[base + stride : base + 2 * stride]
        for i in range(stride):
            total += a1[i] * s0[i] - a0[i] * s1[i]
    return 0.5 * total


@njit(fastmath=FASTMATH, cache=True)
def _layer_overlaps(state: np.ndarray, adjoint: np.ndarray, overlaps: np.ndarray, qubit: int, three: bool) -> None:
    """The overlaps of ``state`` and ``adjoint`` (both just after a layer) from ``qubit`` on, read only:
    three qubits a pass with ``three`` (float32: 10-20% less a qubit, 2.3x more in float64 from runs
    of 512 on, at 19 qubits), else two."""
    n = overlaps.shape[0]
    while three and qubit + 2 < n:
        overlaps[qubit], overlaps[qubit + 1], overlaps[qubit + 2] = _overlaps_three(state, adjoint, qubit)
        qubit += 3
    while qubit + 1 < n:
        overlaps[qubit], overlaps[qubit + 1] = _overlaps_two(state, adjoint, qubit)
        qubit += 2
    if qubit < n:
        overlaps[qubit] = _overlaps_one(state, adjoint, qubit)


@njit(fastmath=FASTMATH, cache=True)
def _reverse_kept(transposed: np.ndarray, kinds: np.ndarray, args: np.ndarray, inverse_perms: np.ndarray,
                  chain: np.ndarray, signs: np.ndarray, buffers: np.ndarray, kept: np.ndarray, adjoint: np.ndarray
                  ) -> np.ndarray:  # fmt: skip
    """`_reverse` from the states `_forward_kept` kept: per layer the overlaps are read from the kept
    output and the adjoint, then only the adjoint is taken back through the layer (``transposed``:
    the layers' transposed matrices, their inverses) and the permutations. ``adjoint`` is overwritten."""
    overlaps = np.zeros((transposed.shape[0], transposed.shape[1]), dtype=adjoint.dtype)
    scratch = np.empty_like(adjoint)
    three = adjoint.itemsize == 4  # float32 (see `_layer_overlaps`)
    for k in range(kinds.shape[0] - 1, -1, -1):
        if kinds[k] == LAYER:
            state, layer, layer_overlaps = buffers[kept[args[k]]], transposed[args[k]], overlaps[args[k]]
            if layer.shape[0] >= 3:  # qubits 0-2's overlaps in the pass that takes them back
                _layer_overlaps(state, adjoint, layer_overlaps, 3, three)
                layer_overlaps[0], layer_overlaps[1], layer_overlaps[2] = _overlaps_low_undo(
                    state, adjoint, layer[0], layer[1], layer[2]
                )
                _apply_from(adjoint, layer, 3)
            else:
                _layer_overlaps(state, adjoint, layer_overlaps, 0, three)
                _apply_layer(adjoint, layer)
        elif kinds[k] == PERM:
            _permute(scratch, adjoint, chain[args[k]], inverse_perms[args[k]], True)
            adjoint, scratch = scratch, adjoint
        else:
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
        # a linear CNOT chain's gather (i ^ (i << 1)) and its inverse run as fixed offsets, no index
        # loaded (from 2^5 amplitudes: `_chain_gather`)
        chain = np.arange(size, dtype=np.int64)
        chain = (chain ^ (chain << 1)) & (size - 1)
        self.chain = np.array([size >= 32 and np.array_equal(p, chain) for p in self.perms], dtype=np.bool_)
        self.signs = np.array(signs, dtype=self.dtype).reshape(-1, size)
        self.shape = (program.num_layers, program.num_qubits, 2, 2)

    def layers(self, matrices: torch.Tensor) -> np.ndarray:
        """The slot matrices (layers * n, 1, 2, 2) of one parameter set as the loops read them."""
        return matrices.reshape(self.shape).numpy().astype(self.dtype, copy=False)

    def state(self, layers: np.ndarray) -> np.ndarray:
        """Final state (2^n,) for one parameter set's `layers`."""
        state = np.zeros(self.size, dtype=self.dtype)
        return _forward(layers, self.kinds, self.args, self.perms, self.chain, self.signs, state)

    def kept_states(self, layers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The final state, with every layer's output state kept for `kept_overlaps` (`_forward_kept`)."""
        buffers = np.empty((1 + int(np.sum(self.kinds != LAYER)), self.size), dtype=self.dtype)
        kept = np.zeros(self.shape[0], dtype=np.int64)
        row = _forward_kept(layers, self.kinds, self.args, self.perms, self.chain, self.signs, buffers, kept)
        return buffers[row], buffers, kept

    def kept_overlaps(self, layers: np.ndarray, buffers: np.ndarray, kept: np.ndarray, adjoint: np.ndarray
                      ) -> np.ndarray:  # fmt: skip
        """`overlaps` from the states `kept_states` kept (``adjoint`` is overwritten)."""
        transposed = np.ascontiguousarray(layers.transpose(0, 1, 3, 2))
        return _reverse_kept(transposed, self.kinds, self.args, self.inverse_perms, self.chain, self.signs, buffers,
                             kept, adjoint)  # fmt: skip

    def overlaps(self, layers: np.ndarray, state: np.ndarray, adjoint: np.ndarray) -> np.ndarray:
        """(layers, n) overlaps of the reverse sweep from the final ``state`` and its ``adjoint``."""
        return _reverse(layers, self.kinds, self.args, self.inverse_perms, self.chain, self.signs, state, adjoint)


def angle_gradient(program: Any, layers: np.ndarray, state: np.ndarray, grad_probs: np.ndarray,
                   kept: tuple[np.ndarray, np.ndarray] | None = None) -> torch.Tensor:  # fmt: skip
    """Gradient (1, P) of sum(grad_probs * state^2) from the final ``state`` (2^n,) of one parameter set,
    computed by this engine or by another exact simulator of the same circuit (Aer's, on the card's path);
    ``layers``: `CompiledPlan.layers` of its slot matrices; ``kept``: the buffers and rows of
    `CompiledPlan.kept_states` where this engine computed ``state`` (then the state is not uncomputed)."""
    adjoint = 2 * grad_probs.reshape(-1).astype(state.dtype, copy=False) * state
    if kept is None:
        overlaps = program.compiled.overlaps(layers, state, adjoint)
    else:
        overlaps = program.compiled.kept_overlaps(layers, *kept, adjoint)
    overlaps = torch.from_numpy(overlaps)
    return program.adjoint.parameter_gradient(overlaps.reshape(1, -1), program.num_parameters)


class CompiledProbabilities(torch.autograd.Function):
    """P = state^2 of one parameter set, forward and reverse sweep each one compiled call.

    ``matrices``: the slot matrices of ``values`` (the engine's `_slot_matrices`), built by the caller.
    The forward keeps every layer's output state (`CompiledPlan.kept_states`) for the reverse sweep.
    """

    @staticmethod
    def forward(ctx: Any, values: torch.Tensor, program: Any, matrices: torch.Tensor) -> torch.Tensor:
        layers = program.compiled.layers(matrices)  # converted once, read by both sweeps
        state, buffers, kept = program.compiled.kept_states(layers)
        ctx.program, ctx.layers, ctx.state, ctx.values_dtype = program, layers, state, values.dtype
        ctx.kept = (buffers, kept)
        return torch.from_numpy(state * state).view(1, -1)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        gradient = angle_gradient(ctx.program, ctx.layers, ctx.state, grad.numpy(), ctx.kept)
        return gradient.to(ctx.values_dtype), None, None
