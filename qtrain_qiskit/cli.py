"""What the command-line front ends share: one clear line and exit status 2 for bad input."""

from __future__ import annotations

import sys
from collections.abc import Callable

from .backends import BackendError
from .config import ConfigError
from .data import DataError
from .rundir import RunDirError
from .trainer import NonFiniteError

USER_ERRORS = (ConfigError, DataError, RunDirError)


def run_main(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Call ``main``; a user error becomes ``error: <message>`` on stderr and status 2."""
    try:
        return main(argv)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (NonFiniteError, BackendError) as exc:  # the run stopped; its last checkpoint is intact
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: the last completed checkpoint is kept; continue with --resume RUN_DIR", file=sys.stderr)
        return 130
