"""How finely a reading resolves a trained P, and how finely the trained model needs it resolved.

A trained QT model reads its weights off the outcome probabilities P. An estimate of P from a
device differs from P by shot noise (random, about sqrt(P / S) per outcome) and by the device's
gate and readout errors (systematic). Whether a model can be read from a device comes down to two
signal-to-noise ratios over the outcomes the target uses, each the spread of P over those outcomes
divided by the rms error of one outcome's estimate:

- *available*: what a reading resolves. Shots alone give `readout_snr` (a Porter-Thomas P over
  2^N outcomes read with S shots: sqrt(S / 2^N)); a device reading gives `error_snr` of its
  estimate against the exact P, its own shot noise included, beyond the offset and scale that the
  mapping's standard feature removes.
- *needed*: the smallest SNR at which the model keeps its accuracy, found by reading its exact P
  through a ladder of shot budgets (`shot_response`): noise of a known SNR and of the kind a
  measurement makes, with nothing systematic in it.

A model whose needed SNR is above what a reading gives cannot be read by it, however it was
trained; one whose needed SNR is low does not depend on the fine structure of P, which is what a
trained circuit adds over its controls (docs/contribution.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .backends.counts import sample_probabilities
from .evaluation import score

if TYPE_CHECKING:
    from .data import TensorData
    from .model import QuantumTrain

# Shot budgets of the needed-SNR ladder: 1,024 to 16.8 million in factors of 4 (SNR doubles per rung).
SHOT_LADDER = tuple(1024 * 4**rung for rung in range(8))


def readout_snr(probs: torch.Tensor, used: int, shots: int) -> float:
    """How well ``shots`` resolve the first ``used`` outcomes of ``probs``: their spread divided by
    the shot noise of one outcome's estimate (rms of sqrt(P (1 - P) / S)).

    Below about 1 a reading cannot tell the outcomes' trained values apart; a Porter-Thomas P over
    2^N outcomes gives sqrt(S / 2^N): 1 at 13 qubits and 8,192 shots, 8 at 7 qubits.
    """
    p = probs[:used].double()
    noise = (p * (1 - p) / shots).mean().sqrt()
    return float(p.std() / noise.clamp_min(1e-30))


def error_snr(probs: torch.Tensor, estimate: torch.Tensor, used: int) -> float:
    """What a reading (a device's, say) resolves of ``probs``: their spread over the used outcomes
    divided by the rms error of ``estimate`` there, after the least-squares affine map of the
    estimate onto ``probs``.

    The mapping's standard feature removes P's offset and scale, so a device's contraction of P
    toward uniform (depolarizing noise: the estimate is a P + b) costs it nothing; only the error
    beyond that map reaches the weights. Shot noise has no such part: for it this is `readout_snr`.
    """
    p = torch.as_tensor(probs).double()[:used]
    q = torch.as_tensor(estimate).double()[:used]
    slope = ((q - q.mean()) * (p - p.mean())).sum() / (p - p.mean()).pow(2).sum().clamp_min(1e-300)
    if slope <= 0:  # nothing of P survives in the estimate
        return 0.0
    error = ((q - q.mean()) / slope - (p - p.mean())).pow(2).mean().sqrt()
    return float(p.std()) / max(float(error), 1e-30)


def shot_response(
    model: QuantumTrain,
    probs: torch.Tensor,
    data: TensorData,
    *,
    used: int,
    batch_size: int,
    ladder: tuple[int, ...] = SHOT_LADDER,
    draws: int = 2,
    seed: int = 0,
) -> list[dict[str, float]]:
    """Test accuracy of ``model`` with its weights generated from ``probs`` read at each shot budget
    of ``ladder`` (mean over ``draws`` independent readings), with the readout SNR of that budget."""
    rng = np.random.default_rng(seed)
    exact = probs.detach().double().cpu().numpy()[None]
    rows = []
    for shots in ladder:
        accuracies = []
        for _ in range(draws):
            estimate = torch.as_tensor(sample_probabilities(exact, shots, rng)[0], dtype=probs.dtype)
            accuracies.append(score(model, data, batch_size, probs=estimate.to(probs.device))[1])
        rows.append({"shots": shots, "snr": readout_snr(probs, used, shots), "accuracy": float(np.mean(accuracies))})
    return rows


def needed_snr(response: list[dict[str, float]], exact_accuracy: float, tolerance: float = 0.01) -> float | None:
    """The SNR of the smallest shot budget from which on the model stays within ``tolerance`` of its
    exact accuracy; None when no budget of the ladder gets there."""
    for i, row in enumerate(response):
        if all(later["accuracy"] >= exact_accuracy - tolerance for later in response[i:]):
            return row["snr"]
    return None


def summarize(
    model: QuantumTrain,
    probs: torch.Tensor,
    reading: torch.Tensor,
    data: TensorData,
    *,
    used: int,
    shots: int,
    batch_size: int,
    seed: int = 0,
) -> dict[str, Any]:
    """The exact accuracy of one trained model, its shot-ladder response, the SNRs that ``shots`` shots
    and the device's ``reading`` give, and the SNR it needs."""
    exact_accuracy = score(model, data, batch_size, probs=probs)[1]
    response = shot_response(model, probs, data, used=used, batch_size=batch_size, seed=seed)
    return {
        "exact_test_accuracy": exact_accuracy,
        "readout_snr": readout_snr(probs, used, shots),
        "device_snr": error_snr(probs, reading, used),
        "needed_snr": needed_snr(response, exact_accuracy),
        "shot_response": response,
    }
