"""`--help` that fits a screen: a short usage line, options grouped by configuration section (with
one subgroup per backend), one line per option, no line wider than `WIDTH`.

argparse's default prints every flag in the usage line and wraps each help text at the terminal's
width in a narrow column; with some 60 configuration keys that was 220 lines nobody reads. Here the
usage line names only what is required, and each option is one line (flag, the type it takes, help,
[default]). A help says what the option is; why, in full, is in docs/usage.md, so a help longer than
its line is too long (tests/test_reporting.py refuses it; the formatter would wrap it under the help
column rather than overflow the screen).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from . import backends

WIDTH = 120  # columns of every --help line: each option's help must fit on its own line
SECTION_TITLES = {  # configuration section -> help group, in the order --help shows them
    "model": "model",
    "circuit": "circuit",
    "execution": "execution",
    "train": "training",
    "data": "data",
    None: "output",  # the top-level keys: name, run_dir, group
}


class OneLineHelp(argparse.HelpFormatter):
    """Each option on one line of at most `WIDTH` columns (a longer help text would continue under the
    help column), help aligned after the longest flag; a usage line of the required arguments only."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=1_000, width=WIDTH)

    def _format_usage(self, usage, actions, groups, prefix) -> str:  # type: ignore[no-untyped-def]
        if usage is None and prefix is None:  # prefix '' is argparse naming a subcommand's prog
            usage = " ".join(["%(prog)s", *_usage_parts(actions)])
        return super()._format_usage(usage, actions, groups, prefix)

    def add_argument(self, action: argparse.Action) -> None:
        """Also fit the help column to subcommand names, which argparse indents but does not measure."""
        super().add_argument(action)
        indent = self._current_indent + self._indent_increment
        for sub in getattr(action, "_get_subactions", list)():
            length = len(self._format_action_invocation(sub)) + indent
            self._action_max_length = max(self._action_max_length, length)


def _usage_parts(actions: Iterable[argparse.Action]) -> list[str]:
    """[--config FILE] when there is one, [options], the required flags, then the positionals."""
    actions = list(actions)
    parts = [f"[--config {a.metavar or 'FILE'}]" for a in actions if "--config" in a.option_strings]
    parts.append("[options]")
    for action in actions:
        if action.option_strings and action.required:
            parts.append(f"{action.option_strings[0]} {action.metavar or action.dest.upper()}")
        elif not action.option_strings:
            name = action.metavar or action.dest
            parts.append(f"{name} ..." if action.nargs in ("+", "*", argparse.PARSER) else name)
    return parts


def backend_sections(keys: Iterable[str]) -> list[tuple[str, str | None, list[str]]]:
    """(title, description, keys) of one help subgroup per registered backend with options.

    A key several backends share (shots, noise, ...) is listed under the first backend that
    declares it; a later backend's title (or, where that would not fit on a line, its description)
    names the shared keys it also reads, so each backend's group says everything it takes.
    """
    wanted, placed, out = set(keys), set(), []
    for name, cls in backends.registered().items():
        names = [f.name for f in dataclasses.fields(cls.Options) if f.name in wanted]
        own = [key for key in names if key not in placed]
        shared = [f"--{key.replace('_', '-')}" for key in names if key in placed]
        placed.update(own)
        if not names:
            continue
        also = f"also reads {', '.join(shared)}" if shared else None
        title = f"execution: {name}" + (f" ({also})" if also else "")
        if own and len(title) < WIDTH:
            out.append((title, None, own))
        elif own:  # a title too wide for one line: what it also reads goes in the description
            out.append((f"execution: {name}", also, own))
        else:  # argparse drops a group without flags, so what it reads goes in the description
            out.append((f"execution: {name}", also, []))
    return out


def sectioned_keys(
    sections_of: Mapping[str, str | None],
) -> list[tuple[str, str | None, list[str]]]:
    """(title, description, keys) of every help group: the sections in SECTION_TITLES order, the
    execution section followed by its per-backend subgroups. ``sections_of``: key -> section."""
    groups: dict[str | None, list[str]] = {}
    for key, section in sections_of.items():
        groups.setdefault(section, []).append(key)
    per_backend = backend_sections(groups.get("execution", []))
    backend_keys = {key for _, _, keys in per_backend for key in keys}
    out = []
    for section, title in SECTION_TITLES.items():
        keys = [k for k in groups.get(section, []) if k not in backend_keys]
        if keys:
            out.append((title, None, keys))
        if section == "execution":
            out += per_backend
    return out


def add_groups(
    parser: argparse.ArgumentParser, groups: Sequence[tuple[str, str | None, list[str]]]
) -> dict[str, argparse._ArgumentGroup]:
    """One argparse group per (title, description, keys); returns key -> its group."""
    by_key = {}
    for title, description, keys in groups:
        group = parser.add_argument_group(title, description)
        by_key.update(dict.fromkeys(keys, group))
    return by_key
