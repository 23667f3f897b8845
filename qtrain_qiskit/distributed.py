"""Data-parallel training with `torch.distributed`, started by ``torchrun``: the few helpers it needs.

Each rank holds the whole QuantumTrain model, takes a disjoint shard of every global batch, and
DDP averages the gradients of the trainable parameters (circuit angles and mapping) across ranks.

Every rank evaluates the circuit and the mapping itself. On an exact backend that is
deterministic, so all ranks generate the same weights, and it costs one statevector per rank per
step, which is cheap next to the target's forward and backward on the data. The alternative,
rank 0 evaluating and broadcasting P (2^N floats) then scattering the gradient back, would trade
that compute for two collectives per step on the critical path; it only pays off where a circuit
evaluation is expensive (hardware), and paid backends are refused here instead: every rank would
submit its own jobs.

One process (no ``WORLD_SIZE`` in the environment, or 1) runs no collective at all.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class Context:
    """Where this process stands in the job: its rank among ``world_size``, and its device."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes the run directory and prints."""
        return self.rank == 0

    @property
    def part(self) -> tuple[int, int]:
        """(rank, world size): which shard of each global batch is this process's."""
        return self.rank, self.world_size

    def sum(self, *values: float | torch.Tensor) -> list[float]:
        """``values`` summed over all ranks, in one collective (as they are, with one process)."""
        if self.world_size == 1:
            return [float(value) for value in values]
        totals = torch.tensor([float(value) for value in values], dtype=torch.float64, device=self.device)
        dist.all_reduce(totals)
        return totals.tolist()

    def broadcast(self, value: object) -> object:
        """Rank 0's ``value`` on every rank (a picklable object, e.g. the run directory's path)."""
        if self.world_size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module to call for training steps: DDP around ``model`` when there are several ranks.

        Buffers are not re-broadcast every forward: they are derived from the configuration and
        identical on every rank.
        """
        if self.world_size == 1:
            return model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=False)


@contextlib.contextmanager
def session(device: torch.device) -> Iterator[Context]:
    """The process group for the job ``torchrun`` started (from its environment), torn down after.

    gloo on CPU, nccl on CUDA, where rank r of a machine uses GPU ``LOCAL_RANK``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        yield Context(device=device)
        return
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield Context(rank=dist.get_rank(), world_size=world_size, device=device)
    finally:
        dist.destroy_process_group()
