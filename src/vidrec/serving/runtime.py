"""Assemble the service from a model directory: the model, its event log and its online store.

By default a model directory serves from ``events.sqlite`` (the durable log, shared by
every version and every worker process) and ``state/<version>.sqlite`` (the version's
online store); both live beside the version folders, never inside one, so a version gives
the same recommendations however much it has served. A ``redis://`` store is shared by
replicas on any machine.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import torch
from fastapi import FastAPI
from threadpoolctl import threadpool_limits

from vidrec.features.store import is_redis
from vidrec.recommender import Recommender
from vidrec.serving.app import create_app
from vidrec.serving.auth import KeyRing
from vidrec.serving.limits import DEFAULT_MAX_BODY
from vidrec.serving.pool import WorkerPool
from vidrec.versions import read_manifest, resolve_version

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
) -> FastAPI:
    """The FastAPI app serving ``model_dir`` (arguments as :func:`load_recommender`; ``keys`` and
    ``max_body_bytes`` as :func:`~vidrec.serving.app.create_app`).

    One worker: the model runs in this process. More: in that many worker processes behind
    this one (:class:`~vidrec.serving.pool.WorkerPool`), each batch of requests to whichever is
    free; the workers share the event log and the store, and stop with the app.
    """
    if workers == 1:
        return create_app(load_recommender(model_dir, events_db, feature_store, torch_threads), keys=keys,
                          max_body_bytes=max_body_bytes)  # fmt: skip
    read_manifest(resolve_version(model_dir))  # a missing or corrupt model fails here, before any worker starts
    pool = WorkerPool(workers, model_dir, events_db, feature_store, torch_threads or 1)
    gc.collect()
    gc.freeze()  # what this process imported never becomes garbage: full collections stay short

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        pool.close()

    return create_app(pool, slates=pool, lifespan=lifespan, keys=keys, max_body_bytes=max_body_bytes)
