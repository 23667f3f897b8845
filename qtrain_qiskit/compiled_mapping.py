"""The weight generator's hot path as compiled loops on CPU: feature, mapping MLP, centring and scaling.

At 13 qubits the reference mapping is 6,676 rows through [14, 20, 1]. As torch operations, its
feature, MLP, per-tensor centring and scaling, forward and backward, are ~60 operations and three
skinny matrix products: about 2 ms a step on one thread, a quarter of the classical step it is
compared with. Written out, P -> weights is one autograd node (`CompiledMLP`) and centring and
scaling another (`CentreAndScale`), and the arithmetic shrinks too:

- the rows are consecutive basis states, so the first layer's product with their bits is a table
  over the low bits of a tile of rows (rows 2^b .. 2^(b+1) - 1 are rows 0 .. 2^b - 1 plus column b
  of the weights: one addition each) plus one shift per tile for the bits above it, instead of N
  multiply-adds per row and hidden unit;
- a bit column's weight gradient is the sum of the pre-activation gradients over the rows whose bit
  is set: whole tiles' sums for the bits above the tile, and for the bits within it the sums per
  position in the tile, folded bit by bit from the top, instead of N passes over the rows.

The loops take a tile of rows at a time (`TILE`), hidden unit by hidden unit over contiguous rows,
which the compiler vectorizes and the cache holds; backward computes each tile's activations
again, so nothing of the size of the table is kept (a 2^19-row mapping needs no checkpointing).
Covered: one hidden layer, relu or tanh, any k, bits in 0/1 or +-1, the shipped features (alpha =
beta = 1), a block of rows that starts at a multiple of a power of two at least its length (the
whole table, or one of `MappingModel`'s chunks, whose feature is then computed outside). Anything
else (deeper MLPs, gelu/silu, head bits, learned scales, CUDA, forward-mode AD as in `subspace`)
keeps torch's operations. Tested against them and against finite differences
(tests/test_compiled_mapping.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numba import njit

ACTIVATIONS = ("relu", "tanh")
# Rows per tile: the loops hold one tile's activations (h x TILE) and never the whole table's
# (alternated, 285,226 rows, [20, 20, 1]: 256 rows 4.1 ms, 512 3.5, 1,024 3.3, 2,048 3.5 forward and backward).
TILE = 1024
FEATURE_KINDS = ("raw", "scaled", "standard")  # "raw": the column is the feature itself


# The loops keep every value in the arrays' own float type: the bit values ``low``/``high`` arrive as
# scalars of that type and zeros are derived from them, as a float64 literal would promote a float32
# loop to float64 and stop it from vectorizing (measured: 5x slower for the activations).


@njit(cache=True)
def _tile_bits(rows: int) -> int:
    """log2 of the rows a tile holds: TILE (its activations stay in cache), or fewer rows rounded up."""
    bits = 0
    while (1 << bits) < min(rows, TILE):
        bits += 1
    return bits


@njit(cache=True, fastmath=True)
def _low_table(first: np.ndarray, tile_bits: int, low: Any, high: Any) -> np.ndarray:
    """(h, 2^tile_bits): the first layer's product with the low ``tile_bits`` bits of rows 0, 1, ...:
    rows 2^b .. 2^(b+1) - 1 are rows 0 .. 2^b - 1 plus column b of the weights (one addition each)."""
    width = first.shape[0]
    size = 1 << tile_bits
    table = np.empty((width, size), dtype=first.dtype)
    for j in range(width):
        unit, total = table[j], low - low
        for b in range(tile_bits):
            total += first[j, b] * low
        unit[0] = total
        filled = 1
        for b in range(tile_bits):
            step = (high - low) * first[j, b]
            source, target = unit[:filled], unit[filled : 2 * filled]
            for i in range(filled):
                target[i] = source[i] + step
            filled *= 2
    return table


@njit(cache=True, fastmath=True)
def _tile_hidden(first: np.ndarray, bias: np.ndarray, feature: np.ndarray, table: np.ndarray, base: int,
                 count: int, tile_bits: int, low: Any, high: Any, use_tanh: bool, out: np.ndarray) -> None:  # fmt: skip
    """Activations (h, count) of rows base .. base + count - 1 into ``out``: the low bits' part from
    ``table``, the bits above the tile (the same for all its rows) and the bias as one shift per unit."""
    width, num_bits = first.shape[0], first.shape[1] - 1
    zero = low - low
    for j in range(width):
        shift = bias[j]
        for b in range(tile_bits, num_bits):
            shift += first[j, b] * (high if (base >> b) & 1 else low)
        weight, unit, low_part = first[j, num_bits], out[j], table[j]
        if use_tanh:
            for i in range(count):
                unit[i] = np.tanh(low_part[i] + shift + weight * feature[i])
        else:
            for i in range(count):
                v = low_part[i] + shift + weight * feature[i]
                unit[i] = v if v > zero else zero


@njit(cache=True, fastmath=True)
def _forward(first: np.ndarray, bias: np.ndarray, feature: np.ndarray, last: np.ndarray, last_bias: np.ndarray,
             start: int, low: Any, high: Any, use_tanh: bool) -> np.ndarray:  # fmt: skip
    """(k, rows) outputs of rows start.., a tile of rows at a time (the activations are not kept)."""
    rows, width, k = feature.shape[0], first.shape[0], last.shape[0]
    tile_bits = _tile_bits(rows)
    size = 1 << tile_bits
    table = _low_table(first, tile_bits, low, high)
    hidden = np.empty((width, size), dtype=first.dtype)
    out = np.empty((k, rows), dtype=first.dtype)
    for t0 in range(0, rows, size):
        count = min(size, rows - t0)
        tile = feature[t0 : t0 + count]
        _tile_hidden(first, bias, tile, table, start + t0, count, tile_bits, low, high, use_tanh, hidden)
        for o in range(k):
            row = out[o, t0 : t0 + count]
            row[:] = last_bias[o]
            for j in range(width):
                weight, unit = last[o, j], hidden[j]
                for i in range(count):
                    row[i] += weight * unit[i]
    return out


@njit(cache=True, fastmath=True)
def _bit_columns(grad_first: np.ndarray, grad_bias: np.ndarray, by_position: np.ndarray, tile_bits: int, low: Any,
                 high: Any) -> None:  # fmt: skip
    """The bit columns' gradients in ``grad_first``, which holds, for the bits above the tile, the sums over
    the rows whose bit is set. ``by_position``: per unit, the sums over the tiles per position in a tile,
    folded here bit by bit from the top for the bits within the tile (overwritten)."""
    zero = low - low
    for j in range(grad_first.shape[0]):
        accumulated = by_position[j]
        for bit in range(tile_bits - 1, -1, -1):
            half = 1 << bit
            upper, lower, on = accumulated[half : 2 * half], accumulated[:half], zero
            for i in range(half):
                on += upper[i]
                lower[i] += upper[i]
            grad_first[j, bit] = on
        for b in range(grad_first.shape[1] - 1):  # a bit's value is low, plus (high - low) where it is set
            grad_first[j, b] = low * grad_bias[j] + (high - low) * grad_first[j, b]


@njit(cache=True, fastmath=True)
def _backward(first: np.ndarray, bias: np.ndarray, feature: np.ndarray, last: np.ndarray, grad: np.ndarray,
              start: int, low: Any, high: Any, use_tanh: bool):  # fmt: skip
    """Gradients of sum(grad * output) (``grad``: (k, rows)): both layers' weights and biases, the feature.

    Each tile's activations are computed again. A bit column's gradient is the sum of the
    pre-activation gradients over the rows whose bit is set: for bits above the tile, whole tiles'
    sums; for bits within it, the sums per position in the tile, folded bit by bit from the top.
    """
    rows, width, k, num_bits = feature.shape[0], first.shape[0], last.shape[0], first.shape[1] - 1
    dtype = first.dtype
    zero = low - low
    one = zero + 1
    tile_bits = _tile_bits(rows)
    size = 1 << tile_bits
    table = _low_table(first, tile_bits, low, high)
    hidden = np.empty((width, size), dtype=dtype)
    pre = np.empty(size, dtype=dtype)
    by_position = np.zeros((width, size), dtype=dtype)  # pre-activation gradients summed over the tiles
    grad_first, grad_bias = np.zeros((width, num_bits + 1), dtype=dtype), np.zeros(width, dtype=dtype)
    grad_last, grad_last_bias = np.zeros((k, width), dtype=dtype), np.zeros(k, dtype=dtype)
    grad_feature = np.zeros(rows, dtype=dtype)
    for t0 in range(0, rows, size):
        count = min(size, rows - t0)
        base = start + t0
        _tile_hidden(first, bias, feature[t0 : t0 + count], table, base, count, tile_bits, low, high, use_tanh, hidden)
        for o in range(k):
            grad_last_bias[o] += grad[o, t0 : t0 + count].sum()
        for j in range(width):
            unit = hidden[j]
            pre[:count] = zero
            for o in range(k):
                g, weight, total = grad[o, t0 : t0 + count], last[o, j], zero
                for i in range(count):
                    total += g[i] * unit[i]
                    pre[i] += weight * g[i]
                grad_last[o, j] += total
            if use_tanh:
                for i in range(count):
                    pre[i] *= one - unit[i] * unit[i]
            else:
                for i in range(count):
                    pre[i] = pre[i] if unit[i] > zero else zero
            weight, through_feature, tile_total = first[j, num_bits], zero, zero
            rows_feature, rows_grad = feature[t0 : t0 + count], grad_feature[t0 : t0 + count]
            accumulated = by_position[j]
            for i in range(count):
                rows_grad[i] += weight * pre[i]
                through_feature += pre[i] * rows_feature[i]
                accumulated[i] += pre[i]
                tile_total += pre[i]
            grad_first[j, num_bits] += through_feature
            grad_bias[j] += tile_total
            for b in range(tile_bits, num_bits):  # bits above the tile: the same for all its rows
                if (base >> b) & 1:
                    grad_first[j, b] += tile_total
    _bit_columns(grad_first, grad_bias, by_position, tile_bits, low, high)
    return grad_first, grad_bias, grad_last, grad_last_bias, grad_feature


@njit(cache=True, fastmath=True)
def _feature(squashed: np.ndarray, kind: int, zero: Any) -> tuple[np.ndarray, Any, Any]:
    """`mapping.probability_feature` (alpha = beta = 1) from tanh(scale P) (``squashed``): the feature,
    its centre and its spread. ``kind`` 0 is the identity (the raw feature, or one computed outside)."""
    rows, out = squashed.shape[0], squashed.copy()
    if kind == 0:
        return out, zero, zero + 1
    centre = out.sum() / rows
    out -= centre
    if kind == 1:
        return out, centre, zero + 1
    spread = max(np.sqrt((out * out).sum() / (rows - 1)), zero + 1e-12)  # torch's std: unbiased, then clamped
    out /= spread
    return out, centre, spread


@njit(cache=True, fastmath=True)
def _feature_backward(feature: np.ndarray, centre: Any, spread: Any, grad: np.ndarray, kind: int,
                      scale: Any) -> np.ndarray:  # fmt: skip
    """Gradient with respect to P of sum(grad * feature)."""
    rows, out = feature.shape[0], grad.copy()
    if kind == 0:
        return out
    through_spread, one = centre - centre, centre - centre + 1  # through the division by the spread
    if kind == 2 and spread > 1e-12:  # (not where it was clamped)
        through_spread = (grad * feature).sum() / (rows - 1)
    for i in range(rows):
        out[i] = (grad[i] - feature[i] * through_spread) / spread
    centre_grad = out.sum() / rows  # through the centring
    for i in range(rows):  # through the tanh: t = feature * spread + centre
        t = feature[i] * spread + centre
        out[i] = (out[i] - centre_grad) * scale * (one - t * t)
    return out


@njit(cache=True)
def _centre_and_scale(values: np.ndarray, bounds: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Each tensor's slice bounds[t]:bounds[t + 1] of ``values`` minus its mean, times its gain.

    In float64 like `QuantumTrain.weights_from_probabilities`: the raw feature's weights differ by
    ~1e-5 of their common offset, below what a float32 sum resolves.
    """
    out = np.empty_like(values)
    for t in range(gains.shape[0]):
        lo, hi, total = bounds[t], bounds[t + 1], 0.0
        for i in range(lo, hi):
            total += np.float64(values[i])
        mean, gain = total / (hi - lo), np.float64(gains[t])
        for i in range(lo, hi):
            out[i] = (np.float64(values[i]) - mean) * gain
    return out


