"""The weight generator's hot path as compiled loops on CPU: feature, mapping MLP, centring and scaling.

At 13 qubits the reference mapping is 6,676 rows through [14, 20, 1]. As torch operations, its
feature, MLP, per-tensor centring and scaling, forward and backward, are ~60 operations and three
skinny matrix products: about 2 ms a step on one thread, a quarter of the classical step it is
compared with. Written out, P -> weights is one autograd node (`CompiledMLP`) and centring and
scaling another (`CentreAndScale`), and the arithmetic shrinks too:

- the first layer's bit columns are the basis bits of consecutive rows, so their product with the
  weights is built from earlier rows (rows 2^b .. 2^(b+1) - 1 are rows 0 .. 2^b - 1 plus column b of
  the weights): one addition per hidden unit and row instead of N multiply-adds;
- their weight gradient is, per bit, the sum of the pre-activation gradients over the rows whose bit
  is set: folding the upper half of the rows onto the lower, bit by bit from the top, gives all N
  sums in two passes over the rows instead of N.

The loops run hidden unit by hidden unit over contiguous rows, which the compiler vectorizes.
Covered: one hidden layer, relu or tanh, any k, bits in 0/1 or +-1, the shipped features (alpha =
beta = 1), a block of rows that starts at a multiple of a power of two at least its length (the whole
table, or one of `MappingModel`'s chunks, whose feature is then computed outside). Anything else
(deeper MLPs, gelu/silu, head bits, learned scales, CUDA, forward-mode AD as in `subspace`) keeps
torch's operations. Tested against them and against finite differences (tests/test_compiled_mapping.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numba import njit

ACTIVATIONS = ("relu", "tanh")
FEATURE_KINDS = ("raw", "scaled", "standard")  # "raw": the column is the feature itself


# The loops keep every value in the arrays' own float type: the bit values ``low``/``high`` arrive as
# scalars of that type and zeros are derived from them, as a float64 literal would promote a float32
# loop to float64 and stop it from vectorizing (measured: 5x slower for `_hidden`).


@njit(cache=True, fastmath=True)
def _hidden(first: np.ndarray, bias: np.ndarray, feature: np.ndarray, start: int, low: Any, high: Any,
            use_tanh: bool) -> np.ndarray:  # fmt: skip
    """(h, rows) activations of rows start..; ``first`` is the first layer's weight (h, N + 1).

    Hidden unit by hidden unit, so that every loop runs over a contiguous row of the table.
    """
    width, num_bits, rows = first.shape[0], first.shape[1] - 1, feature.shape[0]
    out, zero = np.empty((width, rows), dtype=first.dtype), low - low
    for j in range(width):
        unit, total = out[j], bias[j]
        for b in range(num_bits):  # row 0: the bits of ``start``
            total += first[j, b] * (high if (start >> b) & 1 else low)
        unit[0] = total
        size, b = 1, 0
        while size < rows:  # rows 2^b .. 2^(b+1) - 1 are rows 0 .. 2^b - 1 with bit b turned on
            step, stop = (high - low) * first[j, b], min(2 * size, rows)
            source, target = unit[: stop - size], unit[size:stop]
            for i in range(stop - size):
                target[i] = source[i] + step
            size, b = 2 * size, b + 1
        weight = first[j, num_bits]
        if use_tanh:
            for i in range(rows):
                unit[i] = np.tanh(unit[i] + weight * feature[i])
        else:
            for i in range(rows):
                v = unit[i] + weight * feature[i]
                unit[i] = v if v > zero else zero
    return out


@njit(cache=True, fastmath=True)
def _output(hidden: np.ndarray, last: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """(k, rows) outputs of the last layer."""
    k, width, rows = last.shape[0], last.shape[1], hidden.shape[1]
    out = np.empty((k, rows), dtype=hidden.dtype)
    for o in range(k):
        row = out[o]
        row[:] = bias[o]
        for j in range(width):
            weight, unit = last[o, j], hidden[j]
            for i in range(rows):
                row[i] += weight * unit[i]
    return out


@njit(cache=True, fastmath=True)
def _backward(first: np.ndarray, last: np.ndarray, feature: np.ndarray, hidden: np.ndarray, grad: np.ndarray,
              start: int, low: Any, high: Any, use_tanh: bool):  # fmt: skip
    """Gradients of sum(grad * output) (``grad``: (k, rows)): both layers' weights and biases, the feature."""
    width, num_bits, k, rows = first.shape[0], first.shape[1] - 1, last.shape[0], hidden.shape[1]
    dtype, zero = hidden.dtype, low - low
    one = zero + 1
    grad_first, grad_bias = np.zeros((width, num_bits + 1), dtype=dtype), np.zeros(width, dtype=dtype)
    grad_last, grad_last_bias = np.zeros((k, width), dtype=dtype), np.zeros(k, dtype=dtype)
    grad_feature, pre = np.zeros(rows, dtype=dtype), np.empty(rows, dtype=dtype)
    for o in range(k):
        grad_last_bias[o] = grad[o].sum()
    for j in range(width):
        unit = hidden[j]
        pre[:] = zero
        for o in range(k):
            g, weight, total = grad[o], last[o, j], zero
            for i in range(rows):
                total += g[i] * unit[i]
                pre[i] += weight * g[i]
            grad_last[o, j] = total
        if use_tanh:  # through the activation
            for i in range(rows):
                pre[i] *= one - unit[i] * unit[i]
        else:
            for i in range(rows):
                pre[i] = pre[i] if unit[i] > zero else zero
        weight, total = first[j, num_bits], zero
        for i in range(rows):
            grad_feature[i] += weight * pre[i]
            total += pre[i] * feature[i]
        grad_first[j, num_bits] = total
        # bit b's column: the sum over the rows whose bit b is set. From the top bit down: rows with
        # bit b set are the block [2^b, 2^(b+1)); folding it onto [0, 2^b) leaves the lower bits' sums.
        every_row = pre.sum()
        count, bit = rows, 0
        while (1 << bit) < rows:
            bit += 1
        while bit > 0:
            bit -= 1
            size = 1 << bit
            if count > size:
                upper, lower, on = pre[size:count], pre[: count - size], zero
                for i in range(count - size):
                    on += upper[i]
                    lower[i] += upper[i]
                grad_first[j, bit], count = on, size
        grad_bias[j] = every_row
        for b in range(num_bits):  # bit b of start + i is bit b of i or of start (their bits are disjoint)
            on = grad_first[j, b] + (every_row if (start >> b) & 1 else zero)
            grad_first[j, b] = low * every_row + (high - low) * on
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
        hidden = _hidden(_array(first), _array(first_bias), values, start, low, high, use_tanh)
        # saved as tensors, so that a checkpointed chunk drops them and recomputes them in backward
        ctx.save_for_backward(first, last, torch.from_numpy(values), torch.from_numpy(hidden))
        ctx.bits, ctx.feature = (start, low, high, use_tanh), (centre, spread, kind, scale)
        ctx.column = (column.shape, column.dtype)
        return torch.from_numpy(_flat(_output(hidden, _array(last), _array(last_bias)).T)[:count])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        first, last, values, hidden = (_array(t) for t in ctx.saved_tensors)
        rows, k = hidden.shape[1], last.shape[0]
        by_row = np.zeros(rows * k, dtype=hidden.dtype)
        by_row[: len(grad)] = _array(grad)
        grads = _backward(first, last, values, hidden, _flat(by_row.reshape(rows, k).T).reshape(k, rows),
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
