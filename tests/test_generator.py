"""The classical generator of P: a trainable distribution with the circuit's budget, and its guards."""

import itertools
import math

import pytest
import torch

from qtrain_qiskit.build import build_circuit, build_model, trainable_count
from qtrain_qiskit.config import Config, ConfigError, apply, validate
from qtrain_qiskit.generator import EnergyGenerator, generator_size
from qtrain_qiskit.sweeps.grid import comparison_variants
from qtrain_qiskit.targets import build_target, count_parameters

from .conftest import run_script_inprocess


@pytest.mark.parametrize(("qubits", "blocks"), [(7, 8), (9, 8), (9, 32), (13, 8), (13, 32), (10, 5), (19, 8)])
def test_budget_within_ten_percent_of_the_circuit(qubits, blocks):
    generator = EnergyGenerator(qubits, qubits * blocks)
    size = sum(p.numel() for p in generator.parameters())
    assert size == generator_size(qubits, qubits * blocks)
    assert abs(size - qubits * blocks) <= 0.1 * qubits * blocks


def test_unit_output_weights_give_the_rbm_marginal_by_brute_force():
    """With every output weight 1, P is a restricted Boltzmann machine's marginal over its visible
    units; the reference sums exp(-energy) over every hidden configuration explicitly."""
    torch.manual_seed(0)
    generator = EnergyGenerator(4, 18).double()  # 3 hidden units
    with torch.no_grad():
        generator.energy.weight.fill_(1.0)
    w, c = generator.hidden.weight, generator.hidden.bias
    spins = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=4)), dtype=torch.float64).flip(-1)
    unnormalized = torch.zeros(16, dtype=torch.float64)
    for hidden in itertools.product([0.0, 1.0], repeat=3):
        h = torch.tensor(hidden, dtype=torch.float64)
        unnormalized += torch.exp((spins @ w.T + c) @ h)
    torch.testing.assert_close(generator(), (unnormalized / unnormalized.sum()).detach(), rtol=1e-12, atol=1e-15)


def test_gradient_agrees_with_finite_differences():
    torch.manual_seed(1)
    generator = EnergyGenerator(3, 10).double()
    probe = torch.randn(8, dtype=torch.float64)

    def loss() -> torch.Tensor:
        return (generator() * probe).sum()

    loss().backward()
    weight = generator.hidden.weight
    for index in [(0, 0), (1, 2)]:
        original = weight.data[index].item()
        values = []
        for shift in (1e-6, -1e-6):
            weight.data[index] = original + shift
            values.append(loss().item())
        weight.data[index] = original
        assert weight.grad[index].item() == pytest.approx((values[0] - values[1]) / 2e-6, rel=1e-6, abs=1e-9)


def test_starts_spread_like_a_random_circuit():
    """Unit-spread energies: log P has a spread of order one over the outcomes, as the Porter-Thomas
    law of a random circuit's P (pi / sqrt(6) = 1.28 for log(2^N P)); a flat or one-hot start would
    give 0 or a spread growing with N."""
    torch.manual_seed(0)
    spread = torch.log(EnergyGenerator(10, 80)()).std().item()
    assert 0.8 < spread < 1.2  # a softmax of unit-variance logits: log P = E - const, std exactly ~1


def _config(**overrides):
    base = {"target": "cnn_1_2_1", "blocks": 8, "backend": "torch_statevector", "device": "cpu"}
    return validate(apply(Config(), {**base, "quantum": "classical_generator", **overrides}, "test"))


def test_model_trains_the_generator_and_samples_it_under_train_shots():
    config = _config(train_shots=64)
    torch.manual_seed(0)
    model = build_model(config, torch.device("cpu"))
    assert isinstance(model.quantum, EnergyGenerator)
    assert model.train_shots == 64
    circuit = build_circuit(config, count_parameters(build_target("cnn_1_2_1")))
    counts = model.parameter_counts()
    assert counts["quantum_params"] == generator_size(circuit.num_qubits, circuit.num_parameters)
    assert trainable_count(config) == counts["trainable_params"]
    theta = model.generate_weights()
    theta.pow(2).sum().backward()
    assert model.quantum.hidden.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"entanglement": "circular"}, "cannot honour entanglement"),
        ({"init_scale": 0.5}, "cannot honour init_scale"),
        ({"backend": "aer_shots"}, "executes no circuit"),
        ({"blocks": 1}, "within 10%"),
    ],
)
def test_refuses_circuit_options_it_cannot_honour(overrides, message):
    with pytest.raises(ConfigError, match=message):
        _config(**overrides)


def test_train_command_refuses_it_in_one_line(tmp_path):
    status, _, err = run_script_inprocess(
        "train.py", "--quantum", "classical_generator", "--entanglement", "circular", "--run-dir", str(tmp_path / "r")
    )
    assert status == 2
    assert len(err.strip().splitlines()) == 1 and "entanglement" in err
    assert not (tmp_path / "r").exists()


def test_compare_includes_the_generator_with_its_refused_keys_at_default():
    config = validate(apply(Config(), {"entanglement": "circular", "head_bits": 4, "hidden": [10, 11]}, "test"))
    variants = dict(comparison_variants(config))
    assert variants["classical_generator"]["quantum"] == "classical_generator"
    assert variants["classical_generator"]["entanglement"] == "linear"
    assert variants["classical_generator"]["init_scale"] == str(math.pi)
    assert "entanglement" not in variants["frozen"]  # the circuit controls keep the configuration's circuit
