"""The mapping model: from outcome probabilities to the target's weights.

Weight i is produced by a small MLP from [bits of i, feature of P(i)]. The basis-bit matrix is
built once; the MLP runs on all M rows at once (no loop over outcomes) and only the first M
outcomes are ever used.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

FEATURES = ("raw", "scaled")
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}


def basis_bits(num_states: int, num_qubits: int, *, signed: bool) -> torch.Tensor:
    """(num_states, num_qubits) matrix whose row i holds the bits of i, column q = qubit q.

    ``signed`` encodes bits as +-1 (zero-mean inputs for the MLP) instead of 0/1.
    """
    index = torch.arange(num_states)[:, None]
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
    """
    if kind == "raw":
        return probs
    scaled = (beta * torch.tanh(gamma * 2 ** (num_qubits - 1) * probs)) ** alpha
    return scaled - scaled.mean()


class MappingModel(nn.Module):
    """MLP from [bits of i, feature of P(i)] to weight i, for i < num_weights."""

    def __init__(
        self,
        num_qubits: int,
        num_weights: int,
        *,
        hidden: Sequence[int] = (20,),
        activation: str = "relu",
        features: str = "scaled",
        feature_alpha: float = 1.0,
        feature_beta: float = 1.0,
        feature_gamma: float = 1.0,
    ) -> None:
        super().__init__()
        self.num_qubits, self.num_weights, self.features = num_qubits, num_weights, features
        self.feature_args = {"alpha": feature_alpha, "beta": feature_beta, "gamma": feature_gamma}
        self.register_buffer("bits", basis_bits(num_weights, num_qubits, signed=features == "scaled"), persistent=False)
        sizes = [num_qubits + 1, *hidden]
        layers: list[nn.Module] = []
        for fan_in, fan_out in itertools.pairwise(sizes):
            layers += [nn.Linear(fan_in, fan_out), ACTIVATIONS[activation]()]
        layers.append(nn.Linear(sizes[-1], 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        """Generated weight vector of shape (num_weights,) from probabilities of shape (2^N,)."""
        used = probs[: self.num_weights].to(self.bits.dtype)
        feature = probability_feature(used, self.num_qubits, self.features, **self.feature_args)
        return self.mlp(torch.cat([self.bits, feature[:, None]], dim=1)).squeeze(-1)
