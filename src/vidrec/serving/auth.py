"""Who may call the service: API keys with names and scopes, hashed at rest, rate-limited.

A key ring is a JSON file (``vidrec keys create`` writes it) listing, per key, a name, the
SHA-256 of the secret and its scopes; the secrets themselves are shown once, when created,
and never stored. Clients send a key as ``Authorization: Bearer <key>`` or ``X-API-Key``.
Every write needs its scope (``events:write``, ``catalogue:write``); reads need
``recommendations:read`` only when the ring says ``protect_reads``. Each key has its own
rate limit (a moving window, :mod:`limits`), answered with 429 and ``Retry-After``.

Keys are random 256-bit secrets, so one SHA-256 is a sound way to store them (a slow
password hash buys nothing against guessing 2**256 values) and lets a request's key be
found with one dictionary lookup.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from pydantic import BaseModel, Field, ValidationError

from vidrec.errors import VidrecError
from vidrec.versions import write_atomic

Scope = Literal["events:write", "catalogue:write", "recommendations:read", "service:reload"]
SCOPES: tuple[Scope, ...] = ("events:write", "catalogue:write", "recommendations:read", "service:reload")
KEY_PREFIX = "vr_"
log = logging.getLogger(__name__)


class ApiKey(BaseModel):
    """One key of the ring: a name for logs and limits, the secret's SHA-256, what it may do."""

    name: str = Field(min_length=1, max_length=100)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: list[Scope] = Field(min_length=1)


class KeyFile(BaseModel):
    """The key ring's file."""

    keys: list[ApiKey] = Field(default_factory=list)
    protect_reads: bool = False
    rate_limit: str | None = Field(default="100/second", description="per key, e.g. 100/second, 5000/minute")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _rate(text: str, where: str) -> RateLimitItem:
    try:
        return parse(text)
    except ValueError:
        raise VidrecError(f"{where}: rate limit {text!r} is not a rate",
                          "write it as N/second, N/minute or N/hour, e.g. 100/second") from None  # fmt: skip


class Refused(Exception):
    """A request refused by authentication or a limit: the status, a readable detail, headers."""

    def __init__(self, status_code: int, detail: str, headers: dict[str, str] | None = None) -> None:
        self.status_code, self.detail, self.headers = status_code, detail, headers or {}
        super().__init__(detail)


class KeyRing:
    """The keys a service accepts; ``rate_limit`` per key (None: unlimited)."""

    def __init__(self, keys: list[ApiKey], protect_reads: bool = False, rate_limit: str | None = "100/second") -> None:
        names = [k.name for k in keys]
        if len(set(names)) != len(names):
            raise VidrecError("the key ring names a key twice", "give every key its own name")
        self.keys = {k.sha256: k for k in keys}
        self.protect_reads = protect_reads
        self.rate = _rate(rate_limit, "the key ring") if rate_limit else None
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    @classmethod
    def from_file(cls, path: str | Path, rate_limit: str | None = None) -> KeyRing:
        """Read a key ring written by ``vidrec keys create``; a bad file is one readable error.
        ``rate_limit`` replaces the file's (``""``: none)."""
        spec = read_key_file(path)
        if not spec.keys:
            raise VidrecError(f"{path}: holds no keys", f"add one with `vidrec keys create NAME --file {path}`")
        return cls(spec.keys, spec.protect_reads, spec.rate_limit if rate_limit is None else rate_limit or None)

    def keep_windows(self, old: KeyRing) -> None:
        """Count requests in the windows of the ring this one replaces (a reload gives no key
        a fresh allowance)."""
        if old.rate == self.rate:
            self._limiter = old._limiter

    def check(self, secret: str | None, scope: Scope) -> ApiKey:
        """The key that sent ``secret``, if it may act in ``scope`` now; else :class:`Refused`."""
        if not secret:
            how = "send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
            raise Refused(401, f"this call needs an API key with scope {scope}: {how}", {"WWW-Authenticate": "Bearer"})
        key = self.keys.get(digest(secret))
        if key is None:
            raise Refused(401, "the API key is not valid; check it, or ask for a new one",
                          {"WWW-Authenticate": 'Bearer error="invalid_token"'})  # fmt: skip
        if scope not in key.scopes:
            raise Refused(403, f"key {key.name!r} lacks scope {scope} (it has {', '.join(key.scopes)}); "
                          "use a key with that scope")  # fmt: skip
        if self.rate is not None and not self._limiter.hit(self.rate, key.name):
            reset = self._limiter.get_window_stats(self.rate, key.name).reset_time
            wait = max(1, math.ceil(reset - time.time()))
            raise Refused(429, f"key {key.name!r} is over its rate limit of {self.rate}; retry in {wait} s",
                          {"Retry-After": str(wait)})  # fmt: skip
        return key


def read_key_file(path: str | Path) -> KeyFile:
    p = Path(path)
    try:
        return KeyFile.model_validate_json(p.read_bytes())
    except FileNotFoundError:
        hint = f"create it with `vidrec keys create NAME --file {p}`, or serve with --no-auth"
        raise VidrecError(f"{p}: key file not found", hint) from None
    except (OSError, ValidationError) as err:
        first = err.errors()[0] if isinstance(err, ValidationError) else None
        where = ".".join(map(str, first["loc"])) if first else ""
        why = first["msg"] if first else str(err)
        what = f"{where}: {why}" if where else why
        raise VidrecError(f"{p}: not a valid key file ({what})",
                          "fix the file, or create a new one with `vidrec keys create`") from None  # fmt: skip


def create_key(path: str | Path, name: str, scopes: list[Scope]) -> str:
    """Add a new random key named ``name`` to the key file (created if absent); returns the secret,
    which is stored nowhere."""
    p = Path(path)
    spec = read_key_file(p) if p.exists() else KeyFile()
    if any(k.name == name for k in spec.keys):
        raise VidrecError(f"{p}: a key named {name!r} exists", "pick another name, or revoke that one first")
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise VidrecError(f"unknown scopes: {', '.join(unknown)}" if unknown else "a key needs at least one scope",
                          f"pick from {', '.join(SCOPES)}")  # fmt: skip
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    spec.keys.append(ApiKey(name=name, sha256=digest(secret), scopes=scopes))
    p.parent.mkdir(parents=True, exist_ok=True)
    _write_key_file(p, spec)
    return secret


def _write_key_file(path: Path, spec: KeyFile) -> None:
    write_atomic(path, json.dumps(spec.model_dump(), indent=2) + "\n", mode=0o600)


def revoke_key(path: str | Path, name: str) -> None:
    """Remove the key named ``name`` (a running service stops accepting it at its next reload)."""
    p = Path(path)
    spec = read_key_file(p)
    if not any(k.name == name for k in spec.keys):
        raise VidrecError(f"{p}: no key named {name!r}", f"the keys are: {', '.join(k.name for k in spec.keys)}")
    spec.keys = [k for k in spec.keys if k.name != name]
    _write_key_file(p, spec)


_bearer = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer <key>`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key")


def requires(scope: Scope, read: bool = False) -> Callable[..., Awaitable[str | None]]:
    """A route dependency: the caller's key name when it holds ``scope`` (None when the service
    runs without keys, or ``read`` and the ring leaves reads open)."""

    async def check(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        header: Annotated[str | None, Depends(_header)],
    ) -> str | None:
        ring: KeyRing | None = request.app.state.keys
        if ring is None or (read and not ring.protect_reads):
            return None
        secret = bearer.credentials if bearer is not None else header
        return ring.check(secret, scope).name

    return check
