"""Why Quantum-Train sits at chance early: is it the start, or the directions the generator can move in?

Trains the target CNN on the quick budget (3 epochs of 2,000 MNIST images, batch 64, Adam) in a
linear subspace w = w0 + A z, z trained from zero, for four pairs (w0, A):

- the target's standard init + a random Gaussian A with as many columns as the QT model has
  trainable parameters (the "intrinsic dimension" control of Li et al., ICLR 2018);
- the QT model's generated start + the same random A: is the start itself fine?
- the QT start + J, the Jacobian of the generated weights with respect to the QT model's trainable
  parameters at step 0: Quantum-Train linearized at its start;
- the QT start + an orthonormal basis of J's column space (same span, every direction equally
  scaled): how much of the gap is the span and how much its conditioning.

`qtrain-subspace-probe` (commands/subspace_probe.py) prints the table of docs/start.md.
"""

from __future__ import annotations

import math
import tempfile

import torch
from torch.func import functional_call, jacfwd

from . import trainer
from .config import from_yaml_and_flags
from .distributed import Context
from .evaluation import evaluate
from .rundir import RunDir

CPU = torch.device("cpu")


def generator_start(
    config_file: str, seed: int, overrides: dict[str, str]
) -> tuple[trainer.Session, torch.Tensor, torch.Tensor]:
    """The quick-budget session, the QT model's generated weights at step 0 and their Jacobian (M, P)."""
    flags = {"epochs": 3, "train_subset": 2000, "seed": seed, "backend": "torch_statevector", **overrides}
    session = trainer.setup(
        from_yaml_and_flags(config_file, flags), RunDir.create(tempfile.mkdtemp() + "/r"), Context(), print
    )
    model = session.model
    model.fast_paths = model.mapping.fast_paths = False  # jacfwd needs forward-mode rules: torch's operations have them
    start = model.generate_weights().detach()  # also fixes the target_init gains
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    sizes = [p.numel() for p in trainable.values()]

    class Generator(torch.nn.Module):  # functional_call needs a module whose forward is the generator
        def __init__(self) -> None:
            super().__init__()
            self.qt = model

        def forward(self) -> torch.Tensor:
            return self.qt.generate_weights()

    def generate(flat: torch.Tensor) -> torch.Tensor:
        values = {f"qt.{n}": c.view(p.shape) for (n, p), c in zip(trainable.items(), flat.split(sizes), strict=True)}
        return functional_call(Generator(), values, (), strict=False)

    flat = torch.cat([p.detach().reshape(-1) for p in trainable.values()])
    return session, start, jacfwd(generate)(flat).float()


def subspace_accuracy(session: trainer.Session, w0: torch.Tensor, basis: torch.Tensor, lr: float, seed: int) -> float:
    """Test accuracy after the quick budget of Adam on z, with weights w0 + basis @ z."""
    model, config = session.model, session.config
    z = torch.zeros(basis.shape[1], requires_grad=True)
    optimizer = torch.optim.Adam([z], lr=lr)
    order = torch.Generator().manual_seed(seed)
    for _ in range(config.train.epochs):
        for x, y in session.train_data.batches(config.train.batch_size, CPU, order):
            loss = torch.nn.functional.cross_entropy(model.run_target(w0 + basis @ z, x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        weights = w0 + basis @ z
        return evaluate(lambda x: model.run_target(weights, x), session.test_data, 1000, CPU)[1]


def probe_rows(config_file: str, seed: int, overrides: dict[str, str], lrs: list[float]) -> list[list[str]]:
    """One row per (w0, A) pair at one seed: test accuracy after the quick budget at each lr."""
    session, start, jacobian = generator_start(config_file, seed, overrides)
    weights, params = jacobian.shape
    torch.manual_seed(seed)
    standard = torch.cat([p.detach().reshape(-1) for p in type(session.model.target)().parameters()])
    random = torch.randn(weights, params) / math.sqrt(params)  # columns of norm ~sqrt(M / P)
    orthonormal = torch.linalg.svd(jacobian.double(), full_matrices=False)[0].float() * math.sqrt(weights / params)
    pairs = {
        "standard init + random directions": (standard, random),
        "QT start + random directions": (start, random),
        "QT start + generator Jacobian J": (start, jacobian),
        "QT start + orthonormal basis of span(J)": (start, orthonormal),
    }
    return [
        [label, str(seed), *(f"{100 * subspace_accuracy(session, w0, basis, lr, seed):.1f}%" for lr in lrs)]
        for label, (w0, basis) in pairs.items()
    ]
