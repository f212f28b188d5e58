"""Several model processes behind one HTTP process; each batch goes to whichever is free.

``vidrec serve --workers N`` answers HTTP in one process and runs the model in N others.
Each worker is a whole :class:`~vidrec.recommender.Recommender` on the shared event log and
online store, so workers agree as replicas do. Slate requests wait in one queue, and a
worker that comes free takes the next batch from it: load is balanced request by request,
where processes that each accept their own connections are balanced only connection by
connection (a long-lived client stays on a busy process while another idles). A free
worker starts once its share of the recent load waits
(:class:`~vidrec.serving.batching.LoadShare`), or after ``linger_s`` with fewer, and takes
everything waiting then. Writes and lookups take the next free worker ahead of queued slates.

Worker processes are started with ``spawn`` (no state copied from the parent) and speak
over a pipe: one request, one reply.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
from collections import deque
from collections.abc import Callable
from datetime import datetime
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.from_thread
import polars as pl

from vidrec.errors import DataError, VidrecError
from vidrec.recommender import STORE_DOWN, StoreUnavailable
from vidrec.serving.batching import LoadShare
from vidrec.serving.logs import LogFormat, use_format
from vidrec.versions import ArtifactError, resolve_version

if TYPE_CHECKING:
    from vidrec.browse import Order
    from vidrec.recommender import Observed, Timing

log = logging.getLogger(__name__)

_ERRORS: dict[str, type[VidrecError]] = {"DataError": DataError, "VidrecError": VidrecError,
                                          "ArtifactError": ArtifactError}
_CALLS = frozenset({"explain", "observe", "known_video", "add_videos", "remove_videos", "ready", "now", "history",
                    "videos_page", "videos_by_id", "users_page"})
_READY_S = 600.0  # how long a worker may take to load its model


class WorkerFailed(RuntimeError):
    """A worker raised something that is not the caller's mistake (the answer is a 500)."""


class WorkerGone(WorkerFailed):
    """The worker exited (the answer is a 503: another worker, or a restarted service, can serve)."""


def _outcome_of(call: Callable[[], Any]) -> tuple:
    """``("ok", value)`` or ``("error", kind, message, hint)``: what crosses the pipe."""
    try:
        return ("ok", call())
    except VidrecError as exc:
        return ("error", type(exc).__name__, exc.message, exc.hint)
    except STORE_DOWN as exc:  # the caller answers 503, as for a store down in its own process
        return ("error", "StoreUnavailable", f"{type(exc).__name__}: {exc}", None)
    except Exception as exc:  # reported to the caller as a 500, logged here with its traceback
        log.exception("worker call failed")
        return ("error", "WorkerFailed", f"{type(exc).__name__}: {exc}", None)


def _value(outcome: tuple) -> Any:
    if outcome[0] == "ok":
        return outcome[1]
    if outcome[0] == "gone":
        raise WorkerGone(outcome[1])
    _, kind, message, hint = outcome
    if kind == "StoreUnavailable":
        raise StoreUnavailable(message)
    if kind in _ERRORS:
        raise _ERRORS[kind](message, hint)
    raise WorkerFailed(message)


def _slates(rec: Any, asks: list[tuple[str, int]]) -> list[tuple]:
    """The batch's outcomes; when the batch fails, each request alone (one bad request must not
    fail the others)."""
    try:
        return [("ok", s) for s in rec.slates(asks)]
    except Exception:
        log.exception("a batch of %d slates failed; serving them one by one", len(asks))
        return [_outcome_of(partial(rec.slate, u, k)) for u, k in asks]


def worker_main(conn: Connection, model_dir: str, events_db: str | None, feature_store: str | None,
                torch_threads: int, log_format: LogFormat = "text") -> None:  # fmt: skip
    """A worker process: load the model, then answer calls until the pipe closes."""
    from vidrec.serving.runtime import load_recommender

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s[worker]: %(message)s")
    if log_format == "json":  # the parent's stream stays one JSON object per line
        use_format("json")
    started = _outcome_of(lambda: load_recommender(model_dir, events_db, feature_store, torch_threads))
    conn.send(("ok", None) if started[0] == "ok" else started)
    if started[0] != "ok":
        return
    rec = started[1]
    timings: list[tuple[str, str, float]] = []  # what a call timed, sent back with its reply

    def record(kind: str, name: str, seconds: float) -> None:
        timings.append((kind, name, seconds))

    rec.on_timing = record
    try:
        while True:
            try:
                op, args = conn.recv()
            except (EOFError, OSError):
                break
            reply, rec = _answer(rec, op, args, events_db, feature_store, torch_threads)
            rec.on_timing = record  # a reload brought a new recommender
            conn.send((reply, timings[:]))
            timings.clear()
    finally:
        rec.close()


