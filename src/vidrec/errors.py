"""Errors that speak to the user: what was wrong, where, and what to do."""

from __future__ import annotations


class VidrecError(Exception):
    """A user-facing error; the CLI prints it without a traceback and exits non-zero."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message}\n  what to do: {hint}")


class DataError(VidrecError):
    """Input data is missing, unreadable or does not follow the documented schema."""
