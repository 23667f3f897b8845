"""QuantumTrain: target slicing, functional calls, gradient paths, centring and export."""

import subprocess
import sys

import pytest
import torch
from torch import nn

from qtrain_qiskit import backends
from qtrain_qiskit.ansatz import build_ansatz, qubits_for
from qtrain_qiskit.build import build_model
from qtrain_qiskit.config import Config
from qtrain_qiskit.mapping import MappingModel
from qtrain_qiskit.model import QuantumTrain
from qtrain_qiskit.qnn import build_quantum_layer
from qtrain_qiskit.targets import CIFARCNN, MNISTCNN, count_parameters

from .conftest import REPO


class Fixed(nn.Module):
    """A quantum layer stand-in returning fixed probabilities (for slicing tests)."""

    def __init__(self, probs):
        super().__init__()
        self.probs = nn.Parameter(probs)

    def forward(self):
        return self.probs


class Identity(nn.Module):
    """A mapping stand-in: theta = first M probabilities, so theta can be set exactly."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, probs):
        return probs[: self.m]


class TinyMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
        self.register_buffer("offset", torch.tensor(0.5))

    def forward(self, x):
        return self.body(x) + self.offset


def test_reference_parameter_counts():
    # conv 1->4 k3: 36+4; conv 4->8 k3: 288+8; fc 200->30: 6000+30; fc 30->10: 300+10
    assert count_parameters(MNISTCNN()) == 40 + 296 + 6030 + 310 == 6676
    assert qubits_for(6676) == 13
    assert count_parameters(CIFARCNN()) == 15626


@pytest.mark.parametrize("target_cls", [MNISTCNN, TinyMLP])
def test_functional_call_on_sliced_weights_equals_the_module(target_cls):
    target = target_cls()
    flat = torch.cat([p.detach().flatten() for p in target.parameters()])
    m = len(flat)
    quantum, mapping = Fixed(torch.cat([flat, torch.zeros(8)])), Identity(m)
    model = QuantumTrain(target, quantum, mapping, center="none", weight_scale="none")
    x = torch.randn(4, 1, 28, 28) if target_cls is MNISTCNN else torch.randn(4, 5)
    torch.testing.assert_close(model(x), target(x))


def test_loss_gradient_reaches_angles_and_mapping():
    target = MNISTCNN()
    circuit = build_ansatz(13, 2)
    angles = torch.rand(circuit.num_parameters)
    quantum = build_quantum_layer(
        circuit, backends.get_backend("torch_statevector", precision="float64"), "adjoint", angles
    )
    model = QuantumTrain(target, quantum, MappingModel(13, 6676))
    loss = nn.functional.cross_entropy(model(torch.randn(8, 1, 28, 28)), torch.randint(0, 10, (8,)))
    loss.backward()
    assert quantum.weight.grad is not None and quantum.weight.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.mapping.parameters())
    assert all(p.grad is None for p in target.parameters())  # the target's own weights are never used
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"quantum.weight"} | {f"mapping.{n}" for n, _ in model.mapping.named_parameters()}


@pytest.mark.parametrize("center", ["tensor", "global", "none"])
def test_centring(center):
    target = TinyMLP()
    m = count_parameters(target)
    theta = torch.rand(m) + 3.0
    quantum, mapping = Fixed(torch.cat([theta, torch.zeros(8)])), Identity(m)
    model = QuantumTrain(target, quantum, mapping, center=center, weight_scale="none")
    out = model.generate_weights()
    if center == "none":
        torch.testing.assert_close(out, theta)
    elif center == "global":
        torch.testing.assert_close(out, theta - theta.mean())
    else:
        shifts = model.weight_views(out - theta)
        for name, view in model.weight_views(out).items():
            assert abs(view.mean().item()) < 1e-6, name  # each tensor has zero mean
            assert shifts[name].std().item() < 1e-6, name  # by one common shift per tensor


def test_export_is_a_plain_module_with_the_generated_weights():
    torch.manual_seed(0)
    config = Config()
    config.execution.backend, config.circuit.blocks = "torch_statevector", 2
    model = build_model(config, torch.device("cpu"))
    exported = model.export()
    assert type(exported) is MNISTCNN
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(exported(x), model(x).detach())
    assert all(p.requires_grad for p in exported.parameters())


def test_exported_state_dict_loads_without_any_quantum_package(tmp_path):
    torch.manual_seed(0)
    config = Config()
    config.execution.backend, config.circuit.blocks = "torch_statevector", 1
    model = build_model(config, torch.device("cpu"))
    torch.save(model.export().state_dict(), tmp_path / "classical_model.pt")
    expected = model(torch.ones(1, 1, 28, 28)).detach()
    code = f"""
import sys, torch
from qtrain_qiskit.targets import MNISTCNN
net = MNISTCNN()
net.load_state_dict(torch.load({str(tmp_path / "classical_model.pt")!r}, weights_only=True))
out = net(torch.ones(1, 1, 28, 28))
assert not any(name.startswith(("qiskit", "qtrain_qiskit.backends")) for name in sys.modules), "quantum code imported"
print(",".join(f"{{v:.6f}}" for v in out[0].tolist()))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    got = torch.tensor([float(v) for v in result.stdout.strip().split(",")])
    torch.testing.assert_close(got, expected[0], atol=1e-5, rtol=1e-5)


def test_cifar_target_runs_through_quantum_train():
    target = CIFARCNN()
    m = count_parameters(target)
    circuit = build_ansatz(qubits_for(m), 1)
    quantum = build_quantum_layer(
        circuit,
        backends.get_backend("torch_statevector", precision="float64"),
        "adjoint",
        torch.zeros(circuit.num_parameters),
    )
    model = QuantumTrain(target, quantum, MappingModel(qubits_for(m), m))
    assert qubits_for(m) == 14
    x = torch.randn(2, 3, 32, 32)
    out = model.eval()(x)
    assert out.shape == (2, 10)
    # the CIFAR network runs on the generated weights: torch.func on a fresh copy with those weights
    # gives the same logits (a model that kept its own random weights would not)
    with torch.no_grad():
        weights = model.weight_views(model.generate_weights())
    fresh = CIFARCNN().eval()
    torch.testing.assert_close(out.detach(), torch.func.functional_call(fresh, weights, (x,)), rtol=1e-4, atol=1e-5)
