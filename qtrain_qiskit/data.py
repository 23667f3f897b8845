"""Datasets as in-memory tensors: splits, batches, data-root resolution, clear offline errors.

The reference datasets are small enough to hold as uint8 tensors, so batches are index gathers
normalized on the fly: no DataLoader workers, nothing between the optimizer and the next step.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision import datasets

DATA_DIR_ENV = "QTRAIN_DATA_DIR"
DEFAULT_DATA_DIR = "data"

# name -> (torchvision class, per-channel mean, per-channel std): the usual normalizations.
DATASETS = {
    "mnist": (datasets.MNIST, (0.1307,), (0.3081,)),
    "fashion_mnist": (datasets.FashionMNIST, (0.2860,), (0.3530,)),
    "cifar10": (datasets.CIFAR10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}


class DataError(RuntimeError):
    """Data missing or unreadable: reported as one line, exit status 2."""


@dataclass
class TensorData:
    """Images as uint8 (N, C, H, W), labels as int64 (N,), and the normalization to apply."""

    images: torch.Tensor
    labels: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> TensorData:
        return TensorData(self.images[index], self.labels[index], self.mean, self.std)

    def batch(self, index: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalized float images and labels of the rows in ``index``, on ``device``."""
        x = self.images[index].to(device=device, dtype=torch.float32).div_(255)
        return (x - self.mean.to(device)) / self.std.to(device), self.labels[index].to(device)

    def batches(
        self, batch_size: int, device: torch.device, generator: torch.Generator | None = None, *, skip: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Mini-batches in order, or shuffled by ``generator``; the last one may be smaller.

        ``skip`` drops the first batches of the same order (resuming inside an epoch).
        """
        for x, y, _ in self.shards(batch_size, device, generator, skip=skip):
            yield x, y

    def shards(
        self,
        batch_size: int,
        device: torch.device,
        generator: torch.Generator | None = None,
        *,
        skip: int = 0,
        part: tuple[int, int] = (0, 1),
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        """(images, labels, global batch size): shard ``rank`` of ``world`` (``part``) of each batch.

        Every rank draws the same order from an identically seeded ``generator``, so the shards of
        a global batch are disjoint and together are exactly the batch one process would take.
        """
        rank, world = part
        order = torch.randperm(len(self), generator=generator) if generator is not None else torch.arange(len(self))
        for start in range(skip * batch_size, len(self), batch_size):
            index = order[start : start + batch_size]
            yield (*self.batch(index.tensor_split(world)[rank], device), len(index))

    def shard(self, part: tuple[int, int]) -> TensorData:
        """Every ``world``-th example from ``rank`` on: this rank's share of an evaluation."""
        rank, world = part
        return self if world == 1 else self.subset(torch.arange(rank, len(self), world))


def resolve_data_dir(data_dir: str | None) -> Path:
    """--data-dir, else $QTRAIN_DATA_DIR, else ./data."""
    return Path(data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


def load_dataset(name: str, root: Path, *, train: bool, download: bool = True) -> TensorData:
    """One official split, read from ``root`` or (if ``download``) downloaded there as torchvision does.

    Offline with no data, the error names the root and how to point at the data instead.
    """
    cls, mean, std = DATASETS[name]
    split = "train" if train else "test"
    hint = f"pass --data-dir or set {DATA_DIR_ENV} to a folder holding it"
    try:
        dataset = cls(str(root), train=train, download=False)
    except RuntimeError:
        if not download:
            raise DataError(f"{name} {split} split not found under {root} (downloads are off); {hint}") from None
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                dataset = cls(str(root), train=train, download=True)
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(
                f"{name} {split} split not found under {root} and could not be downloaded ({reason}); {hint}"
            ) from None
    except Exception as exc:
        raise DataError(f"{name} {split} split under {root} is unreadable: {exc}") from None
    images = torch.as_tensor(dataset.data)
    images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)  # -> (N, C, H, W)
    labels = torch.as_tensor(dataset.targets, dtype=torch.int64)
    shape = (1, len(mean), 1, 1)
    return TensorData(images.contiguous(), labels, torch.tensor(mean).view(shape), torch.tensor(std).view(shape))


def train_val_split(
    data: TensorData, val_fraction: float, seed: int, train_subset: int | None = None
) -> tuple[TensorData, TensorData]:
    """Fixed-seed shuffle, then (1 - val_fraction) for training and the rest for validation.

    ``train_subset`` keeps only the first N training images; validation stays whole.
    """
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    n_val = round(len(data) * val_fraction)
    train_index, val_index = order[n_val:], order[:n_val]
    if train_subset is not None:
        train_index = train_index[:train_subset]
    return data.subset(train_index), data.subset(val_index)
