"""Where the circuit meets autograd: the qiskit-ml network and its TorchConnector.

`ProbabilityQNN` is a qiskit-machine-learning `NeuralNetwork` (numpy in, numpy out) whose output
is the 2^N outcome probabilities and whose weights are all the circuit's angles. `VJPTorchConnector`
is a `TorchConnector` whose backward asks the network for the vector-Jacobian product when it can
give one, instead of the full (batch, 2^N, P) Jacobian that stock TorchConnector contracts.

The exact torch engine needs neither: it is differentiable torch code already, so
`TorchQuantumLayer` calls it directly and the probabilities never leave the training device.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from qiskit import QuantumCircuit
from qiskit_machine_learning.connectors import TorchConnector
from qiskit_machine_learning.neural_networks import NeuralNetwork
from torch import nn

from .backends import Backend
from .gradients import GradientMethod, for_backend


class ProbabilityQNN(NeuralNetwork):
    """Outcome probabilities of ``circuit`` on ``backend``; no inputs, every parameter a weight."""

    def __init__(
        self, circuit: QuantumCircuit, backend: Backend, *, gradient: str | GradientMethod = "adjoint"
    ) -> None:
        super().__init__(
            num_inputs=0,
            num_weights=circuit.num_parameters,
            sparse=False,
            output_shape=2**circuit.num_qubits,
            input_gradients=False,
        )
        self.circuit, self.backend = circuit, backend
        self.gradient = for_backend(gradient, backend)
        self.gradient.check(circuit, backend)

    def _forward(self, input_data: np.ndarray | None, weights: np.ndarray | None) -> np.ndarray:
        probs = self.backend.probabilities(self.circuit, weights[None])
        return np.repeat(probs, _num_samples(input_data), axis=0)

    def _backward(self, input_data: np.ndarray | None, weights: np.ndarray | None) -> tuple[None, np.ndarray]:
        jacobian = self.gradient.jacobian(self.circuit, self.backend, weights)
        return None, np.repeat(jacobian[None], _num_samples(input_data), axis=0)

    def backward_vjp(self, input_data: np.ndarray | None, weights: np.ndarray, grad_output: np.ndarray) -> np.ndarray:
        """sum over samples and outcomes of grad_output[s, k] dP_k/dtheta, shape (num_weights,)."""
        grad = np.asarray(grad_output, dtype=np.float64).reshape(-1, self.output_shape[0]).sum(axis=0)
        return self.gradient.vjp(self.circuit, self.backend, np.asarray(weights, dtype=np.float64), grad)


def _num_samples(input_data: np.ndarray | None) -> int:
    return 1 if input_data is None else input_data.shape[0]


class _VJPFunction(torch.autograd.Function):
    """P = network(weights) as an autograd node: one VJP per backward when the network gives one.

    Written here rather than borrowed from qiskit-ml's private ``_TorchNNFunction``: that one casts
    the probabilities to float32 and always contracts the full Jacobian. P stays float64 until the
    mapping chooses its own precision.
    """

    @staticmethod
    def forward(
        ctx: Any, input_data: torch.Tensor, weights: torch.Tensor, neural_network: NeuralNetwork
    ) -> torch.Tensor:
        ctx.neural_network = neural_network
        ctx.save_for_backward(input_data, weights)
        probs = neural_network.forward(input_data.detach().cpu().numpy(), weights.detach().cpu().numpy())
        probs = probs[0] if input_data.dim() == 1 else probs  # one unbatched sample in, one out
        return torch.as_tensor(probs, dtype=torch.float64, device=weights.device)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple:
        network = ctx.neural_network
        input_data, weights = (t.detach().cpu().numpy() for t in ctx.saved_tensors)
        grad = grad_output.detach().cpu().numpy()
        if hasattr(network, "backward_vjp"):
            weights_grad = network.backward_vjp(input_data, weights, grad)
        else:  # any other qiskit-ml network: contract its (samples, outputs, weights) Jacobian
            _, jacobian = network.backward(input_data, weights)
            weights_grad = np.einsum("so,sow->w", grad.reshape(jacobian.shape[:2]), jacobian)
        return None, torch.as_tensor(weights_grad, dtype=ctx.saved_tensors[1].dtype, device=grad_output.device), None


class VJPTorchConnector(TorchConnector):
    """A TorchConnector that needs one vector-Jacobian product per backward, not a Jacobian.

    Networks without ``backward_vjp`` fall back to the stock Jacobian contraction.
    """

    def forward(self, input_data: torch.Tensor | None = None) -> torch.Tensor:
        if input_data is None:
            input_data = torch.zeros(0, device=self.weight.device)
        return _VJPFunction.apply(input_data, self.weight, self.neural_network)


class TorchQuantumLayer(nn.Module):
    """The exact torch engine as a module: probabilities by differentiable torch operations."""

    def __init__(self, circuit: QuantumCircuit, backend: Backend, initial_weights: torch.Tensor) -> None:
        super().__init__()
        self.circuit, self.backend = circuit, backend
        self.weight = nn.Parameter(torch.as_tensor(initial_weights, dtype=torch.float32).clone())
        self._weights = self.weight  # TorchConnector's alias: same state_dict keys on every backend

    def forward(self) -> torch.Tensor:
        return self.backend.torch_probabilities(self.circuit, self.weight[None])[0]


def build_quantum_layer(
    circuit: QuantumCircuit, backend: Backend, gradient: str | GradientMethod, initial_weights: torch.Tensor
) -> nn.Module:
    """The module that outputs P (2^N,) from trainable angles, for this backend and gradient.

    The torch engine with ``adjoint`` differentiates natively; every other combination goes
    through the qiskit-ml network inside a `VJPTorchConnector`.
    """
    gradient = for_backend(gradient, backend)
    if backend.torch_native and gradient.name == "adjoint":
        return TorchQuantumLayer(circuit, backend, initial_weights)
    network = ProbabilityQNN(circuit, backend, gradient=gradient)
    return VJPTorchConnector(network, initial_weights=initial_weights.detach().cpu().numpy())


def _executors(layer: nn.Module) -> tuple[Backend | None, GradientMethod | None]:
    """The backend and gradient method behind a quantum layer (None where it has none)."""
    network = getattr(layer, "neural_network", layer)
    return getattr(network, "backend", None), getattr(network, "gradient", None)


def execution_state(layer: nn.Module) -> dict[str, Any]:
    """The random state of a quantum layer's sampler and gradient estimator, for checkpoints.

    A module's state_dict holds its angles, not the numpy generators that draw shots and SPSA
    directions: without this a resumed shot-based or SPSA run would draw other shots and directions
    than an uninterrupted one. Layers that execute nothing (ablations, the classical baseline) have none.
    """
    backend, gradient = _executors(layer)
    return {
        "backend": backend.random_state() if backend is not None else None,
        "gradient": gradient.state_dict() if gradient is not None else {},
    }


def load_execution_state(layer: nn.Module, state: dict[str, Any] | None) -> None:
    """Continue `execution_state`'s output (None: a checkpoint written before it was saved)."""
    if state is None:
        return
    backend, gradient = _executors(layer)
    if backend is not None:
        backend.set_random_state(state["backend"])
    if gradient is not None and state["gradient"]:
        gradient.load_state_dict(state["gradient"])
