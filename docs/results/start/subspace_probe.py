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

    QTRAIN_DATA_DIR=../shared/data python docs/results/start/subspace_probe.py configs/mnist_425.yaml --seeds 0 1
    ... configs/mnist_425.yaml --seeds 0 1 --set weights_per_state=16 hidden=12   # k = 16, 412 parameters
"""

from __future__ import annotations

import argparse
import math
import tempfile

import torch
from torch.func import functional_call, jacfwd

from qtrain_qiskit import trainer
from qtrain_qiskit.config import from_yaml_and_flags
from qtrain_qiskit.distributed import Context
from qtrain_qiskit.evaluation import evaluate
from qtrain_qiskit.rundir import RunDir

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 1e-2, 3e-2])
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="configuration overrides")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"| {args.config} {' '.join(args.set)} | seed | " + " | ".join(f"lr {lr:g}" for lr in args.lrs) + " |")
    print("|---|---|" + "---|" * len(args.lrs))
    for seed in args.seeds:
        session, start, jacobian = generator_start(args.config, seed, dict(kv.split("=", 1) for kv in args.set))
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
        for label, (w0, basis) in pairs.items():
            accuracies = [subspace_accuracy(session, w0, basis, lr, seed) for lr in args.lrs]
            print(f"| {label} | {seed} | " + " | ".join(f"{100 * a:.1f}%" for a in accuracies) + " |", flush=True)


if __name__ == "__main__":
    main()
