"""Test-split evaluation of a finished run or of an exported classical model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .config import Config, apply, load_yaml, validate
from .data import load_dataset, resolve_data_dir
from .rundir import BEST_CHECKPOINT, CONFIG_FILE, LAST_CHECKPOINT, RunDir, RunDirError, load_torch_file
from .targets import build_target
from .trainer import evaluate, evaluate_model

CHECKPOINTS = {"best": BEST_CHECKPOINT, "last": LAST_CHECKPOINT}


def run_config(run: RunDir, overrides: dict[str, Any] | None = None) -> Config:
    """The run's resolved configuration, with optional overrides (e.g. another backend)."""
    config = apply(Config(), load_yaml(run.file(CONFIG_FILE)), str(run.file(CONFIG_FILE)))
    return validate(apply(config, overrides or {}, "command line"))


def evaluate_run(
    path: str | Path, *, checkpoint: str = "best", overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Regenerate the weights from a run's checkpoint on its (or an overriding) backend, then test."""
    from .model import build_model, resolve_device

    run = RunDir.existing(path)
    config = run_config(run, overrides)
    device = resolve_device(config.execution.device)
    model = build_model(config, device)
    model.load_state_dict(run.load_checkpoint(CHECKPOINTS[checkpoint])["model"])
    data = load_dataset(
        config.data.dataset, resolve_data_dir(config.data.data_dir), train=False, download=config.data.download
    )
    loss, accuracy = evaluate_model(model, data, config.train.eval_batch_size, device)
    return {"test_accuracy": accuracy, "test_loss": loss, "backend": config.execution.backend, "checkpoint": checkpoint}


def evaluate_exported(path: str | Path, *, target: str, dataset: str, data_dir: str | None) -> dict[str, Any]:
    """Load a plain state_dict into the target network and test it: no quantum code involved."""
    model = build_target(target)
    state = load_torch_file(Path(path), "exported model")
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise RunDirError(f"{path} does not fit target {target}: {str(exc).splitlines()[0]}") from None
    data = load_dataset(dataset, resolve_data_dir(data_dir), train=False)
    model.eval()
    loss, accuracy = evaluate(model, data, 1000, torch.device("cpu"))
    return {"test_accuracy": accuracy, "test_loss": loss, "target": target}
