"""A trained vidrec model as one object: load it, ask for recommendations, feed it what happens.

A model directory holds versioned artifact folders (``v<UTC time>``) and a ``LATEST`` file
naming the current one. A version is immutable: the trained stages, the catalogue and the
users it was trained with, and its starting state (:mod:`vidrec.features.store.snapshot`).
What changes while it serves -- events, uploads, removals -- goes to a durable
:class:`~vidrec.features.store.EventLog` and an online store outside the version: a private
in-memory store by default, a SQLite file, or a Redis URL shared by replicas.

A request is served in one pass: one store round trip reads the user's record and the
store's feed since the last request (which keeps this process's catalogue and counts
current), the request is hydrated once (:func:`vidrec.request.hydrate`) and the pipeline
runs on it (:meth:`vidrec.pipeline.Pipeline.run`).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import polars as pl
import redis.exceptions

from vidrec import __version__, browse
from vidrec.catalogue import Catalogue
from vidrec.config import PipelineConfig
from vidrec.data.dataset import Dataset, read_table
from vidrec.data.schema import TIMESTAMP, epoch_us, from_epoch_us
from vidrec.data.simulator import GroundTruth
from vidrec.data.validation import check_new_events, read_valid
from vidrec.errors import DataError, VidrecError
from vidrec.features.live import LiveCounts
from vidrec.features.store import EventLog, FeedEntry, OnlineStore, StoreConfig, is_redis, open_store
from vidrec.features.store.base import Applied, CountDeltas, StoreOutdated, UserRecord, frame_bytes
from vidrec.features.store.deltas import compute_deltas
from vidrec.features.store.log import Batch
from vidrec.features.store.snapshot import VersionState
from vidrec.pipeline import Pipeline, Stage
from vidrec.progress import peak_memory_gib
from vidrec.request import Request, hydrate
from vidrec.rerank_budget import tune_reranking
from vidrec.result import Result
from vidrec.uploads import upload_error, validate_uploads
from vidrec.versions import ArtifactError, point_latest, read_manifest, resolve_version, write_manifest

log = logging.getLogger(__name__)
_BATCH = 32  # users served together by recommend_batch

Timing = Callable[[str, str, float], None]
"""Told ``(kind, name, seconds)`` of each timed step: ``("stage", "candidates" | "scoring" |
"reranking", seconds per request)`` and ``("store", "read" | "write", seconds)``."""


class StoreUnavailable(ConnectionError):
    """The online store did not answer a worker process (raised where the worker's answer arrives)."""


STORE_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, sqlite3.OperationalError,
              StoreUnavailable)  # fmt: skip
"""What a store that does not answer raises (a Redis that is down, a SQLite file that stays locked)."""


@dataclass(frozen=True)
class Observed:
    """What :meth:`Recommender.observe` did: events stored, retries skipped, applied to the store yet."""

    stored: int
    duplicates: int
    applied: bool


def store_config(config: PipelineConfig) -> StoreConfig:
    """How the online store must count events for this model's features."""
    f = config.ranker.features
    return StoreConfig(history_len=config.history_len, threshold=f.threshold, completion_cap=f.completion_cap,
                       title_words=f.title_words, prior_weight=f.prior_weight)  # fmt: skip


