"""Check a config file's keys and value types against the defaults before anything is built.

Each section is a dataclass whose defaults say what a key holds: a mistake (a typo, a
number where a list goes, ``"yes"`` for a switch) is one line naming the section, the key,
the value and what was expected, with the closest known key for a typo, before any work.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from difflib import get_close_matches
from typing import Any


def _suggest(key: str, known: list[str]) -> str:
    close = get_close_matches(key, known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(known))}"


def unknown_key(where: str, key: str, known: list[str]) -> str:
    """The message for a key ``where`` does not have."""
    return f"[{where}] has no setting {key!r}{_suggest(key, known)}"


def _expected(default: Any) -> tuple[str, Any] | None:
    """(what the key holds, a predicate on a value read from TOML/JSON) for a default; None: anything."""
    if isinstance(default, bool):
        return "true or false", lambda v: isinstance(v, bool)
    if isinstance(default, int):
        return "an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)
    if isinstance(default, float) or isinstance(default, timedelta):
        return "a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool)
    if isinstance(default, str):
        return "a string", lambda v: isinstance(v, str)
    if isinstance(default, tuple | list):
        return "a list", lambda v: isinstance(v, list | tuple)
    if isinstance(default, dict):
        return "a table (key = value pairs)", lambda v: isinstance(v, dict)
    return None


def check_section(where: str, cls: type, values: Any) -> None:
    """Raise ``ValueError`` with one readable line for the first wrong key or value type of
    ``values`` against the dataclass ``cls`` (nested dataclass fields are checked too)."""
    if not isinstance(values, dict):
        raise ValueError(f"[{where}] must be a table of settings, got {values!r}")
    defaults = cls()
    fields = {f.name: getattr(defaults, f.name) for f in dataclasses.fields(cls)}
    optional = {f.name for f in dataclasses.fields(cls) if "None" in str(f.type) or "Optional" in str(f.type)}
    for key, value in values.items():
        if key not in fields:
            raise ValueError(unknown_key(where, key, list(fields)))
        default = fields[key]
        if dataclasses.is_dataclass(default) and not isinstance(default, type):
            check_section(f"{where}.{key}", type(default), value)
            continue
        expected = _expected(default)
        if value is None and key in optional:
            continue
        if expected is not None and not expected[1](value):
            raise ValueError(f"[{where}] {key} = {value!r}: expected {expected[0]} (default {_show(default)})")


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g} seconds"
    if isinstance(value, tuple):
        return repr(list(value))
    return repr(value)
