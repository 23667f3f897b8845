"""The training loop: Adam on the circuit angles and the mapping, one circuit evaluation per step.

Reads top to bottom: setup, optional resume, then per epoch train / validate / record / checkpoint,
then the test split once with the best-validation weights, export and summary. File formats live
in `rundir`; the Qiskit side lives behind `model.quantum`.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .budget import check, estimate
from .config import Config, checkpoint_interval, resolve_gradient, to_yaml
from .data import TensorData, load_dataset, resolve_data_dir, train_val_split
from .distributed import Context, check_parallel
from .model import QuantumTrain, build_model, resolve_device
from .rundir import (
    BEST_CHECKPOINT,
    CONFIG_FILE,
    CURVES_FILE,
    EXPORT_FILE,
    LAST_CHECKPOINT,
    SUMMARY_FILE,
    RunDir,
    RunDirError,
    save_figure,
)


@torch.no_grad()
def evaluate_sums(
    predict: Callable[[torch.Tensor], torch.Tensor], data: TensorData, batch_size: int, device: torch.device
) -> tuple[float, int]:
    """Summed cross-entropy and number of correct predictions of ``predict`` on ``data``."""
    loss_sum, correct = 0.0, 0
    for x, y in data.batches(batch_size, device):
        logits = predict(x)
        loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(dim=1) == y).sum().item()
    return loss_sum, correct


def evaluate(
    predict: Callable[[torch.Tensor], torch.Tensor], data: TensorData, batch_size: int, device: torch.device
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``predict`` (images -> logits) on ``data``."""
    loss_sum, correct = evaluate_sums(predict, data, batch_size, device)
    return loss_sum / len(data), correct / len(data)


@torch.no_grad()
def evaluate_model(model: QuantumTrain, data: TensorData, batch_size: int, context: Context) -> tuple[float, float]:
    """`evaluate` with the weights generated once (one circuit evaluation) for all batches.

    With several ranks each evaluates its shard of ``data`` and the sums are added.
    """
    model.eval()
    theta = model.generate_weights()
    sums = evaluate_sums(lambda x: model.run_target(theta, x), data.shard(context.part), batch_size, context.device)
    loss_sum, correct = context.sum(*sums)
    return loss_sum / len(data), correct / len(data)


def load_model_state(model: nn.Module, state: dict[str, Any], source: str) -> None:
    """Load checkpointed weights, or say in one line that they belong to another configuration."""
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[0]
        raise RunDirError(f"checkpoint {source} does not fit this configuration ({reason})") from None


