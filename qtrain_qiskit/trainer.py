"""The training loop: Adam on the circuit angles and the mapping, one circuit evaluation per step.

Reads top to bottom: setup, optional resume, then per epoch train / validate / record / checkpoint,
then the test split once with the best-validation weights, export and summary. File formats live
in `rundir`; the Qiskit side lives behind `model.quantum`.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .config import Config, to_yaml
from .data import TensorData, load_dataset, resolve_data_dir, train_val_split
from .model import QuantumTrain, build_model, resolve_device
from .rundir import (
    BEST_CHECKPOINT,
    CONFIG_FILE,
    CURVES_FILE,
    EXPORT_FILE,
    LAST_CHECKPOINT,
    SUMMARY_FILE,
    RunDir,
)


@torch.no_grad()
def evaluate(
    predict: Callable[[torch.Tensor], torch.Tensor], data: TensorData, batch_size: int, device: torch.device
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``predict`` (images -> logits) on ``data``."""
    loss_sum, correct = 0.0, 0
    for x, y in data.batches(batch_size, device):
        logits = predict(x)
        loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(dim=1) == y).sum().item()
    return loss_sum / len(data), correct / len(data)


@torch.no_grad()
def evaluate_model(model: QuantumTrain, data: TensorData, batch_size: int, device: torch.device) -> tuple[float, float]:
    """`evaluate` with the weights generated once (one circuit evaluation) for all batches."""
    model.eval()
    theta = model.generate_weights()
    return evaluate(lambda x: model.run_target(theta, x), data, batch_size, device)


