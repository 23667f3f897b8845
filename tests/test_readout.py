"""The readout SNRs against direct numpy computations, and the needed-SNR rule on made-up ladders."""

import numpy as np
import pytest
import torch

from qtrain_qiskit.readout import error_snr, needed_snr, readout_snr


def test_error_snr_is_the_spread_over_the_rms_error_beyond_the_best_affine_fit():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(64))
    error = rng.normal(0, 1e-3, 64)
    estimate = 0.6 * probs + 0.4 / 64 + error  # contracted toward uniform, plus an error
    estimate[40:] += 0.5  # outcomes the target does not use do not count
    slope, offset = np.polyfit(probs[:40], estimate[:40], 1)
    residual = (estimate[:40] - offset) / slope - probs[:40]
    expected = probs[:40].std(ddof=1) / np.sqrt((residual**2).mean())
    assert error_snr(torch.tensor(probs), torch.tensor(estimate), 40) == pytest.approx(expected, rel=1e-9)
    # a pure contraction toward uniform costs nothing; an estimate that lost P resolves nothing
    assert error_snr(torch.tensor(probs), torch.tensor(0.6 * probs + 0.4 / 64), 64) > 1e6
    assert error_snr(torch.tensor(probs), torch.tensor(-probs), 64) == 0.0


def test_readout_snr_halves_when_the_shots_quarter():
    probs = torch.tensor(np.random.default_rng(1).dirichlet(np.ones(256)))
    assert readout_snr(probs, 200, 4096) == pytest.approx(2 * readout_snr(probs, 200, 1024), rel=1e-12)


def _ladder(accuracies):
    return [{"shots": 1024 * 4**i, "snr": 2.0**i, "accuracy": a} for i, a in enumerate(accuracies)]


def test_needed_snr_is_the_first_rung_from_which_every_later_one_stays_within_tolerance():
    assert needed_snr(_ladder([0.50, 0.80, 0.895, 0.90, 0.90]), 0.90) == 4.0
    # a lucky low rung followed by a bad one does not count
    assert needed_snr(_ladder([0.50, 0.90, 0.85, 0.90, 0.90]), 0.90) == 8.0
    assert needed_snr(_ladder([0.50, 0.60, 0.70]), 0.90) is None
    assert needed_snr(_ladder([0.90, 0.90]), 0.90) == 1.0


def test_pareto_front_keeps_the_points_no_other_beats_on_both_axes():
    from qtrain_qiskit.sweeps.contribution import pareto_front

    points = [(97.0, -0.3), (94.0, 0.3), (92.0, 0.3), (67.0, 3.3), (19.0, 6.5), (19.0, 4.8), (60.0, 0.8)]
    assert pareto_front(points) == [(19.0, 6.5), (67.0, 3.3), (94.0, 0.3), (97.0, -0.3)]
    assert pareto_front([(float("nan"), 1.0), (90.0, 1.0)]) == [(90.0, 1.0)]