class Stepper:
    """One optimizer step of a QuantumTrain model, shared by training and the benchmark.

    `backward` runs forward and backward and measures the gradient norm of each part (circuit
    angles, mapping); `update` clips with those norms (no second pass over the gradients) and
    takes the Adam step. Between the two the caller may refuse a non-finite step.

    With data parallelism, ``context.wrap`` makes the forward go through DDP, whose backward
    averages the gradients over ranks before the norms are taken: every rank clips and steps alike.
    """

    def __init__(
        self,
        model: QuantumTrain,
        lr: float,
        clip: float,
        device: torch.device,
        context: Context | None = None,
        *,
        weight_decay: float = 0.0,
        cosine_steps: int | None = None,
    ) -> None:
        self.model, self.clip = model, clip
        self.world_size = context.world_size if context else 1
        self.runner = context.wrap(model) if context else model
        quantum = [p for p in model.quantum.parameters() if p.requires_grad]  # none for a frozen circuit
        self.parts = {"quantum": quantum, "mapping": model.classical_parameters()}
        self.params = [p for part in self.parts.values() for p in part]
        fused = device.type in ("cpu", "cuda")  # one kernel for all parameters where torch has one
        self.optimizer = torch.optim.Adam(self.params, lr=lr, weight_decay=weight_decay, fused=fused or None)
        # cosine decay to zero over ``cosine_steps`` updates; the scheduler's state is checkpointed
        self.scheduler = (
            torch.optim.lr_scheduler.LambdaLR(
                self.optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, cosine_steps) / cosine_steps))
            )
            if cosine_steps
            else None
        )

    def backward(
        self, x: torch.Tensor, y: torch.Tensor, batch_total: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(summed loss, logits, gradient norm per part) of the batch, or of this rank's shard of it.

        ``batch_total`` is the size of the global batch that ``x`` is a shard of. Scaling the shard's
        summed loss by world size / batch_total makes DDP's average over ranks the gradient of the
        global batch's mean loss, even when the shards differ in size.
        """
        logits = self.runner(x)
        loss_sum = nn.functional.cross_entropy(logits, y, reduction="sum")
        self.optimizer.zero_grad(set_to_none=True)
        (loss_sum * (self.world_size / (batch_total or len(y)))).backward()
        norms = {
            name: nn.utils.get_total_norm([p.grad for p in part if p.grad is not None])
            for name, part in self.parts.items()
        }
        return loss_sum.detach(), logits, norms

    def update(self, norms: dict[str, torch.Tensor]) -> None:
        total = torch.linalg.vector_norm(torch.stack(list(norms.values())))
        nn.utils.clip_grads_with_norm_(self.params, self.clip, total)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()


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


def _quiet(message: str) -> None:
    """The log of ranks other than 0: one copy of every line is enough."""


class NonFiniteError(RuntimeError):
    """A non-finite loss or gradient under ``on_nonfinite: stop``; the last checkpoint is kept."""


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


def train(
    config: Config,
    run: RunDir,
    *,
    resume: bool = False,
    log: Callable[[str], None] = print,
    context: Context | None = None,
) -> dict[str, Any] | None:
    """Train per ``config`` into ``run`` (continuing its last checkpoint if ``resume``); return the summary.

    Under data parallelism (``context`` from `distributed.session`) every rank trains on its shards
    and validates its share; rank 0 alone writes ``run``, tests and returns the summary, the
    other ranks return None.
    """
    # --- setup: device, seeds, data, model, optimizer
    started = time.perf_counter()
    context = context or Context(device=resolve_device(config.execution.device))
    check_parallel(config, context)
    device, main = context.device, context.is_main
    if not main:
        log = _quiet
    torch.manual_seed(config.train.seed)
    root = resolve_data_dir(config.data.data_dir)
    full_train = load_dataset(config.data.dataset, root, train=True, download=config.data.download)
    train_data, val_data = train_val_split(
        full_train, config.data.val_fraction, config.data.split_seed, config.data.train_subset
    )
    test_data = load_dataset(config.data.dataset, root, train=False, download=config.data.download)

    ledger = run.job_ledger()
    model = build_model(config, device, job_ledger=ledger)
    steps_per_epoch = math.ceil(len(train_data) / config.train.batch_size)
    total_steps = min(config.train.epochs * steps_per_epoch, config.train.max_steps or math.inf)
    stepper = Stepper(
        model,
        config.train.lr,
        config.train.clip,
        device,
        context,
        weight_decay=config.train.weight_decay,
        cosine_steps=total_steps if config.train.schedule == "cosine" else None,
    )
    optimizer = stepper.optimizer
    shuffle = torch.Generator().manual_seed(config.train.seed)
    counts = model.parameter_counts()
    num_qubits = model.mapping.num_qubits
    every = checkpoint_interval(config)

    # --- resume or start
    records: list[dict[str, Any]] = []
    done_epochs, best_val, tally = 0, -math.inf, EpochTally()
    if config.train.init_from and not resume:
        origin = RunDir.existing(config.train.init_from)
        load_model_state(model, origin.load_checkpoint(BEST_CHECKPOINT)["model"], str(origin.file(BEST_CHECKPOINT)))
        log(f"initialized from {config.train.init_from}")
    if resume:
        state = run.load_checkpoint(LAST_CHECKPOINT)
        load_model_state(model, state["model"], str(run.file(LAST_CHECKPOINT)))
        optimizer.load_state_dict(state["optimizer"])
        if stepper.scheduler is not None:
            stepper.scheduler.load_state_dict(state["scheduler"])
        shuffle.set_state(state["rng"]["epoch_start"])
        torch.set_rng_state(state["rng"]["torch"])
        done_epochs, best_val, tally = state["epoch"], state["best_val_accuracy"], EpochTally(**state["tally"])
        records = [r for r in run.read_metrics() if r["epoch"] <= done_epochs]
        run.write_metrics(records)  # drop lines of an epoch that never reached its checkpoint
        log(f"resuming {run.path} after epoch {done_epochs}, step {tally.steps}")
    budget = estimate(config, steps_per_epoch, counts["quantum_params"], done_epochs * steps_per_epoch + tally.steps)
    check(budget, config)  # before anything is written or executed
    if main and not resume:
        run.write_text(CONFIG_FILE, to_yaml(config))
    if budget is not None:
        log(budget.describe())
    log(f"backend {config.execution.backend}, gradient {resolve_gradient(config)}, device {device}")
    log("parameters:\n" + compression_table(counts, num_qubits, config.circuit.blocks))
    log(f"data: {len(train_data)} train, {len(val_data)} validation, {len(test_data)} test ({config.data.dataset})")
    if context.world_size > 1:
        log(f"data parallel: {context.world_size} ranks, {config.train.batch_size} examples per step in all")

    def checkpoint(name: str, epoch: int, epoch_start: torch.Tensor) -> None:
        if not main:
            return
        run.save_checkpoint(
            name,
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": stepper.scheduler.state_dict() if stepper.scheduler is not None else None,
                "epoch": epoch,  # completed epochs; tally holds the progress into the next one
                "tally": dataclasses.asdict(tally),
                "best_val_accuracy": best_val,
                "rng": {"epoch_start": epoch_start, "torch": torch.get_rng_state()},
                "config": config.to_dict(),
            },
        )

    # --- loop
    max_steps = config.train.max_steps or math.inf
    global_step = done_epochs * steps_per_epoch + tally.steps
    for epoch in range(done_epochs + 1, config.train.epochs + 1):
        if global_step >= max_steps:
            break
        model.train()
        leg_start = time.perf_counter()
        epoch_start = shuffle.get_state()  # replaying from here reproduces this epoch's order
        batches = train_data.shards(config.train.batch_size, device, shuffle, skip=tally.steps, part=context.part)
        bar = tqdm(
            batches,
            total=steps_per_epoch,
            initial=tally.steps,
            desc=f"epoch {epoch}/{config.train.epochs}",
            leave=False,
            disable=None if main else True,
        )
        for x, y, batch_total in bar:
            if global_step >= max_steps:
                break
            step_start = time.perf_counter()
            tally.steps += 1
            global_step += 1
            ledger.context = {"epoch": epoch, "step": global_step}
            loss_sum, logits, norms = stepper.backward(x, y, batch_total)
            loss_sum, correct, seen = context.sum(loss_sum, (logits.argmax(dim=1) == y).sum(), len(y))
            values = {"loss": loss_sum / seen, **{f"{part} gradient": norm.item() for part, norm in norms.items()}}
            fault = next((what for what, value in values.items() if not math.isfinite(value)), None)
            if fault is not None:
                where = f"epoch {epoch} step {tally.steps}"
                if config.train.on_nonfinite == "stop":
                    raise NonFiniteError(f"non-finite {fault} at {where}; the last checkpoint is kept in {run.path}")
                tally.skipped += 1
                log(f"skipped {where}: non-finite {fault}")
                continue
            stepper.update(norms)
            tally.step_ms.append((time.perf_counter() - step_start) * 1e3)
            tally.loss_sum += loss_sum
            tally.correct += int(correct)
            tally.seen += int(seen)
            tally.grad_quantum += values["quantum gradient"]
            tally.grad_mapping += values["mapping gradient"]
            if every and tally.steps % every == 0 and tally.steps < steps_per_epoch:
                tally.seconds += time.perf_counter() - leg_start
                leg_start = time.perf_counter()
                checkpoint(LAST_CHECKPOINT, epoch - 1, epoch_start)

        val_loss, val_acc = evaluate_model(model, val_data, config.train.eval_batch_size, context)
        record = tally.record(epoch, val_loss, val_acc, time.perf_counter() - leg_start)
        records.append(record)
        tally = EpochTally()
        if val_acc > best_val:
            best_val = val_acc
            checkpoint(BEST_CHECKPOINT, epoch, shuffle.get_state())
        checkpoint(LAST_CHECKPOINT, epoch, shuffle.get_state())
        if main:
            run.write_metrics(records)
            plot_curves(records, run)
        log(
            f"epoch {epoch:3d}  train loss {record['train_loss']:.4f} acc {record['train_accuracy']:.4f}  "
            f"val loss {val_loss:.4f} acc {val_acc:.4f}  {record['epoch_seconds']:.1f}s "
            f"({record['median_step_ms']:.1f} ms/step)"
        )

    # --- test once, with the best-validation weights, on rank 0; export them as a plain model
    if not main:
        return None
    model.load_state_dict(run.load_checkpoint(BEST_CHECKPOINT)["model"])
    test_loss, test_acc = evaluate_model(model, test_data, config.train.eval_batch_size, Context(device=device))
    run.save_torch(EXPORT_FILE, {k: v.cpu() for k, v in model.export().state_dict().items()})
    summary = {
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "best_val_accuracy": best_val,
        **counts,
        "num_qubits": num_qubits,
        "num_blocks": config.circuit.blocks,
        "backend": config.execution.backend,
        "gradient": resolve_gradient(config),
        "features": config.model.features,
        "dataset": config.data.dataset,
        "seed": config.train.seed,
        "epochs": config.train.epochs,
        "wall_seconds": time.perf_counter() - started,  # this invocation (resumed runs: the last leg)
        "train_seconds": sum(r["epoch_seconds"] for r in records),
        "median_step_ms": statistics.median(r["median_step_ms"] for r in records if r["median_step_ms"]),
        "skipped_steps": sum(r["skipped_steps"] for r in records),
        "device": str(device),
        "world_size": context.world_size,
    }
    run.write_json(SUMMARY_FILE, summary)
    return summary


def train_or_resume(config: Config, path: str | Path, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train into ``path``, or continue the run there from its last checkpoint (sweeps and grids).

    A folder left by an attempt that died before its first checkpoint holds nothing to continue
    from and is started afresh.
    """
    import shutil

    path = Path(path)
    resume = (path / LAST_CHECKPOINT).exists()
    if path.exists() and not resume:
        shutil.rmtree(path)
    run = RunDir(path) if resume else RunDir.create(path)
    try:
        with run.lock():
            return train(config, run, resume=resume, log=log)
    finally:
        if not resume:
            run.discard_if_unused()  # a run that failed before writing anything leaves no folder
