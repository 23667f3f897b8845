"""Target networks: the classical models whose weights the circuit generates.

Any `nn.Module` can be a target. Its weights are taken, in `named_parameters()` order, as
consecutive slices of the generated vector. This module imports only torch, so an exported model
loads with no quantum package installed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class MNISTCNN(nn.Module):
    """The seed's 6,676-parameter MNIST CNN (input 1x28x28, 10 classes)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, kernel_size=3),  # 28 -> 26
            nn.ReLU(),
            nn.MaxPool2d(2),  # -> 13
            nn.Conv2d(4, 8, kernel_size=3),  # -> 11
            nn.ReLU(),
            nn.MaxPool2d(2),  # -> 5
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(8 * 5 * 5, 30), nn.ReLU(), nn.Linear(30, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class CIFARCNN(nn.Module):
    """A small CIFAR-10 CNN (input 3x32x32, 10 classes): 15,626 parameters, 14 qubits."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # -> 16
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # -> 8
            nn.Conv2d(32, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),  # -> 2x2
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * 4, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


TARGETS: dict[str, Callable[[], nn.Module]] = {"mnist_cnn": MNISTCNN, "cifar_cnn": CIFARCNN}


def build_target(name: str) -> nn.Module:
    """A fresh reference target by name; unknown names list the known ones."""
    if name not in TARGETS:
        raise ValueError(f"unknown target {name!r}; available: {', '.join(sorted(TARGETS))}")
    return TARGETS[name]()


def parameter_layout(module: nn.Module) -> list[tuple[str, torch.Size]]:
    """(name, shape) of every weight in `named_parameters()` order: how the vector is sliced."""
    return [(name, param.shape) for name, param in module.named_parameters()]


def count_parameters(module: nn.Module) -> int:
    """M: the number of weights the circuit must generate."""
    return sum(param.numel() for param in module.parameters())
