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
import os
from pathlib import Path

import torch
from fastapi import FastAPI

from vidrec.features.store import is_redis
from vidrec.recommender import Recommender, resolve_version
from vidrec.serving.app import create_app

EVENTS_DB = "events.sqlite"
STATE_DIR = "state"
ENV = {"model_dir": "VIDREC_MODEL_DIR", "events_db": "VIDREC_EVENTS_DB", "store": "VIDREC_STORE",
       "threads": "VIDREC_TORCH_THREADS"}  # fmt: skip
log = logging.getLogger(__name__)


def default_store(model_dir: str | Path) -> Path:
    """Where a version keeps its online store by default: ``MODEL_DIR/state/<version>.sqlite``."""
    version = resolve_version(model_dir)
    return version.parent / STATE_DIR / f"{version.name}.sqlite"


def load_service(
    model_dir: str | Path,
    events_db: str | Path | None = None,
    feature_store: str | None = None,
    torch_threads: int | None = 1,
) -> FastAPI:
    """The FastAPI app serving ``model_dir``.

    ``events_db``: the durable log (default ``MODEL_DIR/events.sqlite``); ``feature_store``: a
    ``redis://`` URL shared by replicas, or a SQLite path (default :func:`default_store`).
    A store that is empty (new, or a Redis that restarted without its data) is loaded from
    the version and the log. Requests are small: one torch thread per process serves them best.
    """
    if torch_threads:
        torch.set_num_threads(torch_threads)
    root = Path(model_dir)
    store = feature_store or default_store(root)
    where = store if is_redis(store) else Path(store)
    rec = Recommender.load(root, store=str(where), log=events_db or root / EVENTS_DB)
    log.info("serving %s from store %s, event log %s", rec.path, where, rec.log.path if rec.log else None)
    gc.collect()
    gc.freeze()  # the model's objects never become garbage: keep them out of every collection
    return create_app(rec)


def service_from_env() -> FastAPI:
    """:func:`load_service` configured by environment variables (``vidrec serve --workers N``)."""
    model_dir = os.environ.get(ENV["model_dir"])
    if not model_dir:
        raise RuntimeError(f"set {ENV['model_dir']} to the model directory to serve")
    threads = os.environ.get(ENV["threads"])
    return load_service(model_dir, os.environ.get(ENV["events_db"]) or None, os.environ.get(ENV["store"]) or None,
                        int(threads) if threads else 1)  # fmt: skip
