"""Serve a new model version without a restart: verified first, swapped between requests.

A reload (``POST /admin/reload``, ``SIGHUP``, or ``serve --watch SECONDS`` noticing a new
``LATEST``) resolves the version to serve, checks every file against its manifest, and
loads it beside the one serving (its online store built from the version and the shared
event log, like a start). Only then is it swapped in: requests already running finish on
the old version, new ones get the new one, and the writes the old one took meanwhile are
applied to the new store before the old one is closed. A version that fails any of this is
refused with the reason and the old one serves on. The key file, if the service has one,
is read again at the same time (a revoked key stops working).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI

from vidrec.errors import VidrecError
from vidrec.serving.auth import KeyRing
from vidrec.serving.deps import Timed
from vidrec.versions import LATEST, VERSION_NAME, ArtifactError, read_manifest, resolve_version

log = logging.getLogger(__name__)
Swap = Callable[[FastAPI, Path], Awaitable[None]]
DRAIN_S = 30.0  # the longest a request still on the old version is waited for


class ReloadBusy(VidrecError):
    """Another reload is under way."""


@dataclass(frozen=True)
class Reloaded:
    """What a reload did."""

    version: str
    previous: str
    changed: bool
    keys: int | None  # keys in the ring read again; None when the service runs without a key file


class Reloader:
    """Swaps the version ``app`` serves; one reload at a time.

    ``swap(app, version)`` loads the verified ``version`` and puts it in service (in this
    process, or in every worker); ``keys`` reads the key ring again (None: no key file).
    """

    def __init__(self, model_dir: str | Path, serving: Path, swap: Swap,
                 keys: Callable[[], KeyRing] | None = None) -> None:  # fmt: skip
        self.model_dir, self.serving, self._swap, self._keys = Path(model_dir), serving, swap, keys
        self._lock = asyncio.Lock()
        self.refused: dict[str, str] = {}  # version name -> why (a watcher does not retry it)

    def target(self, version: str | None = None) -> Path:
        """The version folder a reload would serve: ``version`` by name, else what ``LATEST`` names."""
        if version is None:
            return resolve_version(self.model_dir)
        if not VERSION_NAME.fullmatch(version):
            raise ArtifactError(f"{version[:80]!r} is not a version name (v<UTC time>)",
                                f"pick one of the version folders in {self.model_dir}")  # fmt: skip
        return resolve_version(self.model_dir / version)

    async def reload(self, app: FastAPI, version: str | None = None) -> Reloaded:
        """Serve ``version`` (default: ``LATEST``) if it verifies; raises :class:`ArtifactError`
        (the old version serves on) or :class:`ReloadBusy`."""
        if self._lock.locked():
            raise ReloadBusy("a reload is under way", "wait for it to finish, then try again")
        async with self._lock:
            keys = self._reload_keys(app)
            target = await anyio.to_thread.run_sync(self.target, version)
            previous = self.serving
            if target.resolve() == previous.resolve():
                return Reloaded(target.name, previous.name, False, keys)
            started = time.perf_counter()
            try:
                await anyio.to_thread.run_sync(read_manifest, target)  # every file, before anything loads
                await self._swap(app, target)
            except Exception as err:
                if not isinstance(err, VidrecError):
                    log.exception("loading %s failed", target)
                    err = ArtifactError(f"{target}: did not load ({type(err).__name__}: {err})",
                                        "see the service log; the old version serves on")  # fmt: skip
                self.refused[target.name] = err.message
                log.error("version %s refused, still serving %s: %s", target.name, previous.name, err.message)
                raise err from None
            self.serving = target
            log.info("now serving %s (was %s; reload took %.1f s)", target.name, previous.name,
                     time.perf_counter() - started)  # fmt: skip
            return Reloaded(target.name, previous.name, True, keys)

    def _reload_keys(self, app: FastAPI) -> int | None:
        if self._keys is None:
            return None
        ring = self._keys()  # a broken key file raises here, before anything changes
        if app.state.keys is not None:
            ring.keep_windows(app.state.keys)
        app.state.keys = ring
        return len(ring.keys)

    async def watch(self, app: FastAPI, every_s: float) -> None:
        """Reload whenever ``LATEST`` names another version than the one serving (checked every
        ``every_s``); a refused version is logged once and left alone until ``LATEST`` changes."""
        latest = self.model_dir / LATEST
        while True:
            await asyncio.sleep(every_s)
            try:
                name = latest.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError):
                continue  # being replaced, or gone: the next look decides
            if name == self.serving.name or name in self.refused or self._lock.locked():
                continue
            try:
                await self.reload(app)
            except VidrecError as err:
                self.refused.setdefault(name, err.message)
            except Exception:  # the watcher must outlive any one failed reload
                log.exception("reloading %s failed", name)
                self.refused.setdefault(name, "failed; see the log")


def local_swap(load: Callable[[Path], object]) -> Swap:
    """The swap of a service whose model runs in its own process: ``load(version)`` builds the
    new recommender in a thread while the old one serves; requests that took the old one are
    waited for, then the writes it took meanwhile reach the new store and the old one closes."""

    async def swap(app: FastAPI, version: Path) -> None:
        new = await anyio.to_thread.run_sync(load, version)
        old = app.state.recommender
        if isinstance(old, Timed) and isinstance(new, Timed):
            new.on_timing = old.on_timing  # the metrics go on with the new version
        app.state.recommender = new
        app.state.batcher.recommender = new
        deadline = time.monotonic() + DRAIN_S
        while app.state.in_flight.get(id(old), 0) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        await anyio.to_thread.run_sync(new.catch_up)  # type: ignore[attr-defined]
        old.close()
        del old
        gc.unfreeze()  # the old model's objects were frozen with the rest: let them go
        gc.collect()
        gc.freeze()

    return swap
