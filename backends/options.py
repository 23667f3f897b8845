"""What a backend takes from the run configuration: one frozen dataclass per backend, declared once.

Each field is a configuration key under ``execution:`` and a command-line flag (``shots`` ->
``--shots``), with its help text, default and constraints in the field's metadata, so the CLI is
generated from the registered backends and a new backend's option needs no edit elsewhere. An
options object checks itself when it is made and names the offending key in one line. Keys that
several backends read (``shots``) live in one small dataclass that their options inherit, so a
key has one declaration, one default and one meaning.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Values of the run that a backend may take besides its options (`Backend.context` names them).
CONTEXT = ("seed", "device", "job_ledger")


def option(
    default: Any,
    help: str,
    *,
    choices: tuple[str, ...] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    below: float | None = None,
    check: Callable[[Any], str | None] | None = None,
    if_unused: Callable[[type, Any], str] | None = None,
) -> Any:
    """A configuration key (a run section's or a backend's): ``check(value)`` returns an error message or
    None; ``if_unused(backend, value)`` makes a non-default value an error on a backend that does not read
    the key (else it is ignored). ``minimum``/``maximum`` are inclusive bounds, ``above``/``below`` exclusive
    ones. A list default is copied per instance."""
    metadata = {"help": help, "choices": choices, "minimum": minimum, "maximum": maximum, "check": check}
    metadata |= {"above": above, "below": below}
    metadata["if_unused"] = if_unused
    metadata = {k: v for k, v in metadata.items() if v is not None}
    if isinstance(default, list | tuple):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def check_value(f: dataclasses.Field, value: Any) -> None:
    """Raise ValueError, one line naming the key, when ``value`` breaks ``f``'s declared constraints."""
    meta, name = f.metadata, f.name
    choices, low, high = meta.get("choices"), meta.get("minimum"), meta.get("maximum")
    if choices and value not in choices:
        raise ValueError(f"{name}: {value!r} is not one of {', '.join(choices)}")
    if value is None:
        return
    if low is not None and high is not None and not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    above, below = meta.get("above"), meta.get("below")
    if above is not None and below is not None and not above < value < below:
        raise ValueError(f"{name} must be in ({above}, {below}), got {value}")
    if above is not None and value <= above:
        raise ValueError(f"{name} must be > {above}, got {value}")
    message = meta["check"](value) if "check" in meta else None
    if message:  # "must ..." reads as a sentence after the key, anything else after "key:"
        raise ValueError(f"{name} {message}" if message.startswith("must ") else f"{name}: {message}")


@dataclass(frozen=True)
class BackendOptions:
    """Options of a backend with none; subclasses add fields made with `option`.

    Construction validates: every field against its metadata, then `check` for constraints between
    fields. The backend's constructor takes the object itself, so each default is written once, here.
    """

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            check_value(f, getattr(self, f.name))
        self.check()

    def check(self) -> None:
        """Constraints between fields (override); raise ValueError naming the key."""


@dataclass(frozen=True)
class ShotsOptions(BackendOptions):
    """Backends that estimate probabilities from a finite number of measurements."""

    shots: int = option(1024, "shots per circuit on sampled backends (aer_shots, aer_noisy, ibm_runtime)", minimum=1)


@dataclass(frozen=True)
class DeviceOptions(BackendOptions):
    """Backends that transpile for an IBM device (a fake one's noise model, or ibm_runtime)."""

    optimization_level: int = option(
        2,
        "transpiler level: 2, 3 choose a noise-aware layout; 1 keeps qubits 0..n-1 if they fit",
        minimum=0,
        maximum=3,
    )
