"""Everything written to or read from a run directory: fixed names, atomic writes, versioned files.

A run directory is self-describing: the resolved config, one metrics line per epoch, checkpoints
(trainable state, optimizer, epoch, RNG state, config, package version, format version), the
summary, the training curves and the exported classical model. Every file is written to a
temporary name, flushed and renamed, so a crash never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pickle
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import torch

if TYPE_CHECKING:
    from .config import Config

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
LAST_CHECKPOINT = "checkpoint_last.pt"
BEST_CHECKPOINT = "checkpoint_best.pt"
CURVES_FILE = "curves.png"
EXPORT_FILE = "classical_model.pt"
LOCK_FILE = ".lock"
JOBS_FILE = "jobs.jsonl"  # hardware job ids, one line per submission
CHECKPOINT_FORMAT = 1  # bump when the checkpoint layout changes


class RunDirError(RuntimeError):
    """A run directory or file that cannot be used: reported as one line, exit status 2."""


def write_atomic(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write through ``write(file)`` to a temporary sibling, fsync, then rename over ``path``.

    A failure to write (full disk, read-only folder) leaves the old ``path`` untouched and is one
    RunDirError line naming the file, not an OSError traceback.
    """
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o644)  # mkstemp creates 0600; run files are meant to be shared
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise RunDirError(
                f"cannot write {path}: {exc.strerror or exc}; every file written before it is intact "
                "(a run continues with --resume)"
            ) from None
        raise


def write_text(path: Path, text: str) -> None:
    """``text`` written to ``path`` atomically (`write_atomic`): a reader sees the old file or the new one."""
    write_atomic(path, lambda handle: handle.write(text.encode()))


def save_figure(fig: Any, path: Path, dpi: int = 110) -> None:
    """A matplotlib figure as PNG at ``path``, written atomically, then closed."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    write_atomic(path, lambda handle: fig.savefig(handle, format="png", dpi=dpi))
    plt.close(fig)


def load_torch_file(path: Path, what: str) -> Any:
    """``torch.load`` restricted to tensors and plain containers; bad files are one clear line."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # foreign pickles warn before they fail
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RunDirError(f"{what} not found: {path}") from None
    except pickle.UnpicklingError:
        raise RunDirError(f"{what} {path} is not a readable checkpoint (it holds objects other than tensors)") from None
    except Exception as exc:  # truncated and foreign files fail in many ways
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunDirError(f"{what} {path} is not a readable checkpoint ({reason[:200]})") from None


class RunDir:
    """One training run's folder."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def create(cls, path: str | Path) -> RunDir:
        """A new run directory; an existing non-empty one is refused, never overwritten."""
        run = cls(path)
        if run.path.exists() and any(run.path.iterdir()):
            raise RunDirError(f"run directory {run.path} already exists; pass --resume {run.path} to continue it")
        run.path.mkdir(parents=True, exist_ok=True)
        return run

    @classmethod
    def existing(cls, path: str | Path) -> RunDir:
        """A run directory written by `create` and training (it holds a config)."""
        run = cls(path)
        if not (run.path / CONFIG_FILE).is_file():
            raise RunDirError(f"{run.path} is not a run directory (no {CONFIG_FILE})")
        return run

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run directory exclusively: a second process writing the same run is refused."""
        handle = open(self.file(LOCK_FILE), "a+")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunDirError(f"run directory {self.path} is in use by another process") from None
            yield
        finally:
            handle.close()  # releases the lock

    def discard_if_unused(self) -> None:
        """Remove the directory if nothing but the lock was ever written to it."""
        if self.path.is_dir() and {p.name for p in self.path.iterdir()} <= {LOCK_FILE}:
            self.file(LOCK_FILE).unlink(missing_ok=True)
            self.path.rmdir()

    def config(self) -> Config:
        """The configuration the run was started with (unvalidated: callers may override, then validate)."""
        from .config import Config, apply, load_yaml

        return apply(Config(), load_yaml(self.file(CONFIG_FILE)), str(self.file(CONFIG_FILE)))

    def file(self, name: str) -> Path:
        return self.path / name

    def write_text(self, name: str, text: str) -> None:
        write_text(self.file(name), text)

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        self.write_text(name, json.dumps(data, indent=2) + "\n")

    def save_torch(self, name: str, obj: Any) -> None:
        write_atomic(self.file(name), lambda handle: torch.save(obj, handle))

    # --- metrics: one JSON line per epoch
    def read_metrics(self) -> list[dict[str, Any]]:
        path = self.file(METRICS_FILE)
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def write_metrics(self, records: list[dict[str, Any]]) -> None:
        """Rewrite the whole metrics file atomically (cheap: one short line per epoch)."""
        self.write_text(METRICS_FILE, "".join(json.dumps(record) + "\n" for record in records))

    # --- checkpoints
    def save_checkpoint(self, name: str, payload: dict[str, Any]) -> None:
        from . import __version__

        self.save_torch(name, {"format": CHECKPOINT_FORMAT, "package_version": __version__, **payload})

    def load_checkpoint(self, name: str) -> dict[str, Any]:
        return load_checkpoint_file(self.file(name))

    def job_ledger(self) -> JobLedgerFile:
        return JobLedgerFile(self.file(JOBS_FILE))


class JobLedgerFile:
    """The run's record of submitted hardware jobs: request digest -> job id, with the step.

    Lines are appended and fsynced as each job is submitted, before its result is awaited, so a
    run killed while waiting still knows which job to fetch when it resumes.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.context: dict[str, Any] = {}  # set by the trainer: epoch and step of the next submissions
        lines = path.read_text().splitlines() if path.exists() else []
        self._jobs = {entry["key"]: entry["job_id"] for entry in map(json.loads, filter(None, lines))}

    def lookup(self, key: str) -> str | None:
        return self._jobs.get(key)

    def record(self, key: str, job_id: str, info: dict[str, Any]) -> None:
        entry = {"key": key, "job_id": job_id, **self.context, **info, "time": time.time()}
        with open(self.path, "a") as handle:
            handle.write(json.dumps(entry) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self._jobs[key] = job_id


def load_checkpoint_file(path: Path) -> dict[str, Any]:
    """A checkpoint of this package's current format, or a one-line error naming the problem."""
    data = load_torch_file(path, "checkpoint")
    if not isinstance(data, dict) or "format" not in data:
        raise RunDirError(f"checkpoint {path} was not written by qtrain-qiskit")
    if data["format"] != CHECKPOINT_FORMAT:
        raise RunDirError(f"checkpoint {path} has format {data['format']}, this version reads {CHECKPOINT_FORMAT}")
    return data


def load_model_state(model: torch.nn.Module, state: dict[str, Any], source: str) -> None:
    """Load checkpointed weights, or say in one line that they belong to another configuration."""
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[0]
        raise RunDirError(f"checkpoint {source} does not fit this configuration ({reason})") from None