def _grad_norm(parameters: list[nn.Parameter]) -> float:
    grads = [p.grad for p in parameters if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item() if grads else 0.0


def compression_table(counts: dict[str, int], num_qubits: int, num_blocks: int) -> str:
    """The parameter budget printed at start: what is trained versus what it stands for."""
    ratio = counts["target_params"] / counts["trainable_params"]
    rows = [
        ("quantum (circuit angles)", f"{counts['quantum_params']:,}", f"{num_qubits} qubits x {num_blocks} blocks"),
        ("mapping MLP", f"{counts['mapping_params']:,}", ""),
        ("total trainable", f"{counts['trainable_params']:,}", ""),
        ("target model M", f"{counts['target_params']:,}", f"2^{num_qubits} = {2**num_qubits} outcomes"),
        ("compression M / trainable", f"{ratio:.1f}x", ""),
    ]
    return "\n".join(f"  {name:<27}{value:>10}  {note}" for name, value, note in rows)


def plot_curves(records: list[dict[str, Any]], run: RunDir) -> None:
    """Loss and accuracy per epoch, train and validation, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in records]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for split in ("train", "val"):
        ax_loss.plot(epochs, [r[f"{split}_loss"] for r in records], marker=".", label=split)
        ax_acc.plot(epochs, [r[f"{split}_accuracy"] for r in records], marker=".", label=split)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    from .rundir import write_atomic

    write_atomic(run.file(CURVES_FILE), lambda handle: fig.savefig(handle, format="png", dpi=100))
    plt.close(fig)


def train(config: Config, run: RunDir, *, resume: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train per ``config`` into ``run`` (continuing its last checkpoint if ``resume``); return the summary."""
    # --- setup: device, seeds, data, model, optimizer
    started = time.perf_counter()
    device = resolve_device(config.execution.device)
    torch.manual_seed(config.train.seed)
    root = resolve_data_dir(config.data.data_dir)
    full_train = load_dataset(config.data.dataset, root, train=True)
    train_data, val_data = train_val_split(
        full_train, config.data.val_fraction, config.data.split_seed, config.data.train_subset
    )
    test_data = load_dataset(config.data.dataset, root, train=False)

    model = build_model(config, device)
    quantum_params = list(model.quantum.parameters())
    mapping_params = list(model.mapping.parameters())
    trainable = quantum_params + mapping_params
    optimizer = torch.optim.Adam(trainable, lr=config.train.lr)
    shuffle = torch.Generator().manual_seed(config.train.seed)
    counts = model.parameter_counts()
    num_qubits = model.mapping.num_qubits

    # --- resume or start
    records: list[dict[str, Any]] = []
    start_epoch, best_val = 0, -math.inf
    if resume:
        state = run.load_checkpoint(LAST_CHECKPOINT)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        shuffle.set_state(state["rng"]["shuffle"])
        torch.set_rng_state(state["rng"]["torch"])
        start_epoch, best_val = state["epoch"], state["best_val_accuracy"]
        records = [r for r in run.read_metrics() if r["epoch"] <= start_epoch]
        run.write_metrics(records)  # drop lines of an epoch that never reached its checkpoint
        log(f"resuming {run.path} after epoch {start_epoch}")
    else:
        run.write_text(CONFIG_FILE, to_yaml(config))
    log(f"backend {config.execution.backend}, gradient {config.execution.grad}, device {device}")
    log("parameters:\n" + compression_table(counts, num_qubits, config.circuit.blocks))
    log(f"data: {len(train_data)} train, {len(val_data)} validation, {len(test_data)} test ({config.data.dataset})")

    # --- loop
    step_ms: list[float] = []
    for epoch in range(start_epoch + 1, config.train.epochs + 1):
        model.train()
        epoch_start = time.perf_counter()
        loss_sum, correct, seen, grad_q, grad_m, epoch_steps = 0.0, 0, 0, 0.0, 0.0, []
        batches = train_data.batches(config.train.batch_size, device, shuffle)
        total = math.ceil(len(train_data) / config.train.batch_size)
        for x, y in tqdm(batches, total=total, desc=f"epoch {epoch}/{config.train.epochs}", leave=False, disable=None):
            step_start = time.perf_counter()
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_q += _grad_norm(quantum_params)
            grad_m += _grad_norm(mapping_params)
            nn.utils.clip_grad_norm_(trainable, config.train.clip)
            optimizer.step()
            epoch_steps.append((time.perf_counter() - step_start) * 1e3)
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(dim=1) == y).sum().item()
            seen += len(y)

        val_loss, val_acc = evaluate_model(model, val_data, config.train.eval_batch_size, device)
        step_ms += epoch_steps
        record = {
            "epoch": epoch,
            "train_loss": loss_sum / seen,
            "train_accuracy": correct / seen,
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "grad_norm_quantum": grad_q / len(epoch_steps),
            "grad_norm_mapping": grad_m / len(epoch_steps),
            "epoch_seconds": time.perf_counter() - epoch_start,
            "median_step_ms": statistics.median(epoch_steps),
        }
        records.append(record)
        run.write_metrics(records)
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": epoch,
            "best_val_accuracy": max(best_val, val_acc),
            "rng": {"shuffle": shuffle.get_state(), "torch": torch.get_rng_state()},
            "config": config.to_dict(),
        }
        if val_acc > best_val:
            best_val = val_acc
            run.save_checkpoint(BEST_CHECKPOINT, state)
        run.save_checkpoint(LAST_CHECKPOINT, state)
        plot_curves(records, run)
        log(
            f"epoch {epoch:3d}  train loss {record['train_loss']:.4f} acc {record['train_accuracy']:.4f}  "
            f"val loss {val_loss:.4f} acc {val_acc:.4f}  {record['epoch_seconds']:.1f}s "
            f"({record['median_step_ms']:.1f} ms/step)"
        )

    # --- test once, with the best-validation weights; export them as a plain model
    model.load_state_dict(run.load_checkpoint(BEST_CHECKPOINT)["model"])
    test_loss, test_acc = evaluate_model(model, test_data, config.train.eval_batch_size, device)
    run.save_torch(EXPORT_FILE, {k: v.cpu() for k, v in model.export().state_dict().items()})
    summary = {
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "best_val_accuracy": best_val,
        **counts,
        "num_qubits": num_qubits,
        "num_blocks": config.circuit.blocks,
        "backend": config.execution.backend,
        "gradient": config.execution.grad,
        "features": config.model.features,
        "dataset": config.data.dataset,
        "seed": config.train.seed,
        "epochs": config.train.epochs,
        "wall_seconds": time.perf_counter() - started,  # this invocation (resumed runs: the last leg)
        "train_seconds": sum(r["epoch_seconds"] for r in records),
        "median_step_ms": statistics.median(step_ms) if step_ms else records[-1]["median_step_ms"],
        "device": str(device),
    }
    run.write_json(SUMMARY_FILE, summary)
    return summary
