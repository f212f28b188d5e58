"""The online store: everything a request reads that events change, kept current by the events.

A store is derived state: a model version's snapshot (its training log, aggregated) plus
every batch of the durable :class:`~vidrec.features.store.log.EventLog` applied since, in
log order, each exactly once (a per-log cursor moves in the same transaction). It holds

* per user: the video sets (seen, watched, completed, disliked, last watched) with their
  times, the totals and the user x category / creator / tag / language counts the ranker's
  features read, and the profile (demographics);
* per video and platform-wide: event counts and per-category / tag / language counters;
* a *feed*: the platform-wide part of every applied batch (count deltas, uploads,
  removals) in apply order, which each serving process reads to keep its in-memory copy
  of the catalogue and the counts (:class:`vidrec.features.live.LiveCounts`) current.

A request reads one user's record and the feed since its last read in one round trip
(:meth:`OnlineStore.read`). Backends: embedded SQLite (one machine, any number of
processes) and Redis (replicas anywhere).
"""

from __future__ import annotations

import io
import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from vidrec.features.derive import COUNTS
from vidrec.features.store.deltas import KINDS, PAIR_TABLES, USER_COUNTS, Deltas, StoreConfig

Position = str
"""A place in the feed (backend-specific, compared only by the backend that gave it)."""


@dataclass
class UserRecord:
    """One user's raw state as stored (strings, not yet catalogue rows)."""

    user_id: str
    lists: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # kind -> [(video_id, ts_us)] by time
    counts: dict[str, float] = field(default_factory=dict)  # USER_COUNTS
    pairs: dict[str, list[tuple]] = field(default_factory=dict)  # table -> [(key, a, b, c, last_us)]
    profile: dict[str, str] = field(default_factory=dict)

    @property
    def known(self) -> bool:
        """Whether the store holds anything about this user."""
        return bool(self.profile or any(self.lists.values()) or any(self.counts.values()))


@dataclass(frozen=True)
class FeedEntry:
    """One applied batch as every process needs it: ``counts`` (deltas), ``uploads`` or ``removals``."""

    position: Position
    kind: str
    body: bytes

    def counts(self) -> CountDeltas:
        return CountDeltas.from_json(self.body)

    def frame(self) -> pl.DataFrame:
        """The uploaded videos or the removed ``video_id, at`` rows."""
        return pl.read_ipc(io.BytesIO(self.body))


@dataclass(frozen=True)
class CountDeltas:
    """The platform-wide part of :class:`Deltas`, as carried by the feed."""

    videos: dict[str, list]  # video_id, *COUNTS
    attributes: dict[str, list]  # kind, name, events, views
    totals: dict[str, float]
    last_event_us: int | None

    @classmethod
    def of(cls, deltas: Deltas) -> CountDeltas:
        return cls(deltas.video_counts.select("video_id", *COUNTS).to_dict(as_series=False),
                   deltas.attributes.to_dict(as_series=False), deltas.totals, deltas.last_event_us)  # fmt: skip

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, body: bytes) -> CountDeltas:
        return cls(**json.loads(body))


def frame_bytes(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_ipc(buf)
    return buf.getvalue()


@dataclass(frozen=True)
class Snapshot:
    """Everything a serving process copies at start: counts, catalogue changes, and where the feed was."""

    generation: str
    position: Position
    video_counts: pl.DataFrame  # video_id, *COUNTS
    attributes: pl.DataFrame  # kind, name, events, views
    totals: dict[str, float]
    catalogue: list[FeedEntry]  # uploads and removals applied so far, in order


@dataclass(frozen=True)
class Applied:
    """A batch of the log ready to apply: its feed entry, and its user deltas (events only)."""

    kind: str
    feed: bytes
    deltas: Deltas | None = None


class StoreOutdated(Exception):
    """The store's cursor moved since it was read (another writer applied first): read it again."""


class OnlineStore(ABC):
    """User records, platform counts and the feed; one backend per location (see module doc)."""

    FEED_START: Position = "0"

    def __init__(self, config: StoreConfig | None = None) -> None:
        self.config = config or StoreConfig()

    # ---- what a backend implements ------------------------------------------------------

    @abstractmethod
    def generation(self) -> str | None:
        """The id of the current load (None: the store is empty and must be loaded)."""

    @abstractmethod
    def load(self, deltas: Deltas, profiles: pl.DataFrame, generation: str, replace: bool = True) -> bool:
        """Replace everything with the snapshot ``deltas`` (+ user ``profiles``); cursors and feed restart.

        ``replace=False`` loads only an empty store (atomically: of several processes starting
        together one loads, the others find it loaded). Returns whether it loaded.
        """

    @abstractmethod
    def cursor(self, log_id: str) -> int:
        """The last batch of log ``log_id`` applied (0: none)."""

    @abstractmethod
    def apply(self, log_id: str | None, expected: int, through: int, batches: list[Applied]) -> None:
        """Apply ``batches`` atomically, moving log ``log_id``'s cursor from ``expected`` to ``through``.

        Raises :class:`StoreOutdated` (and changes nothing) when the cursor is not ``expected``.
        ``log_id`` None applies without a log (an in-memory model fed directly).
        """

    def read(self, user_id: str, since: Position) -> tuple[UserRecord, list[FeedEntry], str | None]:
        """One round trip: the user's record, the feed after ``since``, and the generation."""
        records, feed, generation = self.read_many([user_id], since)
        return records[0], feed, generation

    @abstractmethod
    def read_many(self, user_ids: list[str], since: Position) -> tuple[list[UserRecord], list[FeedEntry], str | None]:
        """One round trip: the users' records (in order), the feed after ``since``, the generation."""

    @abstractmethod
    def snapshot(self) -> Snapshot:
        """A consistent copy of the platform-wide state and the feed position it corresponds to."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""

    # ---- shared -------------------------------------------------------------------------

    def order(self, position: Position) -> tuple[int, ...]:
        """A sortable key of a feed position (later positions compare greater)."""
        return (int(position),)

    def __enter__(self) -> OnlineStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _check_config(self, stored: str | None) -> str:
        """The config to save; refuse a store whose counts were written under other rules."""
        if stored is not None:
            old = StoreConfig(**json.loads(stored))
            if not old.written_the_same(self.config):
                raise ValueError(
                    f"this feature store was written with completion threshold {old.threshold}, cap "
                    f"{old.completion_cap}, title words {old.title_words}; the model needs {self.config.threshold}, "
                    f"{self.config.completion_cap}, {self.config.title_words}: use another store location"
                )
        return json.dumps(asdict(self.config), sort_keys=True)


KIND_CODE = {k: i for i, k in enumerate(KINDS)}
PAIR_CODE = {t: i for i, t in enumerate(PAIR_TABLES)}
__all__ = ["USER_COUNTS", "Applied", "CountDeltas", "FeedEntry", "OnlineStore", "Snapshot", "UserRecord"]
