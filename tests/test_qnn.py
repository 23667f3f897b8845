"""Gradients of the probabilities: adjoint, parameter shift and finite differences agree; the
connector asks for one vector-Jacobian product; parameter shift makes one backend call."""

import numpy as np
import pytest
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.quantum_info import Statevector
from qiskit_machine_learning.connectors import TorchConnector
from qtrain_qiskit.backends import Backend

from qtrain_qiskit import backends
from qtrain_qiskit.ansatz import build_ansatz
from qtrain_qiskit.gradients import get_gradient
from qtrain_qiskit.qnn import ProbabilityQNN, TorchQuantumLayer, VJPTorchConnector, build_quantum_layer


class CountingBackend(Backend):
    """Wraps a backend and records the batch size of every call (not registered)."""

    name = "counting"

    def __init__(self, inner: Backend) -> None:
        self.inner, self.calls = inner, []

    def _probabilities(self, circuit, values):
        self.calls.append(len(values))
        return self.inner.probabilities(circuit, values)


def central_differences(circuit, values, grad, eps=1e-5):
    sim = backends.get_backend("qiskit_statevector")
    rows = np.concatenate([values + eps * np.eye(len(values)), values - eps * np.eye(len(values))])
    plus, minus = np.split(sim.probabilities(circuit, rows), 2)
    return (plus - minus) @ grad / (2 * eps)


@pytest.mark.parametrize(
    ("backend_name", "options"), [("aer_statevector", {}), ("torch_statevector", {"precision": "float64"})]
)
def test_adjoint_param_shift_and_finite_differences_agree(backend_name, options):
    circuit = build_ansatz(5, 3, "circular")
    rng = np.random.default_rng(0)
    values, grad = rng.uniform(-np.pi, np.pi, circuit.num_parameters), rng.normal(size=32)
    backend = backends.get_backend(backend_name, **options)
    adjoint = get_gradient("adjoint").vjp(circuit, backend, values, grad)
    shift = get_gradient("param_shift").vjp(circuit, backend, values, grad)
    numeric = central_differences(circuit, values, grad)
    np.testing.assert_allclose(adjoint, shift, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(shift, numeric, rtol=1e-6, atol=1e-8)


def test_param_shift_sends_all_shifts_in_one_call():
    circuit = build_ansatz(4, 3)
    counting = CountingBackend(backends.get_backend("aer_statevector"))
    qnn = ProbabilityQNN(circuit, counting, gradient="param_shift")
    layer = VJPTorchConnector(qnn, initial_weights=np.zeros(circuit.num_parameters))
    probs = layer()
    (probs * torch.arange(16.0)).sum().backward()
    assert counting.calls == [1, 2 * circuit.num_parameters]  # one forward, one batched gradient call


def test_vjp_connector_matches_stock_torch_connector():
    circuit = build_ansatz(4, 2)
    weights = np.random.default_rng(1).uniform(-1, 1, circuit.num_parameters)
    grad = torch.randn(16)
    grads = []
    for connector in (VJPTorchConnector, TorchConnector):
        qnn = ProbabilityQNN(circuit, backends.get_backend("aer_statevector"), gradient="adjoint")
        layer = connector(qnn, initial_weights=weights)
        (layer() * grad).sum().backward()
        grads.append(layer.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-6)


def test_vjp_connector_asks_for_the_product_not_the_jacobian(monkeypatch):
    circuit = build_ansatz(3, 2)
    qnn = ProbabilityQNN(circuit, backends.get_backend("aer_statevector"))
    monkeypatch.setattr(qnn, "_backward", lambda *a: pytest.fail("full Jacobian requested"))
    layer = VJPTorchConnector(qnn, initial_weights=np.zeros(circuit.num_parameters))
    layer().sum().backward()
    assert layer.weight.grad is not None


def test_torch_layer_and_connector_give_the_same_probabilities_and_gradient():
    circuit = build_ansatz(4, 2)
    weights = torch.tensor(np.random.default_rng(2).uniform(-1, 1, circuit.num_parameters), dtype=torch.float32)
    grad = torch.randn(16)
    torch_layer = build_quantum_layer(
        circuit, backends.get_backend("torch_statevector", precision="float64"), "adjoint", weights
    )
    aer_layer = build_quantum_layer(circuit, backends.get_backend("aer_statevector"), "adjoint", weights)
    assert isinstance(torch_layer, TorchQuantumLayer) and isinstance(aer_layer, VJPTorchConnector)
    assert torch_layer.state_dict().keys() == aer_layer.state_dict().keys()  # checkpoints move between them
    outputs = []
    for layer in (torch_layer, aer_layer):
        probs = layer()
        (probs * grad).sum().backward()
        outputs.append((probs.detach().float(), layer.weight.grad))
    torch.testing.assert_close(outputs[0][0], outputs[1][0], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(outputs[0][1], outputs[1][1], rtol=1e-4, atol=1e-6)


def test_adjoint_refused_without_a_reverse_pass():
    with pytest.raises(ValueError, match=r"adjoint.*use param_shift"):
        ProbabilityQNN(build_ansatz(2, 1), backends.get_backend("qiskit_statevector"), gradient="adjoint")


def test_param_shift_refuses_shared_parameters():
    a = Parameter("a")
    circuit = QuantumCircuit(2)
    circuit.ry(a, 0)
    circuit.ry(a, 1)
    with pytest.raises(ValueError, match="exactly one gate"):
        ProbabilityQNN(circuit, backends.get_backend("aer_statevector"), gradient="param_shift")


def test_unknown_gradient_lists_known():
    with pytest.raises(ValueError, match="available: adjoint, param_shift, spsa"):
        get_gradient("magic")


def test_connector_keeps_float64_probabilities_and_its_jacobian_fallback_matches_the_vjp():
    """P reaches the mapping at Statevector's precision (the stock connector casts it to float32),
    and a network without backward_vjp gets the same gradient through its Jacobian."""
    circuit = build_ansatz(4, 2)
    weights = np.random.default_rng(3).uniform(-1, 1, circuit.num_parameters)
    qnn = ProbabilityQNN(circuit, backends.get_backend("aer_statevector"))
    layer = VJPTorchConnector(qnn, initial_weights=weights)
    probs = layer()
    exact = Statevector(circuit.assign_parameters(layer.weight.detach().double().numpy())).probabilities()
    assert probs.dtype == torch.float64
    np.testing.assert_allclose(probs.detach().numpy(), exact, rtol=0, atol=1e-12)

    class JacobianOnly(ProbabilityQNN):
        backward_vjp = property(lambda self: (_ for _ in ()).throw(AttributeError))  # hasattr() is False

    grad = torch.randn(16, dtype=torch.float64)
    grads = []
    for network in (qnn, JacobianOnly(circuit, backends.get_backend("aer_statevector"))):
        layer = VJPTorchConnector(network, initial_weights=weights)
        (layer() * grad).sum().backward()
        grads.append(layer.weight.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-6, atol=1e-8)