def _answer(rec: Any, op: str, args: tuple, events_db: str | None, feature_store: str | None,
            torch_threads: int) -> tuple[tuple, Any]:  # fmt: skip
    """One call's reply, and the recommender serving from now on (a reload replaces it)."""
    from vidrec.serving.runtime import load_recommender

    if op == "slates":
        return ("ok", _slates(rec, *args)), rec
    if op == "now":
        return _outcome_of(partial(getattr, rec, "now")), rec
    if op == "reload":  # the new version loads beside the old one, which serves on if it fails
        loaded = _outcome_of(partial(load_recommender, args[0], events_db, feature_store, torch_threads))
        if loaded[0] != "ok":
            return loaded, rec
        new, old = loaded[1], rec
        old.close()
        return ("ok", str(new.path)), new
    if op == "catch_up":
        return _outcome_of(rec.catch_up), rec
    if op in _CALLS:
        return _outcome_of(partial(getattr(rec, op), *args)), rec
    return ("error", "WorkerFailed", f"unknown call {op!r}", None), rec


class _Worker:
    """One worker process and its end of the pipe: one call in flight, its reply read by the
    event loop when the pipe becomes readable (no thread per call). Each reply comes with what
    the call timed in the worker (stage and store seconds), handed to ``on_timing`` here: the
    metrics live in the HTTP process only."""

    def __init__(self, index: int, process: mp.process.BaseProcess, conn: Connection) -> None:
        self.index, self.process, self.conn = index, process, conn
        self.alive = True
        self.calls = 0  # answered so far
        self.on_timing: Timing | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reply: asyncio.Future | None = None

    def _gone(self) -> tuple:
        """The reply of a call to a worker that has exited: ``("gone", message)``."""
        if self.alive:
            self.alive = False
            log.error("worker %d is gone (exit code %s)", self.index, self.process.exitcode)
        return ("gone", f"worker {self.index} exited (code {self.process.exitcode})")

    def _readable(self) -> None:
        try:
            reply, timings = self.conn.recv()
        except (EOFError, OSError):
            reply, timings = self._gone(), []
            if self._loop is not None:
                self._loop.remove_reader(self.conn.fileno())
        if self.on_timing is not None:
            for kind, name, seconds in timings:
                self.on_timing(kind, name, seconds)
        self.calls += 1
        if self._reply is not None and not self._reply.done():
            self._reply.set_result(reply)

    async def call(self, op: str, *args: Any) -> tuple:
        """Send one call and wait for its reply (raw: ``("ok", value)`` or an error tuple)."""
        if not self.alive or not self.process.is_alive():
            return self._gone()
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            loop.add_reader(self.conn.fileno(), self._readable)
        self._reply = loop.create_future()
        try:
            self.conn.send((op, args))
        except (OSError, BrokenPipeError):
            return self._gone()
        return await self._reply

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed() and self.alive:
            try:
                self._loop.remove_reader(self.conn.fileno())
            except (OSError, ValueError, RuntimeError):
                pass
        try:
            self.conn.close()
        except OSError:
            pass


