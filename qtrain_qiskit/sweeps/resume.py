"""A training cell of a sweep or grid: trained once, continued after an interruption."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import Config
from ..rundir import LAST_CHECKPOINT, RunDir
from ..trainer import train


def train_or_resume(config: Config, path: str | Path, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train into ``path``, or continue the run there from its last checkpoint (sweeps and grids).

    A folder left by an attempt that died before its first checkpoint holds nothing to continue
    from and is started afresh.
    """
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
