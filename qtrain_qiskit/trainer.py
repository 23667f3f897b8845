"""The training loop: Adam on the circuit angles and the mapping, one circuit evaluation per step.

Reads top to bottom: `setup` (data, model, optimizer), `restore` (fine-tune or resume, budget,
what the run will do), `run_epoch` (steps, validation, checkpoints, metrics) per epoch, and
`finish` (test once with the best-validation weights, export, summary). File formats live in
`rundir`, scoring in `evaluation`, the optimizer step in `stepper`, reporting in `progress`; the
Qiskit side lives behind `model.quantum`.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from . import backends
from .budget import check, estimate
from .build import build_model, resolve_device
from .config import Config, ConfigError, to_yaml
from .data import TensorData, load_dataset, resolve_data_dir, train_val_split
from .distributed import Context
from .evaluation import score
from .gradients import gradient_method
from .model import QuantumTrain
from .progress import EpochTally, compression_table, plot_curves
from .qnn import execution_state, load_execution_state
from .rundir import (
    BEST_CHECKPOINT,
    CONFIG_FILE,
    EXPORT_FILE,
    LAST_CHECKPOINT,
    SUMMARY_FILE,
    RunDir,
    RunDirError,
    load_model_state,
)
from .stepper import Stepper


def check_parallel(config: Config, context: Context) -> None:
    """Refuse data parallelism where every rank would pay for its own circuit executions."""
    if context.world_size > 1 and backends.backend_class(config.execution.backend).paid:
        raise ConfigError(
            f"backend {config.execution.backend} cannot run data parallel: every rank would submit its own jobs"
        )


def checkpoint_interval(config: Config) -> int:
    """Steps between in-epoch checkpoints: every step where executions are paid for."""
    return 1 if backends.backend_class(config.execution.backend).paid else config.train.checkpoint_every


def _quiet(message: str) -> None:
    """The log of ranks other than 0: one copy of every line is enough."""


class NonFiniteError(RuntimeError):
    """A non-finite loss or gradient under ``on_nonfinite: stop``; the last checkpoint is kept."""


@dataclass
class Session:
    """One run in progress: what `setup` builds and `restore`, `run_epoch` and `finish` advance."""

    config: Config
    run: RunDir
    context: Context
    log: Callable[[str], None]
    train_data: TensorData
    val_data: TensorData
    test_data: TensorData
    model: QuantumTrain
    stepper: Stepper
    shuffle: torch.Generator  # the epoch order; its state at an epoch's start is checkpointed
    ledger: Any  # the run's job ledger, shared with the backend: each step tags its jobs
    steps_per_epoch: int
    started: float
    records: list[dict[str, Any]] = field(default_factory=list)
    done_epochs: int = 0
    best_val: float = -math.inf
    tally: EpochTally = field(default_factory=EpochTally)
    global_step: int = 0

    def checkpoint(self, name: str, epoch: int, epoch_start: torch.Tensor) -> None:
        """Everything a resumed run needs to continue bit for bit (rank 0 writes)."""
        if not self.context.is_main:
            return
        scheduler = self.stepper.scheduler
        self.run.save_checkpoint(
            name,
            {
                "model": self.model.state_dict(),
                "optimizer": self.stepper.optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "epoch": epoch,  # completed epochs; tally holds the progress into the next one
                "tally": dataclasses.asdict(self.tally),
                "best_val_accuracy": self.best_val,
                "rng": {"epoch_start": epoch_start, "torch": torch.get_rng_state()},
                "execution": execution_state(self.model.quantum),
                "config": self.config.to_dict(),
            },
        )


def setup(config: Config, run: RunDir, context: Context, log: Callable[[str], None]) -> Session:
    """Seeds, the three splits, the model (its backend prepared) and the optimizer."""
    started = time.perf_counter()
    check_parallel(config, context)
    torch.manual_seed(config.train.seed)
    root = resolve_data_dir(config.data.data_dir)
    full_train = load_dataset(config.data.dataset, root, train=True, download=config.data.download)
    train_data, val_data = train_val_split(
        full_train, config.data.val_fraction, config.data.split_seed, config.data.train_subset
    )
    test_data = load_dataset(config.data.dataset, root, train=False, download=config.data.download)
    ledger = run.job_ledger()
    model = build_model(config, context.device, job_ledger=ledger)
    steps_per_epoch = math.ceil(len(train_data) / config.train.batch_size)
    total_steps = min(config.train.epochs * steps_per_epoch, config.train.max_steps or math.inf)
    stepper = Stepper(
        model,
        config.train.lr,
        config.train.clip,
        context.device,
        context,
        weight_decay=config.train.weight_decay,
        cosine_steps=total_steps if config.train.schedule == "cosine" else None,
    )
    shuffle = torch.Generator().manual_seed(config.train.seed)
    return Session(
        config,
        run,
        context,
        log,
        train_data,
        val_data,
        test_data,
        model,
        stepper,
        shuffle,
        ledger,
        steps_per_epoch,
        started,
    )


# Settings that change how the stored parameters become weights without changing their shapes:
# fine-tuning under another value would load without error and start from a different model.
GENERATOR_KEYS = {
    "model": (
        *("target", "features", "feature_alpha", "feature_beta", "feature_gamma", "head_bits"),
        *("activation", "center", "weight_scale", "weights_per_state"),
    ),
    "circuit": ("entanglement",),
}


def check_same_generator(origin: Config, config: Config, where: str) -> None:
    """Refuse to fine-tune from a run whose weights were generated another way (one line naming the key)."""
    for section, keys in GENERATOR_KEYS.items():
        for key in keys:
            theirs, ours = getattr(getattr(origin, section), key), getattr(getattr(config, section), key)
            if theirs != ours:
                raise RunDirError(
                    f"--init-from {where}: {section}.{key} is {theirs!r} there and {ours!r} here; "
                    "fine-tuning must generate the weights as the run did"
                )


def restore(s: Session, resume: bool) -> None:
    """Fine-tune from another run or continue this one; check the budget; say what will run."""
    config, run, log = s.config, s.run, s.log
    if config.train.init_from and not resume:
        origin = RunDir.existing(config.train.init_from)
        check_same_generator(origin.config(), config, config.train.init_from)
        state = origin.load_checkpoint(BEST_CHECKPOINT)["model"]
        load_model_state(s.model, state, str(origin.file(BEST_CHECKPOINT)))
        log(f"initialized from {config.train.init_from}")
    if resume:
        state = run.load_checkpoint(LAST_CHECKPOINT)
        load_model_state(s.model, state["model"], str(run.file(LAST_CHECKPOINT)))
        s.stepper.optimizer.load_state_dict(state["optimizer"])
        if s.stepper.scheduler is not None:
            s.stepper.scheduler.load_state_dict(state["scheduler"])
        s.shuffle.set_state(state["rng"]["epoch_start"])
        torch.set_rng_state(state["rng"]["torch"])
        load_execution_state(s.model.quantum, state.get("execution"))
        s.done_epochs, s.best_val, s.tally = state["epoch"], state["best_val_accuracy"], EpochTally(**state["tally"])
        s.records = [r for r in run.read_metrics() if r["epoch"] <= s.done_epochs]
        run.write_metrics(s.records)  # drop lines of an epoch that never reached its checkpoint
        log(f"resuming {run.path} after epoch {s.done_epochs}, step {s.tally.steps}")
    s.global_step = s.done_epochs * s.steps_per_epoch + s.tally.steps
    counts = s.model.parameter_counts()
    qubits = s.model.mapping.num_qubits
    budget = estimate(config, s.steps_per_epoch, counts["quantum_params"], s.global_step, measured_qubits=qubits)
    check(budget, config)  # before anything is written or executed
    if s.context.is_main and not resume:
        run.write_text(CONFIG_FILE, to_yaml(config))
    if budget is not None:
        log(budget.describe())
    gradient = gradient_method(config.execution.backend, config.execution.grad)
    log(f"backend {config.execution.backend}, gradient {gradient}, device {s.context.device}")
    log("parameters:\n" + compression_table(counts, s.model.mapping.num_qubits, config.circuit.blocks))
    sizes = f"{len(s.train_data)} train, {len(s.val_data)} validation, {len(s.test_data)} test"
    log(f"data: {sizes} ({config.data.dataset})")
    if s.context.world_size > 1:
        log(f"data parallel: {s.context.world_size} ranks, {config.train.batch_size} examples per step in all")


def _step(s: Session, x: torch.Tensor, y: torch.Tensor, batch_total: int, epoch: int) -> None:
    """One optimizer step, tallied; a non-finite loss or gradient stops the run or is skipped."""
    step_start = time.perf_counter()
    s.tally.steps += 1
    s.global_step += 1
    s.ledger.context = {"epoch": epoch, "step": s.global_step}
    loss_sum, logits, norms = s.stepper.backward(x, y, batch_total)
    loss_sum, correct, seen = s.context.sum(loss_sum, (logits.argmax(dim=1) == y).sum(), len(y))
    values = {"loss": loss_sum / seen, **{f"{part} gradient": norm.item() for part, norm in norms.items()}}
    fault = next((what for what, value in values.items() if not math.isfinite(value)), None)
    if fault is not None:
        where = f"epoch {epoch} step {s.tally.steps}"
        if s.config.train.on_nonfinite == "stop":
            raise NonFiniteError(f"non-finite {fault} at {where}; the last checkpoint is kept in {s.run.path}")
        s.tally.skipped += 1
        s.log(f"skipped {where}: non-finite {fault}")
        return
    s.stepper.update(norms)
    s.tally.step_ms.append((time.perf_counter() - step_start) * 1e3)
    s.tally.loss_sum += loss_sum
    s.tally.correct += int(correct)
    s.tally.seen += int(seen)
    s.tally.grad_quantum += values["quantum gradient"]
    s.tally.grad_mapping += values["mapping gradient"]


def run_epoch(s: Session, epoch: int) -> None:
    """Train one epoch (from where a resumed one stopped), validate, checkpoint and record it."""
    config, main = s.config, s.context.is_main
    every, max_steps = checkpoint_interval(config), config.train.max_steps or math.inf
    s.model.train()
    leg_start = time.perf_counter()
    epoch_start = s.shuffle.get_state()  # replaying from here reproduces this epoch's order
    batches = s.train_data.shards(
        config.train.batch_size, s.context.device, s.shuffle, skip=s.tally.steps, part=s.context.part
    )
    total = s.steps_per_epoch
    desc = f"epoch {epoch}/{config.train.epochs}"
    bar = tqdm(batches, total=total, initial=s.tally.steps, desc=desc, leave=False, disable=None if main else True)
    for x, y, batch_total in bar:
        if s.global_step >= max_steps:
            break
        _step(s, x, y, batch_total, epoch)
        if every and s.tally.steps % every == 0 and s.tally.steps < total:
            s.tally.seconds += time.perf_counter() - leg_start
            leg_start = time.perf_counter()
            s.checkpoint(LAST_CHECKPOINT, epoch - 1, epoch_start)

    val_loss, val_acc = score(s.model, s.val_data, config.train.eval_batch_size, context=s.context)
    record = s.tally.record(epoch, val_loss, val_acc, time.perf_counter() - leg_start)
    s.records.append(record)
    s.tally, s.done_epochs = EpochTally(), epoch
    if val_acc > s.best_val:
        s.best_val = val_acc
        s.checkpoint(BEST_CHECKPOINT, epoch, s.shuffle.get_state())
    s.checkpoint(LAST_CHECKPOINT, epoch, s.shuffle.get_state())
    if main:
        s.run.write_metrics(s.records)
        plot_curves(s.records, s.run)
    s.log(
        f"epoch {epoch:3d}  train loss {record['train_loss']:.4f} acc {record['train_accuracy']:.4f}  "
        f"val loss {val_loss:.4f} acc {val_acc:.4f}  {record['epoch_seconds']:.1f}s "
        f"({record['median_step_ms']:.1f} ms/step)"
    )


def finish(s: Session) -> dict[str, Any]:
    """Test once with the best-validation weights (rank 0), export them as a plain model, summarize."""
    config, run, records = s.config, s.run, s.records
    s.model.load_state_dict(run.load_checkpoint(BEST_CHECKPOINT)["model"])
    alone = Context(device=s.context.device)  # rank 0 tests the whole split
    with torch.no_grad():
        probs = s.model.quantum()  # one execution: the tested and the exported weights come from it
    test_loss, test_acc = score(s.model, s.test_data, config.train.eval_batch_size, probs=probs, context=alone)
    run.save_torch(EXPORT_FILE, {k: v.cpu() for k, v in s.model.export(probs).state_dict().items()})
    summary = {
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "best_val_accuracy": s.best_val,
        **s.model.parameter_counts(),
        "num_qubits": s.model.mapping.num_qubits,
        "num_blocks": config.circuit.blocks,
        "backend": config.execution.backend,
        "gradient": gradient_method(config.execution.backend, config.execution.grad),
        "features": config.model.features,
        "dataset": config.data.dataset,
        "seed": config.train.seed,
        "epochs": config.train.epochs,
        "wall_seconds": time.perf_counter() - s.started,  # this invocation (resumed runs: the last leg)
        "train_seconds": sum(r["epoch_seconds"] for r in records),
        "median_step_ms": statistics.median(r["median_step_ms"] for r in records if r["median_step_ms"]),
        "skipped_steps": sum(r["skipped_steps"] for r in records),
        "device": str(s.context.device),
        "world_size": s.context.world_size,
    }
    run.write_json(SUMMARY_FILE, summary)
    return summary


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
    context = context or Context(device=resolve_device(config.execution.device))
    session = setup(config, run, context, log if context.is_main else _quiet)
    restore(session, resume)
    for epoch in range(session.done_epochs + 1, config.train.epochs + 1):
        if session.global_step >= (config.train.max_steps or math.inf):
            break
        run_epoch(session, epoch)
    return finish(session) if context.is_main else None
