"""Check a config file's keys and value types against the defaults before anything is built.

Each section is a dataclass; pydantic checks a section's values against its annotations in
strict mode, and a mistake (a typo, a number where a list goes, ``"yes"`` for a switch) is
one line naming the section, the key, the value and what was expected, with the closest
known key for a typo, before any work.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from datetime import timedelta
from difflib import get_close_matches
from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError


def _suggest(key: str, known: list[str]) -> str:
    close = get_close_matches(key, known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(known))}"


def unknown_key(where: str, key: str, known: list[str]) -> str:
    """The message for a key ``where`` does not have."""
    return f"[{where}] has no setting {key!r}{_suggest(key, known)}"


@functools.cache
def _adapter(cls: type) -> TypeAdapter:
    """A strict pydantic validator of the dataclass ``cls`` (and the dataclasses it nests):
    no unknown keys, no coercion (``"yes"`` is not a switch, ``32.5`` not an integer)."""
    for sub in _dataclasses(cls):
        sub.__pydantic_config__ = ConfigDict(strict=True, extra="forbid")  # type: ignore[attr-defined]
    return TypeAdapter(cls)


def _dataclasses(cls: type) -> list[type]:
    """``cls`` and every dataclass its defaults nest, depth first."""
    out = [cls]
    for f in dataclasses.fields(cls):
        default = getattr(cls(), f.name)
        if dataclasses.is_dataclass(default) and not isinstance(default, type):
            out += [c for c in _dataclasses(type(default)) if c not in out]
    return out


def check_section(where: str, cls: type, values: Any) -> None:
    """Raise ``ValueError`` with one readable line for the first wrong key or value type of
    ``values`` against the dataclass ``cls`` (nested dataclass fields are checked too).

    The types are the dataclass's annotations, checked by pydantic in strict mode on the
    values as TOML/JSON gives them (a list is a tuple, an integer is a float, an ISO string
    a datetime); the dataclass's own range checks run later, when the config is built."""
    if not isinstance(values, dict):
        raise ValueError(f"[{where}] must be a table of settings, got {values!r}")
    try:
        _adapter(cls).validate_json(json.dumps(_as_json(cls, values), default=str), strict=True)
    except ValidationError as exc:
        for error in exc.errors():
            message = _message(where, cls, error)
            if message:
                raise ValueError(message) from None
    except (TypeError, ValueError):
        pass  # a dataclass's own range check: reported when the config is built, with its message


def _as_json(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` as JSON carries them to pydantic: durations given in seconds (how the config
    files write them) as ISO 8601 durations, nested sections likewise."""
    defaults = cls()
    out = dict(values)
    for key, value in values.items():
        default = getattr(defaults, key, None)
        if isinstance(default, timedelta) and isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = f"PT{value}S"
        elif dataclasses.is_dataclass(default) and not isinstance(default, type) and isinstance(value, dict):
            out[key] = _as_json(type(default), value)
    return out


def _message(where: str, cls: type, error: Any) -> str | None:
    """One line for a pydantic error on ``cls``: the section, the key, the value, what was expected."""
    loc = [str(part) for part in error["loc"] if not isinstance(part, int)]
    if not loc:
        return None
    owner, path = cls, []
    for key in loc[:-1]:  # walk into nested sections
        default = getattr(owner(), key, None)
        if not (dataclasses.is_dataclass(default) and not isinstance(default, type)):
            break
        owner, path = type(default), [*path, key]
    section = ".".join([where, *path])
    key = loc[len(path)]
    fields = {f.name: f for f in dataclasses.fields(owner)}
    if error["type"] in ("unexpected_keyword_argument", "extra_forbidden") or key not in fields:
        return unknown_key(section, key, list(fields))
    if error["type"] == "value_error":
        return None  # the dataclass's own check: it says more when the config is built
    default = getattr(owner(), key)
    return f"[{section}] {key} = {error.get('input')!r}: expected {_kind(default)} (default {_show(default)})"


def _kind(default: Any) -> str:
    """What a key with this default holds, in words."""
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float | timedelta):
        return "a number"
    if isinstance(default, str):
        return "a string"
    if isinstance(default, tuple | list):
        return "a list"
    if isinstance(default, dict):
        return "a table (key = value pairs)"
    return "a value of the default's type"


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g} seconds"
    if isinstance(value, tuple):
        return repr(list(value))
    return repr(value)
