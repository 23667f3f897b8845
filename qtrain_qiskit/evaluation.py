"""Test-split evaluation of a finished run, on any backend, or of an exported classical model.

Evaluating a run on a sampled or hardware backend is the cheapest meaningful hardware experiment:
the circuit is sampled once, the weights are generated from the measured probabilities, and the
test accuracy is reported beside the exact one.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from .config import Config, apply, validate
from .data import load_dataset, resolve_data_dir
from .rundir import BEST_CHECKPOINT, LAST_CHECKPOINT, RunDir, RunDirError, load_torch_file
from .targets import build_target
from .trainer import evaluate, load_model_state

CHECKPOINTS = {"best": BEST_CHECKPOINT, "last": LAST_CHECKPOINT}
# The reference every sampled or noisy figure is compared with: the torch engine in float64.
EXACT_EXECUTION = {"backend": "torch_statevector", "grad": "auto", "precision": "float64"}


def total_variation(p: Any, q: Any) -> float:
    """Total-variation distance between two probability vectors (numpy arrays or tensors)."""
    return 0.5 * float(abs(p - q).sum())


def run_config(run: RunDir, overrides: dict[str, Any] | None = None) -> Config:
    """The run's resolved configuration, with optional overrides (e.g. another backend)."""
    return validate(apply(run.config(), overrides or {}, "command line"))


@torch.no_grad()
def _test(config: Config, state: dict[str, Any], data: Any, device: torch.device) -> tuple[float, float, torch.Tensor]:
    """(loss, accuracy, probabilities): one circuit execution, then the target on the test split."""
    from .model import build_model

    model = build_model(config, device)
    load_model_state(model, state, "of the run")
    model.eval()
    probs = model.quantum()
    theta = model.weights_from_probabilities(probs)
    loss, accuracy = evaluate(lambda x: model.run_target(theta, x), data, config.train.eval_batch_size, device)
    return loss, accuracy, probs.double().cpu()


def evaluate_run(path: str | Path, *, checkpoint: str = "best", overrides: dict[str, Any] | None = None) -> dict:
    """Regenerate a run's weights on its (or an overriding) backend and test them.

    On a sampled or noisy backend the exact figure (torch engine, float64) and the total-variation distance
    between the sampled and exact probabilities are reported beside it.
    """
    from . import backends
    from .model import resolve_device

    run = RunDir.existing(path)
    config = run_config(run, overrides)
    device = resolve_device(config.execution.device)
    state = run.load_checkpoint(CHECKPOINTS[checkpoint])["model"]
    data = load_dataset(
        config.data.dataset, resolve_data_dir(config.data.data_dir), train=False, download=config.data.download
    )
    result: dict[str, Any] = {"checkpoint": checkpoint, "backend": config.execution.backend}
    result["test_loss"], result["test_accuracy"], probs = _test(config, state, data, device)
    executor = backends.backend_class(config.execution.backend)
    if not executor.exact or executor.noisy:
        exact = apply(copy.deepcopy(config), EXACT_EXECUTION, "exact reference")
        result["exact_test_loss"], result["exact_test_accuracy"], exact_probs = _test(exact, state, data, device)
        result["tvd_to_exact"] = total_variation(probs, exact_probs)
        result["shots"] = None if executor.exact else config.execution.shots
    return result


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
