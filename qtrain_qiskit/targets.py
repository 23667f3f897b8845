"""Target networks: the classical models whose weights the circuit generates.

Any `nn.Module` can be a target. Its weights are taken, in `named_parameters()` order, as
consecutive slices of the generated vector. This module imports only torch, so an exported model
loads with no quantum package installed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def conv_stem(c1: int, c2: int) -> list[nn.Module]:
    """The seed CNN's feature layers on a 1x28x28 image: two (conv3x3, ReLU, maxpool 2), ending 5x5."""
    return [
        nn.Conv2d(1, c1, kernel_size=3),  # 28 -> 26
        nn.ReLU(),
        nn.MaxPool2d(2),  # -> 13
        nn.Conv2d(c1, c2, kernel_size=3),  # -> 11
        nn.ReLU(),
        nn.MaxPool2d(2),  # -> 5
    ]


class MNISTCNN(nn.Module):
    """The seed's MNIST CNN (input 1x28x28, 10 classes), with widths as arguments.

    conv3x3(1 -> c1), ReLU, maxpool 2, conv3x3(c1 -> c2), ReLU, maxpool 2, flatten (c2 x 5 x 5),
    linear -> hidden, ReLU, linear -> 10 (hidden 0: straight to the 10 classes). The defaults
    (4, 8, 30) are the seed's 6,676-weight network; smaller widths are the equal-budget classical
    baselines ``cnn_<c1>_<c2>_<hidden>`` (`cnn_weights` counts them; see also `GAPCNN`).
    """

    def __init__(self, c1: int = 4, c2: int = 8, hidden: int = 30) -> None:
        super().__init__()
        self.features = nn.Sequential(*conv_stem(c1, c2))
        head = [nn.Linear(c2 * 5 * 5, hidden), nn.ReLU(), nn.Linear(hidden, 10)] if hidden else [nn.Linear(c2 * 25, 10)]
        self.classifier = nn.Sequential(nn.Flatten(), *head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class GAPCNN(nn.Module):
    """A small all-convolutional MNIST CNN: the equal-budget baselines ``gap_<c1>_<c2>_<c3>``.

    conv3x3(1 -> c1), ReLU, maxpool 2, conv3x3(c1 -> c2), ReLU, maxpool 2, conv3x3(c2 -> c3), ReLU,
    global average pool, linear c3 -> 10. Global pooling instead of a dense layer on the flattened
    map is how small hand-designed MNIST CNNs spend a few hundred weights: every weight sits in a
    convolution, and no layer is narrower than the classes need (`cnn_weights` counts
    ``cnn_<c1>_<c2>_<hidden>``, `gap_weights` these).
    """

    def __init__(self, c1: int, c2: int, c3: int) -> None:
        super().__init__()
        self.features = nn.Sequential(*conv_stem(c1, c2), nn.Conv2d(c2, c3, kernel_size=3), nn.ReLU())  # 5 -> 3
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c3, 10))

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
GAP_PREFIX = "gap_"  # gap_<c1>_<c2>_<c3>: a GAPCNN of those widths


def _mlp_width(name: str) -> int | None:
    """The hidden width of an ``mlp_<hidden>`` name, None for any other name."""
    width = name.removeprefix(MLP_PREFIX)
    return int(width) if name.startswith(MLP_PREFIX) and width.isdigit() and int(width) >= 1 else None


def _widths(name: str, prefix: str, last_min: int) -> tuple[int, int, int] | None:
    """The three widths of ``<prefix><a>_<b>_<c>`` (a, b >= 1, c >= ``last_min``), else None."""
    parts = name.removeprefix(prefix).split("_")
    if not name.startswith(prefix) or len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    a, b, c = map(int, parts)
    return (a, b, c) if a >= 1 and b >= 1 and c >= last_min else None


def _maker(name: str) -> Callable[[], nn.Module] | None:
    """What builds target ``name``: a reference network, or a family member of the widths it names."""
    if name in TARGETS:
        return TARGETS[name]
    if (width := _mlp_width(name)) is not None:
        return lambda: MNISTMLP(width)
    if (widths := _widths(name, CNN_PREFIX, 0)) is not None:
        return lambda: MNISTCNN(*widths)
    if (widths := _widths(name, GAP_PREFIX, 1)) is not None:
        return lambda: GAPCNN(*widths)
    return None


def check_target(name: str) -> None:
    """Raise ValueError, listing the known names, unless ``name`` is a target `build_target` makes."""
    if _maker(name) is None:
        raise ValueError(
            f"unknown target {name!r}; available: {', '.join(sorted(TARGETS))}, mlp_<hidden>, "
            "cnn_<c1>_<c2>_<hidden>, gap_<c1>_<c2>_<c3>"
        )


