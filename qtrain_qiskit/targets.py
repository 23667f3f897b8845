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
    """The seed's MNIST CNN (input 1x28x28, 10 classes), with widths as arguments.

    conv3x3(1 -> c1), ReLU, maxpool 2, conv3x3(c1 -> c2), ReLU, maxpool 2, flatten (c2 x 5 x 5),
    linear -> hidden, ReLU, linear -> 10 (hidden 0: straight to the 10 classes). The defaults
    (4, 8, 30) are the seed's 6,676-weight network; smaller widths are the equal-budget classical
    baselines ``cnn_<c1>_<c2>_<hidden>`` (`cnn_weights` counts them).
    """

    def __init__(self, c1: int = 4, c2: int = 8, hidden: int = 30) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, kernel_size=3),  # 28 -> 26
            nn.ReLU(),
            nn.MaxPool2d(2),  # -> 13
            nn.Conv2d(c1, c2, kernel_size=3),  # -> 11
            nn.ReLU(),
            nn.MaxPool2d(2),  # -> 5
        )
        head = [nn.Linear(c2 * 5 * 5, hidden), nn.ReLU(), nn.Linear(hidden, 10)] if hidden else [nn.Linear(c2 * 25, 10)]
        self.classifier = nn.Sequential(nn.Flatten(), *head)

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


class QTCIFARCNN(nn.Module):
    """CIFAR-10 CNN of the Quantum-Train authors' size: 285,226 weights, 19 qubits.

    Their code is not available here; this is the standard LeNet-style network (two 5x5 conv
    layers with 'same' padding and 2x2 max pooling, then 2048 -> 128 -> 64 -> 10) that has
    exactly their parameter count.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),  # -> 16
            nn.Conv2d(16, 32, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),  # -> 8
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * 8 * 8, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class MNISTMLP(nn.Module):
    """784 -> hidden -> 10 with ReLU: 795 * hidden + 10 weights, any size from 805 up.

    The scaling target: its width sets M, so a target of about 2^N weights exists for every N
    (see `mlp_for_qubits`), with a real forward and backward of matching cost.
    """

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


TARGETS: dict[str, Callable[[], nn.Module]] = {"mnist_cnn": MNISTCNN, "cifar_cnn": CIFARCNN, "qt_cifar_cnn": QTCIFARCNN}
MLP_PREFIX = "mlp_"  # mlp_<hidden>: an MNISTMLP of that width
MLP_WEIGHTS_PER_UNIT, MLP_FIXED_WEIGHTS = 28 * 28 + 1 + 10, 10
CNN_PREFIX = "cnn_"  # cnn_<c1>_<c2>_<hidden>: an MNISTCNN of those widths


def _mlp_width(name: str) -> int | None:
    """The hidden width of an ``mlp_<hidden>`` name, None for any other name."""
    width = name.removeprefix(MLP_PREFIX)
    return int(width) if name.startswith(MLP_PREFIX) and width.isdigit() and int(width) >= 1 else None


def _cnn_widths(name: str) -> tuple[int, int, int] | None:
    """(c1, c2, hidden) of a ``cnn_<c1>_<c2>_<hidden>`` name (c1, c2 >= 1, hidden >= 0), else None."""
    parts = name.removeprefix(CNN_PREFIX).split("_")
    if not name.startswith(CNN_PREFIX) or len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    c1, c2, hidden = map(int, parts)
    return (c1, c2, hidden) if c1 >= 1 and c2 >= 1 else None


def check_target(name: str) -> None:
    """Raise ValueError, listing the known names, unless ``name`` is a target `build_target` makes."""
    if name not in TARGETS and _mlp_width(name) is None and _cnn_widths(name) is None:
        raise ValueError(
            f"unknown target {name!r}; available: {', '.join(sorted(TARGETS))}, mlp_<hidden>, cnn_<c1>_<c2>_<hidden>"
        )


def build_target(name: str) -> nn.Module:
    """A fresh target by name: a reference CNN, ``mlp_<hidden>`` or ``cnn_<c1>_<c2>_<hidden>``."""
    check_target(name)
    if (width := _mlp_width(name)) is not None:
        return MNISTMLP(width)
    if (widths := _cnn_widths(name)) is not None:
        return MNISTCNN(*widths)
    return TARGETS[name]()


def cnn_weights(c1: int, c2: int, hidden: int) -> int:
    """Weights of ``cnn_<c1>_<c2>_<hidden>``: two 3x3 convolutions, then the (optional) hidden layer."""
    convs = c1 * 10 + c2 * (9 * c1 + 1)
    head = hidden * (25 * c2 + 1) + 10 * hidden + 10 if hidden else 10 * (25 * c2 + 1)
    return convs + head


def mlp_for_qubits(num_qubits: int) -> str:
    """The widest ``mlp_<hidden>`` with at most 2^N weights: N = ceil(log2 M) is then ``num_qubits``."""
    width = (2**num_qubits - MLP_FIXED_WEIGHTS) // MLP_WEIGHTS_PER_UNIT
    if width < 1 or MLP_WEIGHTS_PER_UNIT * width + MLP_FIXED_WEIGHTS <= 2 ** (num_qubits - 1):
        raise ValueError(f"no mlp_<hidden> target needs exactly {num_qubits} qubits (the smallest has 805 weights)")
    return f"{MLP_PREFIX}{width}"


def cnn_bottleneck(c1: int, c2: int, hidden: int) -> int:
    """The narrowest representation the classifier reads: the hidden layer, or the 25 c2 features."""
    return min(hidden, 25 * c2) if hidden else 25 * c2


def matched_cnn(budget: int, tolerance: float = 0.1) -> str:
    """The equal-budget member of ``cnn_<c1>_<c2>_<hidden>`` for ``budget`` trainable parameters.

    Among the members within ``tolerance`` of ``budget`` (c1 <= 8, c2 <= 16, hidden <= 64), the one
    whose narrowest layer is widest, then the closest count: at a few hundred weights the seed's
    shape (c2 = 2 c1, a dense hidden layer) leaves a hidden layer of ~3 units, narrower than the 10
    classes, and such a net trains badly (measured: cnn_2_4_3, 439 weights, 49% on MNIST).
    ValueError, naming the closest member, when none is within ``tolerance``.
    """
    candidates = [(c1, c2, hidden) for c1 in range(1, 9) for c2 in range(1, 17) for hidden in range(65)]
    within = [w for w in candidates if abs(cnn_weights(*w) - budget) <= tolerance * budget]
    if not within:
        closest = min(candidates, key=lambda w: abs(cnn_weights(*w) - budget))
        raise ValueError(
            f"no architecture within {tolerance:.0%} of {budget:,} trainable parameters in the cnn_<c1>_<c2>_<hidden> "
            f"family (closest: {CNN_PREFIX}{'_'.join(map(str, closest))} with {cnn_weights(*closest):,})"
        )
    best = min(within, key=lambda w: (-cnn_bottleneck(*w), abs(cnn_weights(*w) - budget)))
    return CNN_PREFIX + "_".join(map(str, best))


def parameter_layout(module: nn.Module) -> list[tuple[str, torch.Size]]:
    """(name, shape) of every weight in `named_parameters()` order: how the vector is sliced."""
    return [(name, param.shape) for name, param in module.named_parameters()]


def count_parameters(module: nn.Module) -> int:
    """M: the number of weights the circuit must generate."""
    return sum(param.numel() for param in module.parameters())