class Recommender:
    """Serves a trained :class:`Pipeline` from an online store kept current by the event log."""

    def __init__(self, pipeline: Pipeline, catalogue: Catalogue, users: pl.DataFrame, state: VersionState,
                 trained_until: datetime, path: Path | None = None) -> None:  # fmt: skip
        self.pipeline, self.catalogue, self.users, self.trained_until, self.path = (
            pipeline, catalogue, users, trained_until, path)  # fmt: skip
        self.version_state = state
        self.live = LiveCounts(catalogue)
        pipeline.bind(catalogue, self.live)
        self.store: OnlineStore | None = None
        self.log: EventLog | None = None
        self._lock = threading.RLock()
        self._position = "0"
        self._generation: str | None = None
        self._last_upload_us: int | None = None
        self._clock_floor_us = epoch_us(trained_until)  # the clock a saved version had reached
        self.training_events: pl.DataFrame | None = None  # held after train() until saved
        self.on_timing: Timing | None = None  # the service's metrics; None: nothing is reported

    # ---- building ---------------------------------------------------------------------------

    @classmethod
    def train(cls, train: Dataset | str | Path, config: PipelineConfig | None = None,
              log: Callable[[str], None] = log.info, checkpoints: str | Path | None = None,
              two_tower: str | Path | None = None, serve: bool = True) -> Recommender:  # fmt: skip
        """Train all stages on ``train``: a validated :class:`Dataset`, or a data directory, read
        and validated as ``vidrec train`` does (invalid rows set aside with a warning). Serves
        from an in-memory store until :meth:`save`. With ``checkpoints`` (a directory) the
        training loops save their state every epoch, and training again resumes from it.
        ``two_tower``: a retrieval two-tower trained separately (its folder), used as is.
        ``serve=False``: no store is attached (loading one costs seconds per million events),
        for a process that only saves the model; :meth:`attach` makes it serve."""
        if isinstance(train, str | Path):
            result = read_valid(train)
            if not result.ok:
                warnings.warn(f"{train}: {result.quarantine.height:,} invalid rows set aside; training on the "
                              f"valid ones\n{result.summary()}", stacklevel=2)  # fmt: skip
            train = result.dataset
        if config is not None and config.rerank.budget_truth is not None:
            GroundTruth.load(config.rerank.budget_truth)  # a wrong path fails now, not after the training
        pipeline = Pipeline.fit(train, config, log, checkpoints, two_tower)
        assert pipeline.catalogue is not None
        t0 = time.perf_counter()
        pipeline.budget = tune_reranking(pipeline, train, log)
        pipeline.timings["reranking.budget"] = time.perf_counter() - t0
        pipeline.peaks["reranking.budget"] = peak_memory_gib()
        state = VersionState.build(train.events, pipeline.catalogue, train.users, store_config(pipeline.config))
        pipeline.peaks["serving_state"] = peak_memory_gib()
        log("peak memory after each stage (GiB): " + ", ".join(f"{k} {v:.2f}" for k, v in pipeline.peaks.items()))
        until = cast(datetime, train.events["ts"].max()) + timedelta(microseconds=1)
        rec = cls(pipeline, pipeline.catalogue, train.users, state, until)
        rec.training_events = train.events
        if serve:
            rec.attach(":memory:")
        return rec

    def save(self, model_dir: str | Path) -> Path:
        """Write a new version folder under ``model_dir`` and point ``LATEST`` at it."""
        root = Path(model_dir)
        version = "v" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        path = root / version
        self.pipeline.save(path)
        videos = self.catalogue.frame
        data = path / "data"
        data.mkdir(parents=True, exist_ok=True)
        videos.write_parquet(data / "videos.parquet")
        self.users.write_parquet(data / "users.parquet")
        if self.training_events is not None:  # provenance and retraining; serving never reads it
            self.training_events.write_parquet(data / "events.parquet")
        self.version_state.save(path)
        n_events = int(self.version_state.deltas.totals.get("views", 0))
        manifest = {
            "version": version, "vidrec": __version__, "created_at": datetime.now(UTC).isoformat(),
            "trained_until": self.trained_until.isoformat(), "clock": self.now.isoformat(),
            "events": None if self.training_events is None else self.training_events.height, "watches": n_events,
            "videos": videos.height, "users": self.users.height, "timings_seconds": self.pipeline.timings,
        }  # fmt: skip
        write_manifest(path, manifest)  # last: it lists the SHA-256 of every file written above
        point_latest(root, version)
        self.path = path
        return path

    @classmethod
    def load(cls, model_dir: str | Path, store: str | Path | None = None, log: EventLog | str | Path | None = None
             ) -> Recommender:  # fmt: skip
        """Load the latest version in ``model_dir`` (or the version folder given).

        ``store``: the online store (None: private, in memory; a SQLite path; a ``redis://``
        URL shared by replicas, namespaced by the version). ``log``: the durable event log
        whose batches the store applies (None: changes go to the store only).
        """
        path = resolve_version(model_dir)
        manifest = read_manifest(path)  # every file checked against its SHA-256 before any is read
        try:
            videos = read_table(path / "data" / "videos.parquet", "videos")
            users = read_table(path / "data" / "users.parquet", "users")
            pipeline = Pipeline.load(path)
            rec = cls(pipeline, Catalogue(videos), users, VersionState.load(path),
                      datetime.fromisoformat(manifest["trained_until"]), path)  # fmt: skip
            rec._clock_floor_us = epoch_us(datetime.fromisoformat(manifest["clock"]))  # uploads saved with it
        except VidrecError:
            raise
        except Exception as err:  # verified files that still do not load: an incompatible or forged version
            logging.getLogger(__name__).debug("loading %s failed", path, exc_info=True)
            raise ArtifactError(
                f"{path}: its files match the manifest but do not load ({type(err).__name__}: {err})",
                "retrain with this vidrec version: `vidrec train DATA_DIR --out MODEL_DIR`",
            ) from None
        rec.attach(store or ":memory:", log)
        return rec

    def attach(self, location: str | Path, log: EventLog | str | Path | None = None) -> OnlineStore:
        """Serve from the store at ``location`` (loaded from the version state when empty), fed by ``log``."""
        options = {}
        if is_redis(location):
            options["prefix"] = f"vidrec:{self.path.name if self.path else 'unsaved'}:"
        self.store = open_store(location, store_config(self.pipeline.config), **options)
        self.log = EventLog(log) if isinstance(log, (str, Path)) else log
        with self._lock:
            self._ensure_loaded()
            self._catch_up()
            self._resync()
        return self.store

    def _ensure_loaded(self) -> None:
        """Load the version state into an empty store (a new store, or one that lost its data)."""
        store = self._require_store()
        if store.generation() is None:
            state = self.version_state
            if store.load(state.deltas, state.profiles, uuid.uuid4().hex, replace=False):
                log.info("the online store was empty: loaded the version state")

    def _resync(self) -> None:
        """Copy the store's platform-wide state into this process (start, or after a reload)."""
        snap = self._require_store().snapshot()
        self._apply_catalogue(snap.catalogue)
        self.live.load(snap)
        self._position, self._generation = snap.position, snap.generation

    # ---- changes ----------------------------------------------------------------------------

    def _catch_up(self) -> None:
        """Apply the log's batches the store has not applied yet (in order, exactly once)."""
        store, event_log = self._require_store(), self.log
        if event_log is None:
            return
        while True:
            cursor = store.cursor(event_log.id)
            batches = event_log.batches(since=cursor)
            if not batches:
                return
            try:
                store.apply(event_log.id, cursor, batches[-1].seq, [self._prepare(b) for b in batches])
                return
            except StoreOutdated:  # another writer applied some first: read the cursor again
                continue

    def _prepare(self, batch: Batch) -> Applied:
        """What a log batch does to the store; uploads reach this catalogue at once (later batches
        in the same catch-up may refer to them)."""
        if batch.kind == "events":
            meta = self.catalogue.meta(self.catalogue.rows_of(batch.rows["video_id"].unique()), store_config(
                self.pipeline.config).title_words)  # fmt: skip
            deltas = compute_deltas(batch.rows, meta, self._require_store().config)
            return Applied("counts", CountDeltas.of(deltas).to_json(), deltas)
        if batch.kind == "uploads":
            self._add_uploads(batch.rows)
        return Applied(batch.kind, frame_bytes(batch.rows))

    def _write(self, batch_kind: str, rows: pl.DataFrame, append: Callable[[], int], tolerate_store_down: bool = False
               ) -> bool:  # fmt: skip
        """Log a batch durably (when there is a log), apply it to the store, then sync this process.

        Returns whether the store has applied it. With ``tolerate_store_down``, a store that does
        not answer after the batch is in the log is not an error: the batch is applied, in order,
        by the next write or rebuild that reaches the store (False is returned meanwhile).
        """
        if self.log is not None:
            append()  # durable first, outside the lock: readers go on meanwhile
        with self._lock:
            start = time.perf_counter()
            try:
                if self.log is not None:
                    self._catch_up()
                else:
                    prepared = self._prepare(Batch(0, batch_kind, rows))
                    self._require_store().apply(None, 0, 0, [prepared])
                self._sync()
            except STORE_DOWN:
                if not (tolerate_store_down and self.log is not None):
                    raise
                log.warning("the online store does not answer: %s stored in the event log, applied later", batch_kind)
                return False
            self._timed("store", "write", start)
        return True

    def _timed(self, kind: str, name: str, start: float) -> None:
        """Report the seconds since ``start`` (``time.perf_counter``) to :attr:`on_timing`, if set."""
        if self.on_timing is not None:
            self.on_timing(kind, name, time.perf_counter() - start)

    def observe(self, events: pl.DataFrame) -> Observed:
        """Take in new events: logged, applied to the store, reflected by the next request.

        Every row must pass ingestion's row checks (event kind, watch seconds, times) and name a
        video in the catalogue; otherwise a :class:`DataError` names the rows at fault and nothing
        is stored.

        An ``event_id`` column (optional, null allowed) makes a retry safe: events whose id the log
        holds already are not stored or counted again. Returns what was stored and whether the
        store has applied it yet (see :class:`Observed`).
        """
        columns = ["user_id", "video_id", pl.col("ts").cast(TIMESTAMP), "event",
                   pl.col("watch_seconds").cast(pl.Float64)]  # fmt: skip
        if "event_id" in events.columns:
            columns.append(pl.col("event_id").cast(pl.String))
        frame = events.select(columns)
        if frame.height == 0:
            return Observed(0, 0, True)
        check_new_events(frame, "observe")  # the rules ingestion applies, row by row
        unknown = [v for v in frame["video_id"].unique().to_list() if v not in self.catalogue]
        if unknown:
            raise DataError(f"events refer to videos not in the catalogue: {', '.join(map(repr, unknown[:5]))}",
                            "upload the videos first (add_videos) or drop those events")  # fmt: skip
        if "event_id" in frame.columns and self.log is not None:
            ids = frame["event_id"].drop_nulls()
            if ids.n_unique() != ids.len():
                raise DataError("events repeat an event_id within one batch", "give every event its own id")
            known = self.log.known_event_ids(ids.to_list())
            if known:
                seen = pl.col("event_id").is_in(pl.Series(list(known), dtype=pl.String).implode())
                frame = frame.filter(pl.col("event_id").is_null() | ~seen)  # events without an id are kept
            if frame.height == 0:
                return Observed(0, len(known), True)
        else:
            known = set()
        applied = self._write("events", frame, lambda: self.log.append(frame), tolerate_store_down=True)  # type: ignore[union-attr]
        return Observed(frame.height, len(known), applied)

    def add_videos(self, videos: pl.DataFrame, strict: bool = False) -> pl.DataFrame:
        """Add uploads to the running system, no retraining: searchable from the next request.

        Rows are validated as ingestion validates the videos table (and refused when the id is
        already in the catalogue). Returns the quarantined rows (empty when all were valid);
        ``strict=True`` adds nothing and raises :class:`DataError` if any row is invalid.
        """
        ids = videos["video_id"].cast(pl.String).to_list() if "video_id" in videos.columns else []
        taken = pl.DataFrame({"video_id": [v for v in ids if v in self.catalogue]}, schema={"video_id": pl.String})
        clean, bad = validate_uploads(videos, pl.concat([self.catalogue.frame.head(0), taken], how="diagonal"))
        if strict and bad.height:
            raise upload_error(bad, videos.height)
        if clean.height:
            self._write("uploads", clean, lambda: self.log.append_videos(clean))  # type: ignore[union-attr]
        return bad

    def remove_videos(self, video_ids: list[str] | pl.Series) -> int:
        """Take videos off the platform: returned by no stage from the next request on.

        Raises :class:`DataError` (and changes nothing) if an id is not in the catalogue.
        Returns how many were available before.
        """
        ids = list(dict.fromkeys(pl.Series("video_id", video_ids, dtype=pl.String).to_list()))
        unknown = [v for v in ids if v not in self.catalogue]
        if unknown:
            raise DataError(f"cannot remove videos not in the catalogue: {', '.join(map(repr, unknown[:5]))}",
                            "check the ids")  # fmt: skip
        was = int(self.catalogue.available[self.catalogue.rows(ids)].sum())
        at = from_epoch_us(self.now_us)
        rows = pl.DataFrame({"video_id": ids, "at": [at] * len(ids)}, schema={"video_id": pl.String, "at": TIMESTAMP})
        self._write("removals", rows, lambda: self.log.append_removals(ids, at))  # type: ignore[union-attr]
        return was

    # ---- keeping this process current ---------------------------------------------------------

    def catch_up(self) -> None:
        """Apply what the log holds that the store has not applied yet, then sync this process
        (a version loaded beside another that kept taking writes starts from here)."""
        with self._lock:
            self._catch_up()
            self._sync()

    def _sync(self, entries: list[FeedEntry] | None = None, generation: str | None = None) -> None:
        """Apply the store's feed since the last read (read it now unless given)."""
        store = self._require_store()
        with self._lock:
            if entries is None:
                _, entries, generation = store.read("", self._position)
            if generation is None:  # the store lost everything (a Redis restart): rebuild it
                self._ensure_loaded()
                self._catch_up()
                self._resync()
                return
            if generation != self._generation:  # another process rebuilt the store: replay this log into it
                self._catch_up()
                self._resync()
                return
            fresh = [e for e in entries if store.order(e.position) > store.order(self._position)]
            self._apply_catalogue([e for e in fresh if e.kind != "counts"])
            for e in fresh:
                if e.kind == "counts":
                    self.live.add(e.counts())
            if fresh:
                self._position = fresh[-1].position

    def _apply_catalogue(self, entries: list[FeedEntry]) -> None:
        for e in entries:
            if e.kind == "uploads":
                self._add_uploads(e.frame())
            elif e.kind == "removals":
                rows = self.catalogue.rows(e.frame()["video_id"].to_list())
                self.catalogue.remove(rows[rows >= 0])

    def _add_uploads(self, videos: pl.DataFrame) -> None:
        new = videos.filter(~pl.col("video_id").is_in(pl.Series(self.catalogue.ids).implode()))
        if new.height:
            self.catalogue.add(new)
            # the clock follows uploads (one is recommendable at once), never past the wall clock
            latest = min(epoch_us(cast(datetime, new["uploaded_at"].max())), epoch_us(datetime.now(UTC)))
            self._last_upload_us = max(self._last_upload_us or latest, latest)

    # ---- serving ------------------------------------------------------------------------------

    @property
    def now_us(self) -> int:
        """The model's clock: the latest of the training end, the last event and the last upload."""
        clock = max(epoch_us(self.trained_until), self._clock_floor_us)
        if self.live.last_event_us is not None:
            clock = max(clock, self.live.last_event_us + 1)
        if self._last_upload_us is not None:
            clock = max(clock, self._last_upload_us + 1)
        return clock

    @property
    def now(self) -> datetime:
        return from_epoch_us(self.now_us)

    def request(self, user_id: str, k: int = 10, now: datetime | None = None) -> Request:
        """Hydrate one request: one store round trip (the user's record and the feed), ids mapped once."""
        return self.requests([(user_id, k)], now)[0]

    def requests(self, asks: list[tuple[str, int]], now: datetime | None = None) -> list[Request]:
        """Hydrate requests together: one store round trip for all their users and the feed."""
        records = self._records([user for user, _ in asks])
        now_us = self.now_us if now is None else epoch_us(now)
        history = self.pipeline.config.history_len
        return [hydrate(record, self.catalogue, now_us, k, history) for record, (_, k) in zip(records, asks)]

    def _records(self, users: list[str]) -> list[UserRecord]:
        """The users' records and the feed since the last read in one round trip (the feed applied)."""
        store = self._require_store()
        start = time.perf_counter()
        records, entries, generation = store.read_many(users, self._position)
        self._timed("store", "read", start)
        if entries or generation != self._generation:
            known = self._generation
            self._sync(entries, generation)
            if generation is None or generation != known:  # the store was (re)built meanwhile: read it again
                records, _, _ = store.read_many(users, self._position)
        return records

    def run(self, user_id: str, k: int = 10, now: datetime | None = None, until: Stage = "final") -> Result:
        """Every stage's output for one user in one pass."""
        return self.run_many([(user_id, k)], now, until)[0]

    def run_many(
        self, asks: list[tuple[str, int]], now: datetime | None = None, until: Stage = "final"
    ) -> list[Result]:
        """One pass for each ``(user_id, k)``, the stages taking them all at once. A process serves
        one batch at a time: an upload applied meanwhile changes the stages' arrays."""
        with self._lock:
            results = self.pipeline.run_many(self.requests(asks, now), until)
        if self.on_timing is not None:  # a few calls per request, never per candidate
            for result in results:
                for stage, seconds in result.times.items():
                    self.on_timing("stage", stage, seconds)
        return results

    def recommend(self, user_id: str, k: int = 10, now: datetime | None = None, stage: Stage = "final",
                  debug: bool = False) -> pl.DataFrame:  # fmt: skip
        """The top ``k`` videos for one user, with provenance (a view of :meth:`run`)."""
        until: Stage = "final" if debug else stage
        return self.run(user_id, k, now, until).frame(self.catalogue, stage, k, debug)

    def recommend_batch(self, user_ids: list[str], k: int = 10, stage: Stage = "final", now: datetime | None = None,
                        debug: bool = False) -> pl.DataFrame:  # fmt: skip
        """Recommendations for many users, served together in batches as the service does (each
        user gets the videos :meth:`recommend` gives alone, scores equal to float32 rounding), the
        frames stacked. ``known_user`` says
        whether the store held anything about the user (False: cold-start picks, for example an id
        that is mistyped or from another system)."""
        if not user_ids:
            raise ValueError("no user ids given")
        users = list(dict.fromkeys(user_ids))
        until: Stage = "final" if debug else stage
        frames = []
        for start in range(0, len(users), _BATCH):
            for result in self.run_many([(u, k) for u in users[start : start + _BATCH]], now, until):
                frame = result.frame(self.catalogue, stage, k, debug)
                frames.append(frame.with_columns(known_user=pl.lit(result.request.known)))
        out = pl.concat(frames, how="diagonal_relaxed")
        unknown = out.filter(~pl.col("known_user"))["user_id"].unique()
        if len(unknown):
            log.warning("%d of %d users are unknown to this model and got cold-start picks (known_user "
                        "is false), e.g. %s", len(unknown), out["user_id"].n_unique(),
                        ", ".join(map(repr, unknown.sort().head(3).to_list())))  # fmt: skip
        return out

    def slate(self, user_id: str, k: int = 10) -> list[dict]:
        """The user's slate as plain dicts (what the HTTP service answers)."""
        return self.run(user_id, k).items(self.catalogue)

    def explain(self, user_id: str, k: int = 10) -> dict[str, list[dict]]:
        """The slate (``items``) and the candidates re-ranking left out with the reason
        (``removed``), from one pass."""
        result = self.run(user_id, k)
        return {"items": result.items(self.catalogue), "removed": result.removed_items(self.catalogue)}

    def slates(self, asks: list[tuple[str, int]]) -> list[list[dict]]:
        """:meth:`slate` of requests that arrived together, served in one batch."""
        return [r.items(self.catalogue) for r in self.run_many(asks)]

    def ready(self) -> dict[str, str]:
        """Each dependency's state: ``ok``, or what is wrong."""
        checks = {}
        try:
            checks["store"] = "ok" if self._require_store().generation() is not None else "empty (being rebuilt)"
        except Exception as exc:  # a readiness probe reports, it does not raise
            checks["store"] = f"unreachable: {type(exc).__name__}: {exc}"
        if self.log is not None:
            try:
                self.log.last()
                checks["event_log"] = "ok"
            except Exception as exc:
                checks["event_log"] = f"unreadable: {type(exc).__name__}: {exc}"
        return checks

    def results(self, user_ids: list[str], k: int = 10, now: datetime | None = None,
                batch: int = 32) -> list[Result]:  # fmt: skip
        """One full pass per user (every stage's views from one run), ``batch`` users at a time."""
        users = list(dict.fromkeys(user_ids))
        out: list[Result] = []
        for s in range(0, len(users), batch):
            out += self.run_many([(u, k) for u in users[s : s + batch]], now)
        return out

    def user_state(self, user_ids: list[str]) -> pl.DataFrame:
        """Current state lists of the given users (history, seen, disliked); unknown users are empty."""
        names = ("recent_completed", "recent_watched", "seen", "disliked")
        out: dict[str, list[Any]] = {"user_id": [], **{name: [] for name in names}}
        for u in dict.fromkeys(user_ids):
            r = self.request(u)
            out["user_id"].append(u)
            for name in names:
                out[name].append(self.catalogue.ids_of(getattr(r, name)))
        schema: dict[str, Any] = {"user_id": pl.String, **{c: pl.List(pl.String) for c in list(out)[1:]}}
        return pl.DataFrame(out, schema=schema)

    # ---- browsing (vidrec.browse: each read costs what it returns) ----------------------------

    def history(self, user_id: str, limit: int = 50) -> dict[str, Any]:
        """The user's latest ``limit`` videos watched, liked or disliked, with the times (from the store)."""
        with self._lock:
            record = self._records([user_id])[0]
            return browse.history(record, self.catalogue, limit)

    def videos_page(self, offset: int = 0, limit: int = 50, order: browse.Order = "newest") -> dict[str, Any]:
        """A page of the catalogue, current with every replica's uploads and removals."""
        with self._lock:
            self._sync()
            return browse.videos_page(self.catalogue, offset, limit, order)

    def videos_by_id(self, video_ids: list[str]) -> dict[str, Any]:
        """The catalogue's rows of ``video_ids`` (``missing``: the ids it does not hold)."""
        with self._lock:
            self._sync()
            return browse.videos_by_id(self.catalogue, video_ids)

    def users_page(self, offset: int = 0, limit: int = 50) -> dict[str, Any]:
        """A page of the users table the model was trained with."""
        return browse.users_page(self.users, offset, limit)

    def known_video(self, video_id: str) -> bool:
        """Whether ``video_id`` is in the catalogue; an id this process has not seen is looked up
        in the store's feed first (another replica may have uploaded it a moment ago)."""
        if video_id in self.catalogue:
            return True
        self._sync()
        return video_id in self.catalogue

    @property
    def videos(self) -> pl.DataFrame:
        """The catalogue as a videos table."""
        return self.catalogue.frame

    def _require_store(self) -> OnlineStore:
        if self.store is None:
            raise VidrecError("no online store attached", "call attach(location) or Recommender.load()")
        return self.store

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
        if self.log is not None:
            self.log.close()
