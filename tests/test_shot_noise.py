"""Training under shot noise (`--train-shots`): the straight-through estimator against the expected loss.

The reference is independent of the estimator: on one qubit the S-shot estimate is Binomial, so the
expected loss E[L(P_hat)] = sum_c Binom(c; S, P1) L((S - c) / S, c / S) is an exact finite sum,
differentiated by central finite differences.
"""

import math

import pytest
import torch
from qtrain_qiskit.backends.torch_statevector import TorchStatevectorBackend, TorchStatevectorOptions
from torch import nn

from qtrain_qiskit.ansatz import build_ansatz
from qtrain_qiskit.build import build_model
from qtrain_qiskit.config import Config, ConfigError, apply, validate
from qtrain_qiskit.mapping import MappingModel
from qtrain_qiskit.model import QuantumTrain
from qtrain_qiskit.qnn import TorchQuantumLayer
from qtrain_qiskit.shot_noise import sample_counts, straight_through_shots

from .conftest import run_script_inprocess


def tiny_model(shots: int) -> tuple[QuantumTrain, torch.Tensor, torch.Tensor]:
    """1 qubit x 2 blocks -> 2 outcomes -> mapping with k = 2 -> the 4 weights of Linear(1, 2); float64."""
    torch.manual_seed(3)
    circuit = build_ansatz(1, 2)
    engine = TorchStatevectorBackend(TorchStatevectorOptions(precision="float64"))
    quantum = TorchQuantumLayer(circuit, engine, torch.tensor([0.9, 0.4]))
    mapping = MappingModel(1, 4, weights_per_state=2, hidden=[4], activation="tanh")
    model = QuantumTrain(nn.Linear(1, 2), quantum, mapping, center="none", train_shots=shots).double()
    x = torch.linspace(-2, 2, 8, dtype=torch.float64)[:, None]
    y = torch.tensor([0, 0, 1, 0, 1, 1, 0, 1])
    return model, x, y


def expected_loss(model: QuantumTrain, x: torch.Tensor, y: torch.Tensor, shots: int) -> float:
    """E[L(P_hat)] over all S + 1 outcomes of the binomial, with the model's current exact P."""
    with torch.no_grad():
        p1 = model.quantum()[1].item()
        total = 0.0
        for c in range(shots + 1):
            weight = math.comb(shots, c) * p1**c * (1 - p1) ** (shots - c)
            estimate = torch.tensor([(shots - c) / shots, c / shots], dtype=torch.float64)
            logits = model.run_target(model.weights_from_probabilities(estimate), x)
            total += weight * nn.functional.cross_entropy(logits, y).item()
    return total


def finite_difference(model, x, y, shots, parameter: torch.Tensor, index: int, h: float = 1e-5) -> float:
    flat = parameter.data.view(-1)
    flat[index] += h
    up = expected_loss(model, x, y, shots)
    flat[index] -= 2 * h
    down = expected_loss(model, x, y, shots)
    flat[index] += h
    return (up - down) / (2 * h)


def sampled_gradients(model, x, y, draws: int) -> torch.Tensor:
    """(draws, 2 angles + 1 mapping weight): the training gradient, one fresh shot draw each."""
    model.train()
    rows = []
    for _ in range(draws):
        model.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        rows.append(torch.cat([model.quantum.weight.grad, model.mapping.mlp[0].weight.grad.view(-1)[:1]]))
    return torch.stack(rows)


@pytest.mark.parametrize("shots", [64, 512])
def test_straight_through_gradient_matches_the_expected_loss(shots):
    # Angles: the estimator drops the score-function term, a bias of order 1/S; allowed: 4 standard
    # errors of the Monte-Carlo mean plus 2/S of the gradient's scale. Measured with 3,000 draws: gaps
    # of 4e-4, 2e-4, 2.5e-5 at S = 16, 64, 512 against an angle gradient of 0.067, each within about
    # 2 standard errors: the bias is not resolved at all here.
    # Mapping: its gradient is unbiased, so only the 4 standard errors.
    model, x, y = tiny_model(shots)
    torch.manual_seed(0)
    grads = sampled_gradients(model, x, y, draws=1500)
    mean, error = grads.mean(0), grads.std(0) / math.sqrt(len(grads))
    reference = torch.tensor(
        [finite_difference(model, x, y, shots, model.quantum.weight, i) for i in range(2)]
        + [finite_difference(model, x, y, shots, model.mapping.mlp[0].weight, 0)],
        dtype=torch.float64,
    )
    scale = reference.abs().max()
    allowed = 4 * error + torch.tensor([2 / shots * scale] * 2 + [0.0])
    assert ((mean - reference).abs() <= allowed).all(), (mean, reference, error)
    assert scale > 10 * error.max()  # the check has power: the gradient is far above the noise


