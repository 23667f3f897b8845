"""The results file of a sweep: one CSV row per finished (cell, repeat), appended, never rewritten.

Appending one whole line per result and syncing it is what makes a sweep resumable: a rerun reads
which (cell, repeat) pairs are done and skips them. A line cut short by a crash is ignored on
reading (its cell simply runs again) and closed with a newline before the next append.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class ResultFile:
    """Append-only CSV with a fixed header; rows are dicts keyed by ``columns``."""

    def __init__(self, path: str | Path, columns: Sequence[str]) -> None:
        self.path, self.columns = Path(path), list(columns)

    def rows(self) -> list[dict[str, str]]:
        """Complete rows written so far (a torn last line is skipped)."""
        if not self.path.exists():
            return []
        with self.path.open(newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                return []
            if header != self.columns:
                raise ValueError(f"{self.path} has columns {header}, expected {self.columns}")
            return [dict(zip(header, row, strict=True)) for row in reader if len(row) == len(header)]

    def append(self, row: dict[str, Any]) -> None:
        """Write one row durably (flush + fsync) before the caller moves on."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        if fresh:
            writer.writerow(self.columns)
        elif not self.path.read_bytes().endswith(b"\n"):
            buffer.write("\n")  # close a line torn by a crash; the reader drops it
        writer.writerow([_format(row.get(column)) for column in self.columns])
        with self.path.open("a", newline="") as handle:
            handle.write(buffer.getvalue())
            handle.flush()
            os.fsync(handle.fileno())


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)
