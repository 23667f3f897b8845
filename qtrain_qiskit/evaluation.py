"""Test-split evaluation of a finished run, on any backend, or of an exported classical model.

Evaluating a run on a sampled or hardware backend is the cheapest meaningful hardware experiment:
the circuit is sampled once, the weights are generated from the measured probabilities, and the
test accuracy is reported beside the exact one.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .config import Config, apply, validate
from .data import load_dataset, resolve_data_dir
from .distributed import Context
from .rundir import BEST_CHECKPOINT, LAST_CHECKPOINT, RunDir, RunDirError, load_model_state, load_torch_file
from .targets import build_target

if TYPE_CHECKING:
    from .data import TensorData
    from .model import QuantumTrain

CHECKPOINTS = {"best": BEST_CHECKPOINT, "last": LAST_CHECKPOINT}
# The reference every sampled or noisy figure is compared with: the torch engine in float64.
EXACT_EXECUTION = {"backend": "torch_statevector", "grad": "auto", "precision": "float64"}


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
def score(
    model: QuantumTrain,
    data: TensorData,
    batch_size: int,
    *,
    probs: torch.Tensor | None = None,
    context: Context | None = None,
) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` on ``data``, its weights generated once for all batches.

    The weights come from ``probs`` when given (a distribution measured on a device or under noise),
    else from one evaluation of the model's circuit. With several ranks (``context``) each scores its
    shard and the sums are added. Training, `evaluate_run` and the noise sweep all score through here.
    """
    context = context or Context(device=next(model.buffers(), torch.empty(0)).device)
    model.eval()
    theta = model.weights_from_probabilities(model.quantum() if probs is None else probs)
    sums = evaluate_sums(lambda x: model.run_target(theta, x), data.shard(context.part), batch_size, context.device)
    loss_sum, correct = context.sum(*sums)
    return loss_sum / len(data), correct / len(data)


def total_variation(p: Any, q: Any) -> float:
    """Total-variation distance between two probability vectors (numpy arrays or tensors)."""
    return 0.5 * float(abs(p - q).sum())


def run_config(run: RunDir, overrides: dict[str, Any] | None = None) -> Config:
    """The run's resolved configuration, with optional overrides (e.g. another backend)."""
    return validate(apply(run.config(), overrides or {}, "command line"))


def restore(config: Config, state: dict[str, Any], device: torch.device) -> QuantumTrain:
    """The run's model built for ``config`` (its backend, say) with the checkpoint's ``state``."""
    from .build import build_model

    model = build_model(config, device)
    load_model_state(model, state, "of the run")
    return model


def test_split(config: Config) -> TensorData:
    """The run's test split (downloaded as torchvision does where allowed)."""
    return load_dataset(
        config.data.dataset, resolve_data_dir(config.data.data_dir), train=False, download=config.data.download
    )


def _test(config: Config, state: dict[str, Any], data: Any, device: torch.device) -> tuple[float, float, torch.Tensor]:
    """(loss, accuracy, probabilities): one circuit execution, then the target on the test split."""
    model = restore(config, state, device)
    with torch.no_grad():
        probs = model.quantum()
    loss, accuracy = score(model, data, config.train.eval_batch_size, probs=probs)
    return loss, accuracy, probs.double().cpu()


def evaluate_run(path: str | Path, *, checkpoint: str = "best", overrides: dict[str, Any] | None = None) -> dict:
    """Regenerate a run's weights on its (or an overriding) backend and test them.

    On a sampled or noisy backend the exact figure (torch engine, float64) and the total-variation distance
    between the sampled and exact probabilities are reported beside it.
    """
    from . import backends
    from .build import resolve_device

    run = RunDir.existing(path)
    config = run_config(run, overrides)
    device = resolve_device(config.execution.device)
    state = run.load_checkpoint(CHECKPOINTS[checkpoint])["model"]
    data = test_split(config)
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
