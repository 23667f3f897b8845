"""Assembly of a run from its configuration: target, ansatz, backend, quantum stage, mapping, model.

The one module that reads a `Config` and calls the constructors, so that the modules below it
(model, mapping, qnn, backends) never see the configuration and the configuration holds no builders.
"""

from __future__ import annotations

import torch
from qiskit import QuantumCircuit
from torch import nn

from . import backends
from .ansatz import build_ansatz, initial_angles, qubits_for
from .backends import Backend
from .config import Config
from .gradients import GradientMethod, get_gradient, gradient_method
from .mapping import MappingModel
from .model import DirectWeights, NoCircuit, QuantumTrain
from .qnn import build_quantum_layer
from .stages import STAGES, StageInputs
from .targets import build_target, count_parameters, parameter_layout


def resolve_device(name: str) -> torch.device:
    """``auto`` picks the best device present: CUDA, then MPS, else CPU."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def build_circuit(config: Config, num_weights: int) -> QuantumCircuit:
    """The configured ansatz for a target of ``num_weights`` weights: N = ceil(log2 ceil(M / k)) unless given."""
    per_state = config.model.weights_per_state
    num_qubits = config.circuit.qubits or qubits_for(num_weights, per_state)
    entanglement = STAGES[config.model.quantum].entanglement or config.circuit.entanglement
    return build_ansatz(
        num_qubits, config.circuit.blocks, entanglement, num_weights=num_weights, weights_per_state=per_state
    )


def build_backend(config: Config, device: torch.device, *, job_ledger: object = None) -> Backend:
    """The configured backend from its validated options and the run values it declares (cheap: nothing runs)."""
    cls = backends.backend_class(config.execution.backend)
    return cls.from_options(
        backends.options_for(cls.name, config.execution), seed=config.train.seed, device=device, job_ledger=job_ledger
    )


def build_gradient(config: Config) -> GradientMethod:
    """The run's gradient method (``auto`` resolved for its backend) with its configured options."""
    execution = config.execution
    name = gradient_method(execution.backend, execution.grad)
    if name != "spsa":
        return get_gradient(name)
    return get_gradient(
        name,
        perturbation=execution.spsa_perturbation,
        decay=execution.spsa_decay,
        resamples=execution.spsa_resamples,
        seed=config.train.seed,
    )


def build_mapping(config: Config, num_qubits: int, num_weights: int) -> nn.Module:
    """The configured mapping MLP (bits only where the stage gives it no probabilities)."""
    model = config.model
    return MappingModel(
        num_qubits,
        num_weights,
        weights_per_state=model.weights_per_state,
        hidden=model.hidden,
        activation=model.activation,
        features=model.features,
        feature_alpha=model.feature_alpha,
        feature_beta=model.feature_beta,
        feature_gamma=model.feature_gamma,
        chunk=model.mapping_chunk,
        bit_init_scale=model.bit_init_scale,
        probability_input=STAGES[model.quantum].probability_input,
        head_bits=model.head_bits,
    )


def trainable_count(config: Config) -> int:
    """Trainable parameters of the configured model, counted without building a backend."""
    target = build_target(config.model.target)
    if config.model.method == "classical":
        return count_parameters(target)
    num_weights = count_parameters(target)
    circuit = build_circuit(config, num_weights)
    stage = STAGES[config.model.quantum].trainable(circuit)
    scales = len(parameter_layout(target)) if config.model.weight_scale == "learned" else 0
    return stage + count_parameters(build_mapping(config, circuit.num_qubits, num_weights)) + scales


def build_quantum(config: Config, circuit: QuantumCircuit, device: torch.device, job_ledger: object) -> nn.Module:
    """The quantum stage the configuration names: the trained circuit or one of its controls.

    The angles are drawn for every stage, used or not, so that the mapping that follows starts
    from the same random state for a given seed across the controls of a comparison.
    """
    angles = initial_angles(circuit.num_parameters, config.circuit.init, config.circuit.init_scale)

    def quantum_layer() -> nn.Module:
        backend = build_backend(config, device, job_ledger=job_ledger)
        backend.prepare(circuit)
        return build_quantum_layer(circuit, backend, build_gradient(config), angles)

    return STAGES[config.model.quantum].build(StageInputs(circuit, config.train.seed, quantum_layer))


def build_model(config: Config, device: torch.device, *, job_ledger: object = None) -> QuantumTrain:
    """Target, ansatz, backend, quantum stage and mapping as the configuration says.

    The backend is prepared here (device, credentials, compilation), before anything executes.
    """
    target = build_target(config.model.target)
    if config.model.method == "classical":
        return QuantumTrain(target, NoCircuit(), DirectWeights(target), center="none", weight_scale="none").to(device)
    num_weights = count_parameters(target)
    circuit = build_circuit(config, num_weights)
    quantum = build_quantum(config, circuit, device, job_ledger)
    mapping = build_mapping(config, circuit.num_qubits, num_weights)
    # Shot noise in training is simulated on an exact backend; a sampled one already gives the
    # mapping measured P (evaluating or fine-tuning such a run there). No distribution, no shots.
    exact = backends.backend_class(config.execution.backend).exact
    sampled_in_training = exact and STAGES[config.model.quantum].measured
    model = QuantumTrain(
        target,
        quantum,
        mapping,
        center=config.model.center,
        weight_scale=config.model.weight_scale,
        train_shots=config.train.train_shots if sampled_in_training else None,
    )
    return model.to(device)
