"""From measured bits to outcome probabilities, vectorized (no loop over outcomes or shots)."""

from __future__ import annotations

import numpy as np
from qiskit.primitives import BitArray


def outcome_integers(bits: BitArray) -> np.ndarray:
    """Each shot's outcome as an integer, shape (*bits.shape, shots); clbit k is bit k (little-endian)."""
    packed = bits.array.astype(np.int64)  # (..., shots, bytes), most significant byte first
    weights = 1 << (8 * np.arange(packed.shape[-1] - 1, -1, -1, dtype=np.int64))
    return packed @ weights


def probabilities_from_bits(bits: BitArray) -> np.ndarray:
    """Empirical outcome frequencies, shape (*bits.shape, 2^num_bits)."""
    outcomes = outcome_integers(bits).reshape(-1, bits.num_shots)
    dim = 2**bits.num_bits
    offsets = np.arange(len(outcomes))[:, None] * dim
    counts = np.bincount((outcomes + offsets).ravel(), minlength=len(outcomes) * dim)
    return (counts.reshape(len(outcomes), dim) / bits.num_shots).reshape(*bits.shape, dim)


def sample_probabilities(probs: np.ndarray, shots: int, rng: np.random.Generator) -> np.ndarray:
    """Frequencies of ``shots`` draws from each row of exact ``probs`` (batch, 2^N)."""
    probs = np.clip(probs, 0, None)
    return rng.multinomial(shots, probs / probs.sum(axis=1, keepdims=True)) / shots
