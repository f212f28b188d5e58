"""Assemble the service from a model directory: the model, its event log and its online store.

By default a model directory serves from ``events.sqlite`` (the durable log, shared by
every version and every worker process) and ``state/<version>.sqlite`` (the version's
online store); both live beside the version folders, never inside one, so a version gives
the same recommendations however much it has served. A ``redis://`` store is shared by
replicas on any machine.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import torch
from fastapi import FastAPI
from threadpoolctl import threadpool_limits

from vidrec.errors import VidrecError
from vidrec.features.store import is_redis
from vidrec.recommender import Recommender
from vidrec.serving.app import create_app
from vidrec.serving.auth import KeyRing
from vidrec.serving.limits import DEFAULT_MAX_BODY
from vidrec.serving.logs import LogFormat
from vidrec.serving.pool import WorkerPool
from vidrec.serving.reload import Reloader, Swap, local_swap
from vidrec.versions import ArtifactError, read_manifest, resolve_version

EVENTS_DB = "events.sqlite"
STATE_DIR = "state"
log = logging.getLogger(__name__)


def default_store(model_dir: str | Path) -> Path:
    """Where a version keeps its online store by default: ``MODEL_DIR/state/<version>.sqlite``."""
    version = resolve_version(model_dir)
    return version.parent / STATE_DIR / f"{version.name}.sqlite"


def load_recommender(
    model_dir: str | Path,
    events_db: str | Path | None = None,
    feature_store: str | None = None,
    torch_threads: int | None = 1,
) -> Recommender:
    """The recommender a service process serves ``model_dir`` with.

    ``events_db``: the durable log (default ``MODEL_DIR/events.sqlite``); ``feature_store``: a
    ``redis://`` URL shared by replicas, or a SQLite path (default :func:`default_store`).
    A store that is empty (new, or a Redis that restarted without its data) is loaded from
    the version and the log. Requests are small: one torch thread per process serves them best,
    and as many BLAS and OpenMP threads (numpy, FAISS): pools left at one thread per core spin
    between a request's small products and take the other processes' cores (measured with two
    workers: half the throughput).
    """
    if torch_threads:
        torch.set_num_threads(torch_threads)
        threadpool_limits(torch_threads)  # every BLAS / OpenMP pool loaded so far, for the process
    root = Path(model_dir)
    store = feature_store or default_store(root)
    where = store if is_redis(store) else Path(store)
    rec = Recommender.load(root, store=str(where), log=events_db or root / EVENTS_DB)
    log.info("serving %s from store %s, event log %s", rec.path, where, rec.log.path if rec.log else None)
    gc.collect()
    gc.freeze()  # the model's objects never become garbage: keep them out of every collection
    return rec


def load_service(
    model_dir: str | Path,
    events_db: str | Path | None = None,
    feature_store: str | None = None,
    torch_threads: int | None = 1,
    workers: int = 1,
    keys: KeyRing | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    reload_keys: Callable[[], KeyRing] | None = None,
    watch_s: float | None = None,
    log_format: LogFormat = "text",
) -> FastAPI:
    """The FastAPI app serving ``model_dir`` (arguments as :func:`load_recommender`; ``keys`` and
    ``max_body_bytes`` as :func:`~vidrec.serving.app.create_app`).

    One worker: the model runs in this process. More: in that many worker processes behind
    this one (:class:`~vidrec.serving.pool.WorkerPool`), each batch of requests to whichever is
    free; the workers share the event log and the store, and stop with the app.

    The app reloads (:mod:`vidrec.serving.reload`) on ``POST /admin/reload``, on ``SIGHUP``
    and, with ``watch_s``, when ``LATEST`` names a new version (checked every ``watch_s``
    seconds); ``reload_keys`` reads the key ring again at each reload. ``log_format``: how worker
    processes log (this process's logging is the caller's).
    """
    root = Path(model_dir)
    version = resolve_version(root)  # served from here on, whatever LATEST says meanwhile
    log_path = Path(events_db) if events_db else root / EVENTS_DB  # one log for every version
    pool: WorkerPool | None = None
    if workers == 1:
        app = create_app(load_recommender(version, log_path, feature_store, torch_threads), keys=keys,
                         max_body_bytes=max_body_bytes, lifespan=partial(_lifespan, watch_s=watch_s))  # fmt: skip
        swap = local_swap(lambda v: load_recommender(v, log_path, feature_store, torch_threads))
    else:
        read_manifest(version)  # a missing or corrupt model fails here, before any worker starts
        pool = WorkerPool(workers, version, str(log_path), feature_store, torch_threads or 1, log_format=log_format)
        gc.collect()
        gc.freeze()  # what this process imported never becomes garbage: full collections stay short
        app = create_app(pool, slates=pool, keys=keys, max_body_bytes=max_body_bytes,
                         lifespan=partial(_lifespan, watch_s=watch_s, pool=pool))  # fmt: skip
        swap = _pool_swap(pool)
    if feature_store is not None and not is_redis(feature_store):
        swap = _one_version_store(Path(feature_store))
    app.state.reloader = Reloader(root, version, swap, reload_keys)
    return app


def _pool_swap(pool: WorkerPool) -> Swap:
    async def swap(app: FastAPI, version: Path) -> None:
        await pool.reload(version)

    return swap


def _one_version_store(store: Path) -> Swap:
    """A SQLite store given by path holds one version's state: another version cannot use it."""

    async def swap(app: FastAPI, version: Path) -> None:
        raise ArtifactError(f"this service keeps its online store in {store}, which holds the state of the "
                            "version it started with",
                            "serve without --feature-store (each version gets MODEL_DIR/state/VERSION.sqlite) "
                            "or with a redis:// store, then reload; or restart with the new version")  # fmt: skip

    return swap


@asynccontextmanager
async def _lifespan(app: FastAPI, watch_s: float | None, pool: WorkerPool | None = None) -> AsyncIterator[None]:
    """Reload on SIGHUP (where this loop may handle signals) and, with ``watch_s``, when ``LATEST``
    changes; stop the workers at shutdown (a model in this process is the caller's to close:
    an app may be started more than once)."""
    reloader: Reloader = app.state.reloader
    loop = asyncio.get_running_loop()
    running: set[asyncio.Task] = set()

    def on_hangup() -> None:
        log.info("SIGHUP: reloading")
        task = loop.create_task(_reload_quietly(reloader, app))
        running.add(task)
        task.add_done_callback(running.discard)

    try:
        loop.add_signal_handler(signal.SIGHUP, on_hangup)
        hangup = True
    except (RuntimeError, ValueError, NotImplementedError, AttributeError):  # not the main thread, or no SIGHUP
        hangup = False
    watcher = loop.create_task(reloader.watch(app, watch_s)) if watch_s else None
    try:
        yield
    finally:
        if hangup:
            loop.remove_signal_handler(signal.SIGHUP)
        if watcher is not None:
            watcher.cancel()
        if pool is not None:
            pool.close()


async def _reload_quietly(reloader: Reloader, app: FastAPI) -> None:
    try:
        await reloader.reload(app)
    except VidrecError:
        pass  # logged by the reloader; the old version serves on
