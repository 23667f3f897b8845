"""The mapping model: from outcome probabilities to the target's weights.

Basis state i produces k weights (``weights_per_state``, default 1: weight i alone) by a small MLP
from [bits of i, feature of P(i)]; only the first ceil(M / k) outcomes are ever used. With k > 1
each used outcome carries k times more of the shots, which is what makes a model readable from a
device's budget (batched parameter generation, Federated QT 2024; QPA, ICLR 2025).

The MLP runs on all rows at once (no loop over outcomes) for small targets, and on checkpointed
chunks of rows for large ones, so that 2^20+ rows never hold their hidden activations all at once.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .ansatz import states_for
from .compiled_mapping import ACTIVATIONS as COMPILED_ACTIVATIONS
from .compiled_mapping import CompiledMLP

FEATURES = ("raw", "scaled", "standard")
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}


def basis_bits(num_states: int, num_qubits: int, *, signed: bool, first: int = 0) -> torch.Tensor:
    """(num_states, num_qubits) matrix whose row i holds the bits of first + i, column q = qubit q.

    ``signed`` encodes bits as +-1 (zero-mean inputs for the MLP) instead of 0/1.
    """
    index = torch.arange(first, first + num_states)[:, None]
    bits = ((index >> torch.arange(num_qubits)) & 1).float()
    return 2 * bits - 1 if signed else bits


def probability_feature(
    probs: torch.Tensor, num_qubits: int, kind: str, *, alpha: float, beta: float, gamma: float
) -> torch.Tensor:
    """One scalar per outcome that the MLP can use.

    ``raw`` is P(i) itself (the seed's choice). With 2^N outcomes P(i) ~ 2^-N, far below the scale
    the MLP's weights start at, so it carries almost no signal early in training. ``scaled`` is the
    Quantum-Train authors' normalization (beta * tanh(gamma * 2^(N-1) * P))^alpha, centred over
    the used outcomes: 2^(N-1) P is O(1) for a spread-out distribution, tanh bounds the few large
    probabilities of a concentrated one, and centring removes the common offset.

    ``standard`` also divides by the spread over the used outcomes. Beside N bit inputs of unit
    variance a feature of variance ~0.04 is drowned out: the MLP then starts as a smooth function
    of the bits alone, the generated tensors are nearly low-rank and the target's output hardly
    depends on its input (training sits at chance). At unit variance the outcome-to-outcome
    randomness of P gives every weight its own value, like a classical random initialization.
    """
    if kind == "raw":
        return probs
    scaled = torch.tanh(gamma * 2 ** (num_qubits - 1) * probs)
    # beta = alpha = 1 (every shipped configuration): multiplying by 1 and raising to 1 are exact, so
    # skipping them gives the same values, two operations fewer forward and backward
    scaled = scaled if beta == 1 else beta * scaled
    scaled = scaled if alpha == 1 else scaled**alpha
    centred = scaled - scaled.mean()
    return centred / centred.std().clamp_min(1e-12) if kind == "standard" else centred


# From this many rows `_BitsFirstLayer` pays for its own overhead (13 qubits, 6,676 rows: the mapping's
# forward and backward 5-9% faster; 105 rows: 10% slower; one thread, alternated in one process).
BITS_LAYER_ROWS = 1024


class _BitsFirstLayer(torch.autograd.Function):
    """The MLP's first Linear on [bits, feature]: the same product as `nn.Linear` on the concatenated
    inputs, whose backward skips the input gradient of the bit columns (constants; at 13 qubits they
    are 13 of the 14 columns, and that (rows, 20) x (20, 14) product was a tenth of the mapping's backward)."""

    @staticmethod
    def forward(
        ctx: Any, bits: torch.Tensor, feature: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
    ) -> torch.Tensor:
        inputs = torch.cat([bits, feature], dim=1)
        ctx.save_for_backward(inputs, weight)
        ctx.num_bits = bits.shape[1]
        return nn.functional.linear(inputs, weight, bias)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor | None, torch.Tensor, torch.Tensor]:
        inputs, weight = ctx.saved_tensors
        grad_feature = grad @ weight[:, ctx.num_bits :] if ctx.needs_input_grad[1] else None
        return None, grad_feature, (inputs.mT @ grad).mT, grad.sum(0)


class MappingModel(nn.Module):
    """MLP from [bits of i, feature of P(i)] to weights i*k .. i*k+k-1, for i < ceil(M / k).

    The k weights of one basis state share the MLP's hidden layer and differ in its last one
    (k outputs); the last state's surplus outputs beyond M are dropped.

    ``probability_input=False`` is the ablation with no quantum input: the MLP sees the bits alone
    (N inputs instead of N + 1) and ignores any P it is given.

    ``head_bits`` b: the low b bits of a state's index pick one of 2^b groups of k output units
    instead of being inputs (the MLP sees N - b bits and has k 2^b outputs). Each weight still reads
    its own state's probability, but the weights of different groups get their own last-layer
    directions. At k = 1 every weight is otherwise the MLP's one output unit, so all 6,676 weights
    share the last layer's ~20 directions: the generator's Jacobian is badly conditioned and
    training sits near chance for hundreds of steps (docs/start.md). With b = 4 the 13-qubit
    reference circuit keeps one outcome per weight and the quick budget leaves chance at every seed.

    ``chunk`` (a power of two; None or 0: no chunking) bounds the rows the MLP sees at once.
    Each chunk runs under `torch.utils.checkpoint`, so backward recomputes one chunk's
    activations at a time: peak memory is a few vectors of M plus one chunk's activations,
    instead of M x (hidden sizes). The basis bits are not stored as an (M, N) matrix either:
    chunks start at multiples of 2^c, so the bits of their rows are a fixed (2^c, c) table of
    low bits next to the chunk's constant high bits. Where `compiled_mapping`'s loops run the MLP
    they keep no activations at all (a tile of rows at a time) and take every row in one call.

    ``bit_init_scale`` multiplies PyTorch's initial weights on the basis bits. At 1 (torch's init) the
    bits, of unit variance, dominate the probability feature: weight i starts mostly as a smooth
    function of its index, so a generated matrix has correlated rows (reference CNN at step 0:
    effective rank 0.73 of full for the 30x200 layer, 0.98 at a standard init) and inputs reach
    nearly the same penultimate representation (mean cosine 0.998 between images, 0.88 at a standard
    init). At 0 each weight starts as a function of its own outcome probability, which varies like an
    i.i.d. random init when the circuit is deep enough to scramble (8+ blocks); the bit weights still
    get gradients and learn. 0 did not shorten the early plateau on 2,000 images and, with 2 blocks
    (P then nearly a product distribution), it never left it, so it is an option, not the default
    (README "The start of training").
    """

    def __init__(
        self,
        num_qubits: int,
        num_weights: int,
        *,
        weights_per_state: int = 1,
        hidden: Sequence[int] = (20,),
        activation: str = "relu",
        features: str = "scaled",
        feature_alpha: float = 1.0,
        feature_beta: float = 1.0,
        feature_gamma: float = 1.0,
        chunk: int | None = None,
        bit_init_scale: float = 1.0,
        probability_input: bool = True,
        head_bits: int = 0,
    ) -> None:
        super().__init__()
        self.probability_input = probability_input
        if chunk and chunk & (chunk - 1):
            raise ValueError(f"chunk must be a power of two, got {chunk}")
        if not 0 <= head_bits <= num_qubits:
            raise ValueError(f"head_bits must be between 0 and the {num_qubits} qubits, got {head_bits}")
        self.head_bits = head_bits
        self.num_qubits, self.num_weights, self.features = num_qubits, num_weights, features
        self.weights_per_state = weights_per_state
        self.num_rows = states_for(num_weights, weights_per_state)
        self.feature_args = {"alpha": feature_alpha, "beta": feature_beta, "gamma": feature_gamma}
        self.signed = features != "raw"
        self.low_qubits = num_qubits if not chunk or chunk >= 2**num_qubits else chunk.bit_length() - 1
        self.chunk = 2**self.low_qubits
        low_rows = min(self.num_rows, self.chunk)
        self.register_buffer("low_bits", basis_bits(low_rows, self.low_qubits, signed=self.signed), persistent=False)
        sizes = [num_qubits - head_bits + probability_input, *hidden]
        layers: list[nn.Module] = []
        for fan_in, fan_out in itertools.pairwise(sizes):
            layers += [nn.Linear(fan_in, fan_out), ACTIVATIONS[activation]()]
        layers.append(nn.Linear(sizes[-1], weights_per_state << head_bits))
        self.mlp = nn.Sequential(*layers)
        self.activation = activation
        # hand-written reverse passes: `compiled_mapping`'s loops where they cover the MLP, else
        # `_BitsFirstLayer` for many rows. `subspace` turns them off: forward-mode AD needs torch's own.
        self.fast_paths = True
        self.loops_cover = (
            len(hidden) == 1 and activation in COMPILED_ACTIVATIONS and not head_bits and probability_input
        )
        with torch.no_grad():  # see bit_init_scale in the class docstring
            self.mlp[0].weight[:, : num_qubits - head_bits] *= bit_init_scale

    def bits(self, start: int, stop: int) -> torch.Tensor:
        """Basis bits of rows start..stop-1 (start a multiple of the chunk), as the MLP takes them."""
        low = self.low_bits[: stop - start]
        if self.low_qubits == self.num_qubits:
            return low
        high = basis_bits(1, self.num_qubits - self.low_qubits, signed=self.signed, first=start >> self.low_qubits)
        return torch.cat([low, high.to(low).expand(len(low), -1)], dim=1)

    def rows(self, feature: torch.Tensor, start: int) -> torch.Tensor:
        """Generated weights (len(feature), k) of basis states start.. (an (n, 0) feature: bits only)."""
        if self._loops(feature):
            rows = len(feature)
            return self._compiled(feature, start, rows, rows * self.weights_per_state, "raw").view(rows, -1)
        bits = self.bits(start, start + len(feature))[:, self.head_bits :]
        if len(feature) < BITS_LAYER_ROWS or not self.fast_paths:
            out = self.mlp(torch.cat([bits, feature], dim=1))
        else:
            first = self.mlp[0]
            out = self.mlp[1:](_BitsFirstLayer.apply(bits, feature, first.weight, first.bias))
        if not self.head_bits:
            return out
        rows = torch.arange(len(out), device=out.device)
        group = (start + rows) & ((1 << self.head_bits) - 1)
        return out.view(len(out), -1, self.weights_per_state)[rows, group]

    def _loops(self, tensor: torch.Tensor) -> bool:
        """Whether `compiled_mapping`'s loops run this MLP on ``tensor``'s device."""
        return self.fast_paths and self.loops_cover and tensor.device.type == "cpu"

    def _compiled(self, column: torch.Tensor, start: int, rows: int, count: int, feature: str) -> torch.Tensor:
        """The first ``count`` generated weights of ``rows`` states from ``start`` by `compiled_mapping`'s loops;
        ``column`` is P (its feature computed there too) or the feature."""
        first, last = self.mlp[0], self.mlp[2]
        low, scale = -1.0 if self.signed else 0.0, self.feature_args["gamma"] * 2 ** (self.num_qubits - 1)
        return CompiledMLP.apply(column, first.weight, first.bias, last.weight, last.bias, start, rows, count, low,
                                 1.0, self.activation, feature, scale)  # fmt: skip

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        """Generated weight vector of shape (num_weights,) from probabilities of shape (2^N,)."""
        # the loops keep no activations, so they take every row at once whatever the chunk
        one_pass = self._loops(probs) and self.num_rows >= 2
        if one_pass and self.feature_args["alpha"] == self.feature_args["beta"] == 1:  # feature and MLP at once
            return self._compiled(probs, 0, self.num_rows, self.num_weights, self.features)
        if self.probability_input:
            used = probs[: self.num_rows].to(self.low_bits.dtype)
            feature = probability_feature(used, self.num_qubits, self.features, **self.feature_args)[:, None]
        else:
            feature = self.low_bits.new_empty(self.num_rows, 0)
        if self.num_rows <= self.chunk:
            return self.rows(feature, 0).flatten()[: self.num_weights]
        recompute = torch.is_grad_enabled()
        pieces = [
            checkpoint(self.rows, piece, start, use_reentrant=False) if recompute else self.rows(piece, start)
            for start, piece in zip(range(0, self.num_rows, self.chunk), feature.split(self.chunk), strict=True)
        ]
        return torch.cat(pieces).flatten()[: self.num_weights]
