"""This process's copy of the platform-wide counts, kept current by the store's feed.

Per-video event counts, platform totals and per-category / tag / language / creator
counters change with every event but are read for hundreds of candidates per request,
so each serving process holds them in numpy arrays indexed by catalogue row and code,
loaded once from a :class:`~vidrec.features.store.Snapshot` and advanced by the feed
entries every request reads with the user's record. The store stays the source of truth.
"""

from __future__ import annotations

import threading

import numpy as np
import polars as pl

from vidrec.catalogue import Catalogue, Codes
from vidrec.features.derive import COUNTS
from vidrec.features.store.base import CountDeltas, Snapshot
from vidrec.features.store.deltas import ATTRIBUTES, USER_COUNTS

_VOCAB = {"category": "categories", "tag": "tags_vocab", "language": "languages", "creator": "creators"}


class LiveCounts:
    """Video counts by catalogue row, attribute counters by code, platform totals; ``version`` moves on change."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self._lock = threading.Lock()
        self.video = np.zeros((len(catalogue), len(COUNTS)), dtype=np.int64)  # (rows, COUNTS)
        self.events = {a: np.zeros(0, dtype=np.int64) for a in ATTRIBUTES}  # rows counted per code
        self.views = {a: np.zeros(0, dtype=np.int64) for a in ATTRIBUTES}  # watches per code
        self.totals: dict[str, float] = {c: 0.0 for c in USER_COUNTS}
        self.last_event_us: int | None = None
        self.version = 0
        self._distinct: dict[tuple[str, int], int] = {}
        catalogue.subscribe(self._on_upload)

    def _on_upload(self, rows: np.ndarray, videos: pl.DataFrame) -> None:
        with self._lock:
            grow = int(rows[-1]) + 1 - len(self.video)
            if grow > 0:
                self.video = np.vstack([self.video, np.zeros((grow, len(COUNTS)), dtype=np.int64)])

    def _vocab(self, attribute: str) -> Codes:
        return getattr(self.catalogue, _VOCAB[attribute])

    def load(self, snapshot: Snapshot) -> None:
        """Replace everything with the snapshot's counts."""
        with self._lock:
            self.video = np.zeros((len(self.catalogue), len(COUNTS)), dtype=np.int64)
            self.events = {a: np.zeros(0, dtype=np.int64) for a in ATTRIBUTES}
            self.views = {a: np.zeros(0, dtype=np.int64) for a in ATTRIBUTES}
            self.totals = {c: float(snapshot.totals.get(c, 0.0)) for c in USER_COUNTS}
            last = snapshot.totals.get("last_event_us")
            self.last_event_us = None if last is None else int(last)
        self._add(snapshot.video_counts.to_dict(as_series=False), snapshot.attributes.to_dict(as_series=False))

    def add(self, deltas: CountDeltas) -> None:
        """Merge one feed entry's count deltas."""
        with self._lock:
            for c in USER_COUNTS:
                self.totals[c] += float(deltas.totals.get(c, 0.0))
            if deltas.last_event_us is not None:
                self.last_event_us = max(self.last_event_us or deltas.last_event_us, deltas.last_event_us)
        self._add(deltas.videos, deltas.attributes)

    def _add(self, videos: dict[str, list], attributes: dict[str, list]) -> None:
        rows = self.catalogue.rows(videos["video_id"])
        known = rows >= 0
        with self._lock:
            if len(rows) and rows.max(initial=-1) >= len(self.video):
                self.video = np.vstack(
                    [self.video, np.zeros((rows.max() + 1 - len(self.video), len(COUNTS)), np.int64)]
                )
            for j, c in enumerate(COUNTS):
                np.add.at(self.video[:, j], rows[known], np.asarray(videos[c], dtype=np.int64)[known])
            kinds = np.asarray(attributes["kind"], dtype=object)
            for a in ATTRIBUTES:
                mine = kinds == a
                if not mine.any():
                    continue
                names = [n for n, m in zip(attributes["name"], mine) if m]
                codes = self._vocab(a).encode(names).astype(np.int64)
                size = len(self._vocab(a))
                for table, values in ((self.events, attributes["events"]), (self.views, attributes["views"])):
                    if len(table[a]) < size:
                        table[a] = np.concatenate([table[a], np.zeros(size - len(table[a]), dtype=np.int64)])
                    np.add.at(table[a], codes, np.asarray(values, dtype=np.int64)[mine])
            self.version += 1

    def attribute_views(self, attribute: str, codes: np.ndarray) -> np.ndarray:
        """Watches so far per code (0 for codes never counted; code -1 reads 0)."""
        table = self.views[attribute]
        ok = (codes >= 0) & (codes < len(table))
        out = np.zeros(len(codes), dtype=np.int64)
        out[ok] = table[codes[ok]]
        return out

    def distinct(self, attribute: str) -> int:
        """How many values of ``attribute`` have been counted at least once (at least 1)."""
        key = (attribute, self.version)
        if key not in self._distinct:
            self._distinct = {key: max(int((self.events[attribute] > 0).sum()), 1)}
        return self._distinct[key]

    def total(self, name: str) -> float:
        return float(self.totals.get(name, 0.0))
