"""The online feature store: the features a request needs, kept current event by event.

Serving reads, per request, one user's state and the statistics and embeddings of a
few hundred candidate videos; rebuilding them from the event log per request does not
scale. :class:`OnlineStore` keeps them materialised, updated incrementally by
:meth:`OnlineStore.apply_events`, with the meaning of every feature defined once in
:mod:`vidrec.features.user_state`, :mod:`vidrec.features.video_stats` and
:mod:`vidrec.features.store.deltas`. Backends (embedded SQLite, shared Redis) only
store and fetch raw mergeable values; video rates and age are derived per read by
:func:`vidrec.features.video_stats.derive_video_stats`, the code batch statistics use.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from vidrec.data.schema import COMPLETION_THRESHOLD, TIMESTAMP
from vidrec.features.store.deltas import Deltas, assemble_user_state, catalogue, compute_deltas, from_us
from vidrec.features.video_stats import PRIOR_WEIGHT, derive_video_stats


@dataclass(frozen=True)
class StoreConfig:
    """How the store turns events into features; saved in the store and checked on open."""

    history_len: int = 50  # videos kept in recent_completed / recent_watched (most recent last)
    threshold: float = COMPLETION_THRESHOLD  # completion that counts as completed (fixed at write time)
    prior_weight: float = PRIOR_WEIGHT  # pseudo-views of the global rate in every video rate

    def __post_init__(self) -> None:
        if not isinstance(self.history_len, int) or self.history_len < 1:
            raise ValueError(f"StoreConfig.history_len must be an integer >= 1, got {self.history_len!r}")
        if not self.threshold > 0:
            raise ValueError(f"StoreConfig.threshold must be positive, got {self.threshold}")
        if not self.prior_weight >= 0:
            raise ValueError(f"StoreConfig.prior_weight must be >= 0, got {self.prior_weight}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass(frozen=True)
class VideoRows:
    """Raw per-video values a backend read: counts with upload time, catalogue totals, clocks."""

    counts: pl.DataFrame  # video_id, *COUNTS, uploaded_us (rows for the requested ids only)
    totals: dict[str, int]  # sum of each count over the catalogue
    last_event_us: int | None
    last_upload_us: int | None


class OnlineStore(ABC):
    """User state, video statistics and video embeddings for serving, one round trip per read.

    Example::

        store = open_store("features.db")            # or "redis://127.0.0.1:6379/0"
        store.bulk_load(train.events, train.videos)  # at train / load time
        store.apply_events(new_events, videos)       # in observe(): the next read sees them
        state = store.get_user_state(["u1"])          # same columns as build_user_state (+ affinities)
        stats = store.get_video_stats(candidate_ids)
        vecs, found = store.get_video_embeddings(candidate_ids)
    """

    def __init__(self, config: StoreConfig | None = None) -> None:
        self.config = config or StoreConfig()

    # ---- writes -------------------------------------------------------------------------

    def bulk_load(self, events: pl.DataFrame, videos: pl.DataFrame) -> None:
        """Replace the store's features (not its embeddings) with those of ``events`` over ``videos``."""
        deltas = compute_deltas(events, videos, self.config.threshold)
        self._reset_features()
        self._write_catalogue(catalogue(videos))
        self._write(deltas)

    def apply_events(self, events: pl.DataFrame, videos: pl.DataFrame) -> None:
        """Merge new events; ``videos`` must hold (at least) every video they refer to."""
        if events.height:
            self._write(compute_deltas(events, videos, self.config.threshold))

    def put_videos(self, videos: pl.DataFrame) -> None:
        """Add or update catalogue entries (new uploads), so their statistics and age can be read."""
        if videos.height:
            self._write_catalogue(catalogue(videos))

    # ---- reads --------------------------------------------------------------------------

    def get_user_state(self, user_ids: list[str] | pl.Series) -> pl.DataFrame:
        """One row per distinct requested user, in request order; users without history are empty.

        Columns: those of :func:`vidrec.features.user_state.build_user_state` plus
        ``category_affinity`` (list of ``{category, views, completions}``) and
        ``creator_affinity`` (list of ``{creator_id, views, dislikes}``).
        """
        ids = [str(u) for u in user_ids]
        firsts, category, creator = self._read_users(list(dict.fromkeys(ids)))
        return assemble_user_state(ids, firsts, category, creator, self.config.history_len)

    def get_video_stats(self, video_ids: list[str] | pl.Series, now: datetime | None = None) -> pl.DataFrame:
        """One row per requested video (in order), the columns of :func:`vidrec.features.video_stats`.

        Counts include every event applied so far. Age is measured at ``now`` (default: the
        latest event applied, as ``video_stats`` does); ids not in the catalogue get null age.
        """
        ids = [str(v) for v in video_ids]
        distinct = list(dict.fromkeys(ids))
        rows = self._read_videos(distinct)
        as_of = now if now is not None else from_us(rows.last_event_us or rows.last_upload_us)
        uploaded = pl.from_epoch(pl.col("uploaded_us"), time_unit="us").dt.replace_time_zone("UTC").cast(TIMESTAMP)
        counts = pl.DataFrame({"video_id": pl.Series(distinct, dtype=pl.String)}).join(
            rows.counts.with_columns(uploaded_at=uploaded), on="video_id", how="left", maintain_order="left"
        )
        stats = derive_video_stats(counts, as_of, self.config.prior_weight, rows.totals)
        if len(distinct) == len(ids):
            return stats
        order = pl.DataFrame({"video_id": pl.Series(ids, dtype=pl.String)})
        return order.join(stats, on="video_id", how="left", maintain_order="left")

    @abstractmethod
    def put_video_embeddings(self, video_ids: list[str], vectors: np.ndarray) -> None:
        """Store (or replace) one float32 vector per video; every vector has the store's dimension."""

    @abstractmethod
    def get_video_embeddings(self, video_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(vectors (n, d) float32, found (n,) bool)``; rows of unknown videos are zeros."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""

    def __enter__(self) -> "OnlineStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- what a backend implements ------------------------------------------------------

    @abstractmethod
    def _reset_features(self) -> None:
        """Forget all user state, video counts, catalogue and clocks (keep embeddings)."""

    @abstractmethod
    def _write_catalogue(self, uploads: pl.DataFrame) -> None:
        """Upsert ``video_id, uploaded_us`` rows."""

    @abstractmethod
    def _write(self, deltas: Deltas) -> None:
        """Merge ``deltas`` atomically: first times with min, counts with +, clocks with max."""

    @abstractmethod
    def _read_users(self, user_ids: list[str]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        """Raw ``firsts``, ``category`` and ``creator`` rows of the users (see :class:`Deltas`)."""

    @abstractmethod
    def _read_videos(self, video_ids: list[str]) -> VideoRows:
        """Raw counts and upload times of the videos, plus totals and clocks."""

    def _check_config(self, stored: str | None) -> str:
        """The config to save; refuse a store written with a different completion threshold."""
        if stored is not None:
            old = json.loads(stored)
            if old.get("threshold") != self.config.threshold:
                raise ValueError(
                    f"this feature store was written with completion threshold {old.get('threshold')}, "
                    f"not {self.config.threshold}: open it with that threshold or bulk_load it again elsewhere"
                )
        return self.config.to_json()


FIRSTS_SCHEMA = {"user_id": pl.String, "kind": pl.String, "video_id": pl.String, "ts_us": pl.Int64}
CATEGORY_SCHEMA = {"user_id": pl.String, "category": pl.String, "views": pl.Int64, "completions": pl.Int64}
CREATOR_SCHEMA = {"user_id": pl.String, "creator_id": pl.String, "views": pl.Int64, "dislikes": pl.Int64}