def test_forward_is_an_unbiased_fresh_estimate_and_eval_stays_exact():
    torch.manual_seed(0)
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05], requires_grad=True)
    draws = torch.stack([straight_through_shots(probs, 100) for _ in range(4000)])
    assert torch.allclose(draws * 100, (draws * 100).round(), atol=1e-4)
    assert torch.allclose(draws.sum(1), torch.ones(4000))
    torch.testing.assert_close(draws.mean(0), probs.detach(), atol=4 * 0.5 / math.sqrt(100 * 4000), rtol=0)
    (draws[0] * torch.arange(4.0)).sum().backward()
    torch.testing.assert_close(probs.grad, torch.arange(4.0))  # straight through: identity Jacobian
    assert sample_counts(torch.tensor([0.0, 1.0, -1e-9]), 7).tolist() == [0, 7, 0]

    model, x, _ = tiny_model(16)
    model.train()
    assert not torch.equal(model.generate_weights(), model.generate_weights())  # a fresh draw per call
    model.eval()
    exact = model.weights_from_probabilities(model.quantum())
    torch.testing.assert_close(model.generate_weights(), exact)
    exported = model.export()
    torch.testing.assert_close(exported(x), model.run_target(exact, x))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        # the option's own bound check ("must be >= 1"), or the section check it replaces
        ({"train_shots": 0}, "train_shots must be (>= 1|a positive integer), got 0"),
        ({"train_shots": 64, "method": "classical"}, "train_shots: the classical method executes no circuit"),
    ],
)
def test_bad_train_shots_are_one_line(values, message):
    with pytest.raises(ConfigError, match=message):
        validate(apply(Config(), values, "test"))


def test_sampled_backends_keep_their_own_shots():
    # A run trained with train_shots is evaluated or fine-tuned on sampled backends with its config.
    config = validate(apply(Config(), {"train_shots": 64, "backend": "aer_shots", "weights_per_state": 64}, "test"))
    assert build_model(config, torch.device("cpu")).train_shots is None
    config = validate(apply(config, {"backend": "torch_statevector"}, "test"))
    assert build_model(config, torch.device("cpu")).train_shots == 64


@pytest.mark.parametrize("value", ["1.5", "many", "-3"])
def test_bad_train_shots_flag_exits_2(value, tmp_path):
    status, _, err = run_script_inprocess("train.py", "--train-shots", value, "--run-dir", str(tmp_path / "r"))
    assert status == 2 and err.count("\n") == 1 and "train_shots" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(("outcomes", "shots"), [(8, 64), (5, 40), (3, 7)])  # both samplers; 5 and 3: padded
def test_counts_follow_the_multinomial_law(outcomes, shots):
    """Mean S p and covariance S (diag p - p p^T) of the multinomial, from 20,000 draws of either sampler."""
    torch.manual_seed(outcomes)
    probs = torch.rand(outcomes, dtype=torch.float64)
    probs[1] = 0  # an impossible outcome is never drawn
    probs /= probs.sum()
    draws = torch.stack([sample_counts(probs, shots) for _ in range(20_000)])
    assert torch.equal(draws, draws.round()) and torch.all(draws.sum(1) == shots) and torch.all(draws[:, 1] == 0)
    covariance = shots * (torch.diag(probs) - probs[:, None] * probs[None, :])
    spread = covariance.diagonal().sqrt() / math.sqrt(len(draws))
    assert torch.all((draws.mean(0) - shots * probs).abs() <= 5 * spread + 1e-12)
    torch.testing.assert_close(draws.T.cov(), covariance, atol=0.06 * covariance.diagonal().max(), rtol=0)
