"""One optimizer step of a QuantumTrain model: forward, backward, per-part gradient norms, clip, Adam."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from .distributed import Context
    from .model import QuantumTrain


SCHEDULES = ("constant", "cosine")  # learning-rate schedules `Stepper` implements
NONFINITE_POLICIES = ("stop", "skip")  # what the trainer does with a step whose loss or gradient is not finite


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
