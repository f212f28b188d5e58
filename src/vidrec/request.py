"""A request, hydrated once: the user's state as catalogue rows, their live counts, the clock and k.

Every stage reads the same :class:`Request`; nothing downstream goes back to the store or
maps an id again. :func:`hydrate` builds one from a :class:`~vidrec.features.store.UserRecord`
(what the online store holds about the user) and the :class:`~vidrec.catalogue.Catalogue`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vidrec.catalogue import Catalogue, Codes
from vidrec.features.store.base import UserRecord
from vidrec.features.store.deltas import PAIR_TABLES, USER_COUNTS

_EMPTY = np.zeros(0, dtype=np.int64)


def _none() -> np.ndarray:
    return _EMPTY


@dataclass(frozen=True)
class Pairs:
    """A user's counts per attribute value (category, creator, tag or language), sorted by code."""

    codes: np.ndarray  # (m,) int32, sorted
    counts: np.ndarray  # (m, 3) int64: the table's count columns (PAIR_TABLES), zero-padded
    last_us: np.ndarray  # (m,) int64: last dislike time (creator table), -1 when none

    @classmethod
    def empty(cls) -> Pairs:
        return cls(np.zeros(0, np.int32), np.zeros((0, 3), np.int64), np.zeros(0, np.int64))

    def lookup(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(counts (n, 3), found (n,)) of each code; zeros where the user has none."""
        pos = np.searchsorted(self.codes, codes)
        pos = np.minimum(pos, max(len(self.codes) - 1, 0))
        found = (len(self.codes) > 0) & (self.codes[pos] == codes) if len(self.codes) else np.zeros(len(codes), bool)
        out = np.zeros((len(codes), 3), dtype=np.int64)
        if len(self.codes):
            out[found] = self.counts[pos[found]]
        return out, found


@dataclass(frozen=True)
class Request:
    """What every stage knows about one request (videos as catalogue rows, most recent last)."""

    user_id: str
    now_us: int
    k: int
    recent_completed: np.ndarray = field(default_factory=_none)  # first completion order, at most history_len
    recent_watched: np.ndarray = field(default_factory=_none)  # first watch order, at most history_len
    seen: np.ndarray = field(default_factory=_none)  # watched, liked or disliked, in first-time order
    disliked: np.ndarray = field(default_factory=_none)
    excluded: np.ndarray = field(default_factory=_none)  # sorted unique seen | disliked: never returned
    completed: np.ndarray = field(default_factory=_none)  # every completed video (re-watch policy), sorted
    last_watched_us: np.ndarray = field(default_factory=_none)  # last watch time of each ``completed`` row
    counts: dict[str, float] = field(default_factory=dict)  # USER_COUNTS of the user so far
    pairs: dict[str, Pairs] = field(default_factory=dict)  # PAIR_TABLES name -> the user's counts
    profile: dict[str, str] = field(default_factory=dict)  # demographics from the users table
    known: bool = False  # the store holds something about the user

    def pair(self, table: str) -> Pairs:
        return self.pairs.get(table) or Pairs.empty()

    def count(self, name: str) -> float:
        return float(self.counts.get(name, 0.0))


def _rows(catalogue: Catalogue, items: list[tuple[str, int]]) -> tuple[np.ndarray, np.ndarray]:
    """(rows, times) of the stored (video_id, ts_us) items in the catalogue, order kept."""
    if not items:
        return _EMPTY, _EMPTY
    ids, times = zip(*items)
    rows = catalogue.rows(ids)
    keep = rows >= 0
    return rows[keep], np.array(times, dtype=np.int64)[keep]


def _pairs(items: list[tuple], vocab: Codes, with_last: bool) -> Pairs:
    if not items:
        return Pairs.empty()
    keys, a, b, c, last = zip(*items)
    codes = vocab.lookup(keys)
    counts = np.array((a, b, c), dtype=np.int64).T
    times = np.array([-1 if t is None else t for t in last], dtype=np.int64) if with_last else np.full(len(keys), -1)
    keep = codes >= 0
    order = np.argsort(codes[keep], kind="stable")
    return Pairs(codes[keep][order], counts[keep][order], times[keep][order])


def hydrate(record: UserRecord, catalogue: Catalogue, now_us: int, k: int, history_len: int) -> Request:
    """The :class:`Request` of ``record`` at ``now_us``: ids mapped to rows once, lists ordered."""
    seen, _ = _rows(catalogue, record.lists.get("seen", []))
    disliked, _ = _rows(catalogue, record.lists.get("disliked", []))
    completed, _ = _rows(catalogue, record.lists.get("completed", []))
    watched, _ = _rows(catalogue, record.lists.get("watched", []))
    last_rows, last_us = _rows(catalogue, record.lists.get("last_watched", []))
    done = np.sort(completed)
    order = np.argsort(last_rows, kind="stable")
    last_sorted, us_sorted = last_rows[order], last_us[order]
    pos = np.minimum(np.searchsorted(last_sorted, done), max(len(last_sorted) - 1, 0))
    done_us = np.full(len(done), -1, dtype=np.int64)
    if len(last_sorted):
        hit = last_sorted[pos] == done
        done_us[hit] = us_sorted[pos[hit]]
    vocabs = {"category": catalogue.categories, "creator": catalogue.creators,
              "tag": catalogue.tags_vocab, "language": catalogue.languages}  # fmt: skip
    return Request(
        user_id=record.user_id, now_us=int(now_us), k=int(k),
        recent_completed=completed[-history_len:], recent_watched=watched[-history_len:],
        seen=seen, disliked=disliked, excluded=np.union1d(seen, disliked),
        completed=done, last_watched_us=done_us,
        counts={c: float(record.counts.get(c, 0.0)) for c in USER_COUNTS},
        pairs={t: _pairs(record.pairs.get(t, []), vocabs[t], t == "creator") for t in PAIR_TABLES},
        profile=dict(record.profile), known=record.known,
    )  # fmt: skip


def from_lists(
    user_id: str,
    lists: dict[str, list[str]],
    catalogue: Catalogue,
    now_us: int,
    k: int,
    profile: dict[str, str] | None = None,
) -> Request:
    """A request from plain state lists (``recent_completed``, ``recent_watched``, ``seen``,
    ``disliked``; most recent last), with no counts: what a user-state frame carries."""

    def rows(name: str) -> np.ndarray:
        r = catalogue.rows(lists.get(name) or [])
        return r[r >= 0]

    seen, disliked = rows("seen"), rows("disliked")
    return Request(
        user_id=user_id, now_us=int(now_us), k=int(k), recent_completed=rows("recent_completed"),
        recent_watched=rows("recent_watched"), seen=seen, disliked=disliked, excluded=np.union1d(seen, disliked),
        profile=dict(profile or {}), known=bool(len(seen) or len(disliked)),
    )  # fmt: skip
