"""Training under the measurement: the mapping sees P estimated from S shots, drawn afresh each step.

A model trained on exact probabilities learns weights that depend on digits of P that S shots
cannot resolve; at inference on a device it then reads noise. Drawing the estimate the device
would give during training (`--train-shots S`) makes the mapping learn weights that survive it.

Gradient estimator: straight-through.

    forward   P_hat = counts / S,  counts ~ Multinomial(S, P(theta))      (fresh each call)
    backward  dP_hat/dtheta := dP/dtheta                                   (exact, by the engine)

so the angle gradient is g = dL/dP_hat(P_hat) . dP/dtheta(theta). Why this one:

- The forward is exactly what a device returns: E[P_hat] = P, and every generated weight is the
  one the mapping would produce from that measurement.
- The gradient of the mapping's (and the per-tensor scales') parameters is exactly unbiased for
  the expected loss E[L(P_hat)]: the distribution of P_hat does not depend on them.
- For the angles the exact gradient of E[L(P_hat)] has a second term, the score function
  sum_c L(c / S) d Mult(c; S, P) / dtheta, whose estimate from one draw has a variance that grows
  with 2^N and S. Dropping it leaves a bias of order 1/S (both E[g] and d E[L] / dtheta equal
  dL/dP(P) . dP/dtheta up to terms in the covariance of P_hat, diag(P)/S - P P^T / S). At the
  S used for hardware (thousands) that bias is below the step-to-step noise of the estimate;
  `tests/test_shot_noise.py` checks it against finite differences of the exactly enumerated
  expected loss on a one-qubit case.
- It costs nothing beyond the exact backward: one multinomial draw of S shots per step (for many
  shots per outcome, log2(2^N) vectorized binomial draws: `_split_counts`).

Draws use torch's global generator, which is seeded by the run and saved in its checkpoints, so a
resumed run draws the same shots as an uninterrupted one.
"""

from __future__ import annotations

import torch

# From this many shots per outcome the counts are drawn by splitting (`_split_counts`): its cost grows
# with the outcomes, torch.multinomial's with the shots (one thread, alternated: 128 outcomes and
# 8,192 shots 0.17 against 0.38 ms, 2,048 and 8,192 0.50 against 0.59; 1,024 and 1,024 0.31 against 0.08).
SPLIT_SHOTS_PER_OUTCOME = 4


def sample_counts(probs: torch.Tensor, shots: int) -> torch.Tensor:
    """Outcome counts of ``shots`` draws from ``probs`` (clipped at 0 and renormalized), same shape."""
    weights = probs.detach().double().clamp_min(0)
    if shots >= SPLIT_SHOTS_PER_OUTCOME * len(weights):
        return _split_counts(weights, shots).to(probs.dtype)
    draws = torch.multinomial(weights / weights.sum(), shots, replacement=True)
    return torch.bincount(draws, minlength=len(probs)).to(probs.dtype)


def _split_counts(weights: torch.Tensor, shots: int) -> torch.Tensor:
    """Multinomial counts drawn top-down: the shots of a block of outcomes split between its two halves by
    one binomial draw, every block of a level at once. The same distribution as ``shots`` single
    draws, in log2(outcomes) vectorized draws instead of one per shot."""
    size = 1 << (len(weights) - 1).bit_length()
    masses = [torch.cat([weights, weights.new_zeros(size - len(weights))])]
    while len(masses[-1]) > 1:
        masses.append(masses[-1].view(-1, 2).sum(1))
    counts = weights.new_full((1,), float(shots))
    for halves in (level.view(-1, 2) for level in reversed(masses[:-1])):
        lower = torch.binomial(counts, (halves[:, 0] / (halves[:, 0] + halves[:, 1])).nan_to_num_(0.0))
        counts = torch.stack([lower, counts - lower], dim=1).view(-1)
    return counts[: len(weights)]


def straight_through_shots(probs: torch.Tensor, shots: int) -> torch.Tensor:
    """P_hat = counts / S in the forward pass, with P's gradient in the backward pass (see module)."""
    estimate = sample_counts(probs, shots) / shots
    return probs + (estimate - probs).detach()
