"""Step-time measurement: a real training step (forward, backward, clip, Adam) on the seed config.

Inputs are random tensors of the dataset's shape: step time does not depend on pixel values, and
the benchmark then needs no data on disk.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import torch

from .config import Config
from .model import build_backend, build_circuit, build_model, resolve_device
from .trainer import Stepper

INPUT_SHAPES = {"mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


def time_steps(config: Config, steps: int, warmup: int = 3) -> dict[str, Any]:
    """Median and spread of ``steps`` timed training steps after ``warmup`` untimed ones."""
    device = resolve_device(config.execution.device)
    torch.manual_seed(config.train.seed)
    model = build_model(config, device)
    stepper = Stepper(model, config.train.lr, config.train.clip, device)
    x = torch.randn(config.train.batch_size, *INPUT_SHAPES[config.data.dataset], device=device)
    y = torch.randint(0, 10, (config.train.batch_size,), device=device)

    def step() -> None:  # what the trainer does per step, less its bookkeeping
        _, _, norms = stepper.backward(x, y)
        stepper.update(norms)
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
    quartiles = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return {
        "backend": config.execution.backend,
        "grad": config.execution.grad,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "num_qubits": model.mapping.num_qubits,
        "num_blocks": config.circuit.blocks,
        "batch_size": config.train.batch_size,
        "steps": steps,
        "median_step_ms": statistics.median(times),
        "p25_step_ms": quartiles[0],
        "p75_step_ms": quartiles[2],
        **model.parameter_counts(),
    }


def time_evaluations(config: Config, repeats: int) -> dict[str, Any]:
    """One-time preparation and the median time of one circuit evaluation (the circuit sampled once)."""
    from .targets import build_target, count_parameters

    circuit = build_circuit(config, count_parameters(build_target(config.model.target)))
    values = np.random.default_rng(config.train.seed).uniform(-np.pi, np.pi, (1, circuit.num_parameters))
    start = time.perf_counter()
    backend = build_backend(config, resolve_device(config.execution.device))
    backend.prepare(circuit)
    prepare_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        backend.probabilities(circuit, values)
        times.append(time.perf_counter() - start)
    return {
        "backend": config.execution.backend,
        "noise": config.execution.noise if config.execution.backend == "aer_noisy" else None,
        "shots": None if backend.exact else config.execution.shots,
        "num_qubits": circuit.num_qubits,
        "num_blocks": config.circuit.blocks,
        "repeats": repeats,
        "prepare_s": prepare_s,
        "median_evaluation_s": statistics.median(times),
    }