def build_target(name: str) -> nn.Module:
    """A fresh target by name: a reference CNN or a member of a family (mlp_, cnn_, gap_)."""
    check_target(name)
    return _maker(name)()


def cnn_weights(c1: int, c2: int, hidden: int) -> int:
    """Weights of ``cnn_<c1>_<c2>_<hidden>``: two 3x3 convolutions, then the (optional) hidden layer."""
    convs = c1 * 10 + c2 * (9 * c1 + 1)
    head = hidden * (25 * c2 + 1) + 10 * hidden + 10 if hidden else 10 * (25 * c2 + 1)
    return convs + head


def gap_weights(c1: int, c2: int, c3: int) -> int:
    """Weights of ``gap_<c1>_<c2>_<c3>``: three 3x3 convolutions and the c3 -> 10 classifier."""
    return c1 * 10 + c2 * (9 * c1 + 1) + c3 * (9 * c2 + 1) + 10 * c3 + 10


def mlp_for_qubits(num_qubits: int) -> str:
    """The widest ``mlp_<hidden>`` with at most 2^N weights: N = ceil(log2 M) is then ``num_qubits``."""
    width = (2**num_qubits - MLP_FIXED_WEIGHTS) // MLP_WEIGHTS_PER_UNIT
    if width < 1 or MLP_WEIGHTS_PER_UNIT * width + MLP_FIXED_WEIGHTS <= 2 ** (num_qubits - 1):
        raise ValueError(f"no mlp_<hidden> target needs exactly {num_qubits} qubits (the smallest has 805 weights)")
    return f"{MLP_PREFIX}{width}"


def _family(prefix: str) -> list[tuple[tuple[int, int, int], int, int]]:
    """(widths, weights, narrowest layer) of every member of a baseline family searched for a match.

    ``cnn_``: c1 <= 8, c2 <= 16, hidden <= 64; the narrowest representation the classifier reads is
    the hidden layer or the 25 c2 features. ``gap_``: c1 <= c2 <= c3 <= 32; its narrowest is min c1.
    """
    if prefix == CNN_PREFIX:
        members = [(c1, c2, h) for c1 in range(1, 9) for c2 in range(1, 17) for h in range(65)]
        return [(w, cnn_weights(*w), min(w[2], 25 * w[1]) if w[2] else 25 * w[1]) for w in members]
    members = [(c1, c2, c3) for c1 in range(1, 33) for c2 in range(c1, 33) for c3 in range(c2, 33)]
    return [(w, gap_weights(*w), w[0]) for w in members]


def matched_baselines(budget: int, tolerance: float = 0.1) -> list[str]:
    """The equal-budget classical baselines for ``budget`` trainable parameters, one per family.

    In each family (``cnn_<c1>_<c2>_<hidden>``, ``gap_<c1>_<c2>_<c3>``), among the members within
    ``tolerance`` of ``budget``, the one whose narrowest layer is widest, then the closest count.
    At a few hundred weights the seed's shape (c2 = 2 c1, a dense hidden layer) leaves a hidden layer
    of ~3 units, narrower than the 10 classes, and such a net trains badly (measured: cnn_2_4_3, 439
    weights, 49% on MNIST); the widest ``cnn_`` member left (cnn_8_1_0) squeezes everything through
    one channel and lost one seed in two, hence the all-convolutional family beside it.
    ValueError, naming the closest member, when no family has one within ``tolerance``.
    """
    names, closest = [], []
    for prefix in (CNN_PREFIX, GAP_PREFIX):
        family = _family(prefix)
        within = [m for m in family if abs(m[1] - budget) <= tolerance * budget]
        if within:
            widths = min(within, key=lambda m: (-m[2], abs(m[1] - budget)))[0]
            names.append(prefix + "_".join(map(str, widths)))
        closest.append((*min(family, key=lambda m: abs(m[1] - budget)), prefix))
    if not names:
        widths, weights, _, prefix = min(closest, key=lambda m: abs(m[1] - budget))
        raise ValueError(
            f"no architecture within {tolerance:.0%} of {budget:,} trainable parameters in the cnn_<c1>_<c2>_<hidden> "
            f"or gap_<c1>_<c2>_<c3> families (closest: {prefix}{'_'.join(map(str, widths))} with {weights:,})"
        )
    return names


def parameter_layout(module: nn.Module) -> list[tuple[str, torch.Size]]:
    """(name, shape) of every weight in `named_parameters()` order: how the vector is sliced."""
    return [(name, param.shape) for name, param in module.named_parameters()]


def count_parameters(module: nn.Module) -> int:
    """M: the number of weights the circuit must generate."""
    return sum(param.numel() for param in module.parameters())
