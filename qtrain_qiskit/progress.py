"""What a run reports as it goes: the parameter budget at start, per-epoch tallies, the curves."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from .rundir import CURVES_FILE, RunDir, save_figure


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
    save_figure(fig, run.file(CURVES_FILE), dpi=100)


@dataclass
class EpochTally:
    """Running sums of one epoch; saved in mid-epoch checkpoints so a resumed epoch ends the same."""

    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    grad_quantum: float = 0.0
    grad_mapping: float = 0.0
    steps: int = 0  # batches consumed, skipped ones included
    skipped: int = 0
    step_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0  # time spent in earlier legs of this epoch (before a resume)

    def record(self, epoch: int, val_loss: float, val_acc: float, seconds: float) -> dict[str, Any]:
        done = max(self.seen, 1)
        updates = max(self.steps - self.skipped, 1)
        return {
            "epoch": epoch,
            "train_loss": self.loss_sum / done,
            "train_accuracy": self.correct / done,
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "grad_norm_quantum": self.grad_quantum / updates,
            "grad_norm_mapping": self.grad_mapping / updates,
            "epoch_seconds": self.seconds + seconds,
            "median_step_ms": statistics.median(self.step_ms) if self.step_ms else None,
            "skipped_steps": self.skipped,
        }