def _array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().numpy()


def _flat(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array).reshape(-1)


class CompiledMLP(torch.autograd.Function):
    """The first ``count`` outputs, row-major, of Linear(N + 1, h), activation, Linear(h, k) on the rows
    [bits of start + i, feature(column)[i]], i < ``rows``.

    ``column`` (its first ``rows`` entries are read) is P (``feature`` "scaled" or "standard",
    `probability_feature`'s kinds with its ``2^(N-1) gamma`` as ``scale``) or the feature itself
    (``feature`` "raw"). ``low``/``high``: the value of a bit that is off / on (0 and 1, or -1 and 1).
    ``start`` must be a multiple of a power of two that is at least ``rows``, so that a row's bits are
    its offset's bits next to ``start``'s. One autograd node from P to the flat weights.
    """

    @staticmethod
    def forward(ctx: Any, column: torch.Tensor, first: torch.Tensor, first_bias: torch.Tensor,
                last: torch.Tensor, last_bias: torch.Tensor, start: int, rows: int, count: int, low: float,
                high: float, activation: str, feature: str, scale: float) -> torch.Tensor:  # fmt: skip
        kind, use_tanh = FEATURE_KINDS.index(feature), activation == "tanh"
        used = torch.as_tensor(_flat(_array(column)[:rows]), dtype=first.dtype)
        typed = used.numpy().dtype.type  # the loops' scalars in the arrays' float type (see above)
        squashed = torch.tanh(used * scale).numpy() if kind else used.numpy()  # torch's tanh is vectorized
        values, centre, spread = _feature(squashed, kind, typed(0))
        low, high, scale = typed(low), typed(high), typed(scale)
        out = _forward(_array(first), _array(first_bias), values, _array(last), _array(last_bias), start, low, high,
                       use_tanh)  # fmt: skip
        # no activations are kept (backward computes each tile's again): O(1) floats per row
        ctx.save_for_backward(first, first_bias, last, torch.from_numpy(values))
        ctx.bits, ctx.feature = (start, low, high, use_tanh), (centre, spread, kind, scale)
        ctx.column = (column.shape, column.dtype)
        return torch.from_numpy(_flat(out.T)[:count])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        first, first_bias, last, values = (_array(t) for t in ctx.saved_tensors)
        rows, k = len(values), last.shape[0]
        by_row = np.zeros(rows * k, dtype=values.dtype)
        by_row[: len(grad)] = _array(grad)
        grads = _backward(first, first_bias, values, last, _flat(by_row.reshape(rows, k).T).reshape(k, rows),
                          *ctx.bits)  # fmt: skip
        centre, spread, kind, scale = ctx.feature
        shape, dtype = ctx.column
        grad_column = torch.zeros(shape, dtype=dtype)
        grad_column.view(-1)[:rows] = torch.from_numpy(_feature_backward(values, centre, spread, grads[4], kind,
                                                                         scale))  # fmt: skip
        return (grad_column, *(torch.from_numpy(g) for g in grads[:4]), *[None] * 8)


class CentreAndScale(torch.autograd.Function):
    """theta - its tensor's mean, times its tensor's fixed gain: ``bounds`` (T + 1,) delimit the target's
    tensors in ``theta`` (their order in the flat vector), ``gains`` (T,) are not trained."""

    @staticmethod
    def forward(ctx: Any, theta: torch.Tensor, bounds: np.ndarray, gains: torch.Tensor) -> torch.Tensor:
        ctx.bounds, ctx.gains = bounds, _array(gains)
        return torch.from_numpy(_centre_and_scale(_array(theta), bounds, ctx.gains))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        # the map is linear and symmetric: each slice's (I - mean) times a scalar
        return torch.from_numpy(_centre_and_scale(_flat(_array(grad)), ctx.bounds, ctx.gains)), None, None