class WorkerPool:
    """The recommender as the HTTP layer sees it (:class:`~vidrec.serving.deps.RecommenderLike`),
    served by ``workers`` processes; :meth:`slate` is the batched path for slate requests."""

    def __init__(self, workers: int, model_dir: str | Path, events_db: str | Path | None = None,
                 feature_store: str | None = None, torch_threads: int = 1, max_batch: int = 32,
                 linger_s: float = 0.002, log_format: LogFormat = "text") -> None:  # fmt: skip
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.max_batch, self.linger_s = max_batch, linger_s
        ctx = mp.get_context("spawn")
        self._workers: list[_Worker] = []
        for i in range(workers):
            parent, child = ctx.Pipe()
            args = (child, str(model_dir), None if events_db is None else str(events_db), feature_store, torch_threads,
                    log_format)  # fmt: skip
            process = ctx.Process(target=worker_main, args=args, name=f"vidrec-worker-{i}", daemon=True)
            process.start()
            child.close()
            self._workers.append(_Worker(i, process, parent))
        try:
            for w in self._workers:  # all load at once; each says when it is ready
                if not w.conn.poll(_READY_S):
                    raise VidrecError(f"worker {w.index} did not load the model in {_READY_S:.0f} s",
                                      "check the model directory and the store")  # fmt: skip
                _value(w.conn.recv())
        except (EOFError, OSError):
            self.close()
            raise VidrecError("a worker process exited while loading the model", "see the log above") from None
        except BaseException:
            self.close()
            raise
        self._free: deque[_Worker] = deque(self._workers)
        self._waiting_calls: deque[asyncio.Future] = deque()  # writes and lookups, served first
        self._wanted: dict[int, asyncio.Future] = {}  # worker index -> a call for that worker (reloads)
        self.version = resolve_version(model_dir)  # what every worker serves
        self._pending: list[tuple[str, int, asyncio.Future]] = []  # slate requests
        self._scheduled = False
        self._in_flight = 0  # slate requests in batches being served
        self._load = LoadShare(max_batch)  # the batch a free worker takes
        self.batches = 0  # served so far, and their requests: the mean batch size is requests / batches
        self.requests = 0
        self.on_batch: Callable[[int], None] | None = None  # told each batch's size (metrics)
        log.info("%d workers ready", workers)

    @property
    def on_timing(self) -> Timing | None:
        """Told what the workers timed (stage and store seconds), as each reply arrives here."""
        return self._workers[0].on_timing

    @on_timing.setter
    def on_timing(self, observe: Timing | None) -> None:
        for worker in self._workers:
            worker.on_timing = observe

    # ---- the batched slate path (on the event loop) ---------------------------------------------

    async def slate(self, user_id: str, k: int) -> list[dict[str, Any]]:
        """The user's slate, served in the next batch a free worker takes."""
        if not any(w.alive for w in self._workers):
            raise WorkerGone("no worker is running")
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending.append((user_id, k, future))
        self._kick()
        return await future

    def _kick(self) -> None:
        """Dispatch the shares that are ready; the rest waits for more requests or the linger."""
        self._dispatch(force=False)
        self._schedule()

    def _share(self) -> int:
        """The batch a free worker takes now (see :class:`~vidrec.serving.batching.LoadShare`)."""
        return self._load(len(self._pending) + self._in_flight, sum(w.alive for w in self._workers))

    def _schedule(self) -> None:
        """Serve what still waits on a free worker soon: one loop turn from now when requests
        come one at a time (the requests read with this one join it), ``linger_s`` under a
        concurrent load (the clients just answered come back and join the batch instead of
        forming small ones behind it). With no worker free, the next one to finish kicks."""
        if self._scheduled or not self._pending or not self._free:
            return
        self._scheduled = True
        loop = asyncio.get_running_loop()
        if self.linger_s and (self._in_flight or self._load.concurrent):
            loop.call_later(self.linger_s, self._scheduled_dispatch)
        else:
            loop.call_soon(loop.call_soon, self._scheduled_dispatch)

    def _scheduled_dispatch(self) -> None:
        self._scheduled = False
        self._dispatch()

    def _dispatch(self, force: bool = True) -> None:
        """Hand waiting calls, then waiting slates, to the free workers. A free worker starts as
        soon as its share of the load waits, or after ``linger_s`` (``force``) with fewer, and
        takes what waits then, shared evenly among the free workers."""
        while self._free and self._waiting_calls:
            self._waiting_calls.popleft().set_result(self._free.popleft())
        while self._free and self._pending:
            share = self._share()
            if not force and len(self._pending) < share:
                return
            share = max(share, min(self.max_batch, -(-len(self._pending) // len(self._free))))
            worker = self._free.popleft()
            batch, self._pending = self._pending[:share], self._pending[share:]
            self._in_flight += len(batch)
            self.batches += 1
            self.requests += len(batch)
            if self.on_batch is not None:
                self.on_batch(len(batch))
            if self.batches % 1000 == 0:
                log.info("served %d slate requests in %d batches", self.requests, self.batches)
            asks = [(user, k) for user, k, _ in batch]
            done = asyncio.ensure_future(worker.call("slates", asks))
            done.add_done_callback(partial(self._finish, worker=worker, batch=batch))

    def _finish(self, done: asyncio.Future, *, worker: _Worker, batch: list[tuple[str, int, asyncio.Future]]
                ) -> None:  # fmt: skip
        self._release(worker)
        self._in_flight -= len(batch)
        try:
            reply = done.result()
            if reply[0] == "gone" and any(w.alive for w in self._workers):  # reads are safe to serve again
                self._pending[:0] = batch
                self._kick()
                return
            outcomes = reply[1] if reply[0] == "ok" else [reply] * len(batch)
        except Exception as exc:
            outcomes = [("error", "WorkerFailed", str(exc), None)] * len(batch)
        for (_, _, future), outcome in zip(batch, outcomes):
            if future.done():
                continue
            try:
                future.set_result(_value(outcome))
            except Exception as exc:
                future.set_exception(exc)
        self._kick()

    def _release(self, worker: _Worker) -> None:
        wanted = self._wanted.pop(worker.index, None)  # a call waits for this worker in particular
        if wanted is not None and not wanted.done():
            if worker.alive:
                wanted.set_result(worker)
                return
            wanted.set_exception(WorkerGone(f"worker {worker.index} exited"))
        if worker.alive:
            self._free.append(worker)

    # ---- one call to any free worker -------------------------------------------------------------

    async def _call(self, op: str, *args: Any) -> Any:
        if not any(w.alive for w in self._workers):
            raise WorkerGone("no worker is running")
        if self._free:
            worker = self._free.popleft()
        else:
            waiting: asyncio.Future = asyncio.get_running_loop().create_future()
            self._waiting_calls.append(waiting)
            worker = await waiting
        try:
            reply = await worker.call(op, *args)
        finally:
            self._release(worker)
            self._kick()
        return _value(reply)

    def _sync(self, op: str, *args: Any) -> Any:
        """:meth:`_call` from a route running in the server's thread pool."""
        return anyio.from_thread.run(self._call, op, *args)

    def observe(self, events: pl.DataFrame) -> Observed:
        return self._sync("observe", events)

    async def explain(self, user_id: str, k: int) -> dict[str, list[dict[str, Any]]]:
        """The slate and the left-out candidates of one pass, from the next free worker."""
        return await self._call("explain", user_id, k)

    def known_video(self, video_id: str) -> bool:
        return bool(self._sync("known_video", video_id))

    @property
    def now(self) -> datetime:
        return self._sync("now")

    def add_videos(self, videos: pl.DataFrame, strict: bool = False) -> pl.DataFrame:
        return self._sync("add_videos", videos, strict)

    def remove_videos(self, video_ids: list[str]) -> int:
        return int(self._sync("remove_videos", video_ids))

    def history(self, user_id: str, limit: int = 50) -> dict[str, Any]:
        return self._sync("history", user_id, limit)

    def videos_page(self, offset: int = 0, limit: int = 50, order: Order = "newest") -> dict[str, Any]:
        return self._sync("videos_page", offset, limit, order)

    def videos_by_id(self, video_ids: list[str]) -> dict[str, Any]:
        return self._sync("videos_by_id", video_ids)

    def users_page(self, offset: int = 0, limit: int = 50) -> dict[str, Any]:
        return self._sync("users_page", offset, limit)

    def ready(self) -> dict[str, str]:
        """The store and the log as a worker sees them, and each worker's process."""
        checks = {f"worker {w.index}": "ok" if w.alive and w.process.is_alive() else
                  f"exited (code {w.process.exitcode})" for w in self._workers}  # fmt: skip
        if any(w.alive for w in self._workers):
            try:
                checks |= self._sync("ready")
            except WorkerFailed as exc:
                checks["workers"] = str(exc)
        return checks

    def slates(self, asks: list[tuple[str, int]]) -> list[list[dict[str, Any]]]:
        """Slates outside the batched path (a caller with its own batch)."""
        return [_value(o) for o in self._sync("slates", asks)]

    async def reload(self, version: Path) -> None:
        """Serve ``version`` (a verified version folder) from every worker, one worker at a time
        while the others serve on; if one refuses it, the ones already switched go back to
        ``self.version``, so the pool never stays split."""
        switched: list[_Worker] = []
        try:
            for worker in self._workers:
                if worker.alive:
                    await self._on(worker, "reload", str(version))
                    switched.append(worker)
        except Exception:
            for worker in switched:
                try:
                    await self._on(worker, "reload", str(self.version))
                except Exception:
                    log.exception("worker %d could not go back to %s", worker.index, self.version.name)
            raise
        self.version = version
        for worker in self._workers:  # writes taken by a worker still on the old version meanwhile
            if worker.alive:
                await self._on(worker, "catch_up")

    async def _on(self, worker: _Worker, op: str, *args: Any) -> Any:
        """One call to ``worker`` in particular, once it is free (it takes no batch meanwhile)."""
        if worker in self._free:
            self._free.remove(worker)
        else:
            if not worker.alive:
                raise WorkerGone(f"worker {worker.index} exited")
            wanted: asyncio.Future = asyncio.get_running_loop().create_future()
            self._wanted[worker.index] = wanted
            await wanted
        try:
            reply = await worker.call(op, *args)
        finally:
            self._release(worker)
            self._kick()
        return _value(reply)

    def close(self) -> None:
        """Stop the workers (each closes its store and log)."""
        for w in self._workers:
            w.close()
        for w in self._workers:
            w.process.join(timeout=30)
            if w.process.is_alive():
                w.process.terminate()
