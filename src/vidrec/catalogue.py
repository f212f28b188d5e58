"""The catalogue: every video the system can serve, mapped to a dense row once.

Every stage and store reads one :class:`Catalogue`: ids become rows when the catalogue is
built (or a video is uploaded), and from then on candidates, features and slates move as
integer rows into its numpy columns. Uploads append rows (stages that keep per-row arrays
extend them through :meth:`Catalogue.subscribe`), removals clear ``available``; a row is
never reused, so anything keyed by row stays valid while the catalogue grows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from vidrec.data.schema import TIMESTAMP, VIDEOS_OPTIONAL, VIDEOS_REQUIRED

Listener = Callable[[np.ndarray, pl.DataFrame], None]


class Codes:
    """Strings <-> dense int codes (categories, creators, tags, languages); grows, never renumbers."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self.names: list[str] = []
        self.index: dict[str, int] = {}
        self.encode(names)

    def __len__(self) -> int:
        return len(self.names)

    def encode(self, values: Iterable[str | None]) -> np.ndarray:
        """int32 code of each value, adding new ones; None -> -1."""
        out = []
        for v in values:
            if v is None:
                out.append(-1)
                continue
            code = self.index.get(v)
            if code is None:
                code = self.index[v] = len(self.names)
                self.names.append(v)
            out.append(code)
        return np.asarray(out, dtype=np.int32)

    def array(self) -> np.ndarray:
        """The names as a numpy object array (index = code), cached until new names arrive."""
        cached = getattr(self, "_array", None)
        if cached is None or len(cached) != len(self.names):
            cached = self._array = np.asarray(self.names, dtype=object)
        return cached

    def lookup(self, values: Iterable[str | None]) -> np.ndarray:
        """int32 code of each value; unknown or None -> -1 (nothing added)."""
        get = self.index.get
        return np.asarray([-1 if v is None else get(v, -1) for v in values], dtype=np.int32)


@dataclass(frozen=True)
class CSR:
    """One variable-length list of int codes per row: row i is ``codes[offsets[i]:offsets[i+1]]``."""

    offsets: np.ndarray  # (n + 1,) int64
    codes: np.ndarray  # (nnz,) int32

    @classmethod
    def from_lists(cls, lists: Sequence[np.ndarray]) -> CSR:
        lengths = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
        codes = np.concatenate(lists).astype(np.int32) if len(lists) else np.zeros(0, np.int32)
        return cls(np.concatenate([[0], np.cumsum(lengths)]), codes)

    def extend(self, other: CSR) -> CSR:
        return CSR(np.concatenate([self.offsets, self.offsets[-1] + other.offsets[1:]]),
                   np.concatenate([self.codes, other.codes]))  # fmt: skip

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(offsets (len(rows)+1,), codes) of the given rows' lists, in row order."""
        starts, ends = self.offsets[rows], self.offsets[rows + 1]
        lengths = ends - starts
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        idx = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        return offsets, self.codes[idx]


class _Column:
    """A numpy column with spare capacity: appends are amortised O(1), readers see ``values``."""

    def __init__(self, values: np.ndarray) -> None:
        self._data = np.array(values)
        self.n = len(values)

    @property
    def values(self) -> np.ndarray:
        return self._data[: self.n]

    def extend(self, new: np.ndarray) -> None:
        new = np.asarray(new)
        need = self.n + len(new)
        if need > len(self._data) or new.dtype.itemsize > self._data.dtype.itemsize:
            dtype = np.promote_types(self._data.dtype, new.dtype)
            grown = np.zeros(max(need, 2 * len(self._data)), dtype=dtype)
            grown[: self.n] = self._data[: self.n]
            self._data = grown
        self._data[self.n : need] = new
        self.n = need


def _utf8(ids: Sequence[str]) -> np.ndarray:
    """Ids as a fixed-width bytes array: byte order of UTF-8 is the strings' order (tie-breaks)."""
    return np.array([i.encode() for i in ids], dtype=np.bytes_) if len(ids) else np.zeros(0, dtype="S1")


class Catalogue:
    """Videos by dense row: ids, creators, categories, languages, tags, durations, upload times, availability.

    Example:
        >>> cat = Catalogue(videos)                      # doctest: +SKIP
        >>> rows = cat.rows(["v1", "nope"])              # array([0, -1])
        >>> cat.creator[rows[rows >= 0]]                 # creator codes; cat.creators.names[code]
    """

    def __init__(self, videos: pl.DataFrame) -> None:
        missing = [c for c in VIDEOS_REQUIRED if c not in videos.columns]
        if missing:
            raise ValueError(f"the videos table has no column {', '.join(map(repr, missing))}")
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self._removal_listeners: list[Callable[[np.ndarray], None]] = []
        self._lookup: pl.DataFrame | None = None
        self._tag_cache: dict[bool, CSR] = {}
        self.creators, self.categories, self.languages, self.tags_vocab = Codes(), Codes(), Codes(), Codes()
        frame = _conform(videos)
        if frame["video_id"].n_unique() != frame.height:
            raise ValueError("the videos table holds the same video_id more than once")
        self._frame = frame
        self.ids: list[str] = frame["video_id"].to_list()
        self._row: dict[str, int] = {v: i for i, v in enumerate(self.ids)}
        cols = self._columns(frame)
        self._cols = {name: _Column(values) for name, values in cols.items() if name != "tags"}
        self.tags: CSR = cols["tags"]
        self._upload_order = np.zeros(0, dtype=np.int64)  # rows by upload time, and their times
        self._upload_times = np.zeros(0, dtype=np.int64)
        self._sort_uploads()
        self._creator_first = np.zeros(0, dtype=np.int64)
        self._note_creators()

    # ---- reading --------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, video_id: object) -> bool:
        return video_id in self._row

    @property
    def creator(self) -> np.ndarray:
        """(n,) int32 creator code of every row."""
        return self._cols["creator"].values

    @property
    def category(self) -> np.ndarray:
        return self._cols["category"].values

    @property
    def language(self) -> np.ndarray:
        """(n,) int32 language code, -1 where unknown."""
        return self._cols["language"].values

    @property
    def uploaded_us(self) -> np.ndarray:
        """(n,) int64 upload time, epoch microseconds."""
        return self._cols["uploaded_us"].values

    @property
    def duration(self) -> np.ndarray:
        return self._cols["duration"].values

    @property
    def available(self) -> np.ndarray:
        """(n,) bool: false once a video is removed."""
        return self._cols["available"].values

    @property
    def id_keys(self) -> np.ndarray:
        """(n,) bytes keys ordered as the ids: sort ties by ``id_keys[rows]``."""
        return self._cols["id_key"].values

    def row(self, video_id: str) -> int | None:
        return self._row.get(video_id)

    def rows(self, video_ids: Iterable[str]) -> np.ndarray:
        """int64 row of each id; -1 for ids not in the catalogue."""
        get = self._row.get
        return np.fromiter((get(v, -1) for v in video_ids), dtype=np.int64)

    def rows_of(self, ids: pl.Series | Sequence[str]) -> np.ndarray:
        """:meth:`rows` for many ids at once (a columnar join; for building tables, not requests)."""
        with self._lock:
            if self._lookup is None or self._lookup.height != len(self.ids):
                self._lookup = pl.DataFrame({"video_id": self.ids, "row": np.arange(len(self.ids), dtype=np.int64)},
                                            schema={"video_id": pl.String, "row": pl.Int64})  # fmt: skip
            lookup = self._lookup
        query = pl.DataFrame({"video_id": pl.Series("video_id", ids, dtype=pl.String)})
        return query.join(lookup, on="video_id", how="left", maintain_order="left")["row"].fill_null(-1).to_numpy()

    def ids_of(self, rows: np.ndarray) -> list[str]:
        ids = self.ids
        return [ids[r] for r in np.asarray(rows).tolist()]

    def recommendable(self, rows: np.ndarray, now_us: int) -> np.ndarray:
        """(len(rows),) bool: available and uploaded by ``now``."""
        return self.available[rows] & (self.uploaded_us[rows] <= now_us)

    def uploaded_between(self, lo_us: int, hi_us: int) -> np.ndarray:
        """Rows uploaded in ``[lo_us, hi_us]``, oldest first (a slice of the upload order)."""
        with self._lock:
            a = np.searchsorted(self._upload_times, lo_us, side="left")
            b = np.searchsorted(self._upload_times, hi_us, side="right")
            return self._upload_order[a:b].copy()

    def not_yet_uploaded(self, now_us: int) -> np.ndarray:
        """Rows whose upload time is after ``now`` (dated in the future), sorted."""
        with self._lock:
            start = np.searchsorted(self._upload_times, now_us, side="right")
            return np.sort(self._upload_order[start:])

    def cross_tags(self, title_words: bool) -> CSR:
        """Per row, its tags plus (``title_words``) its title words as ``title:`` tags, as codes.

        The tag vocabulary of the user x tag features (:func:`vidrec.features.crosses.cross_tags`).
        """
        with self._lock:
            if title_words not in self._tag_cache:
                self._tag_cache[title_words] = self._encode_tags(self._frame, title_words)
            return self._tag_cache[title_words]

    def meta(self, rows: np.ndarray, title_words: bool) -> pl.DataFrame:
        """``video_id, creator_id, category, duration_seconds, language, tags`` (cross tags) of ``rows``:
        what the online store's deltas read of each video."""
        import pyarrow as pa

        rows = np.asarray(rows, dtype=np.int64)
        offsets, codes = self.cross_tags(title_words).gather(rows)
        lang = self.language[rows]
        names = pa.array(self.tags_vocab.array()[codes].tolist(), type=pa.string())
        tags = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), names)
        names = self.languages.array()
        languages = [names[c] if c >= 0 else None for c in lang.tolist()]
        return pl.DataFrame({
            "video_id": pl.Series([self.ids[r] for r in rows.tolist()], dtype=pl.String),
            "creator_id": pl.Series(self.creators.array()[self.creator[rows]].tolist(), dtype=pl.String),
            "category": pl.Series(self.categories.array()[self.category[rows]].tolist(), dtype=pl.String),
            "duration_seconds": self.duration[rows],
            "language": pl.Series(languages, dtype=pl.String),
            "tags": pl.Series(tags, dtype=pl.List(pl.String)),
        })  # fmt: skip

    @property
    def frame(self) -> pl.DataFrame:
        """The catalogue as a canonical videos table (row order), availability current."""
        with self._lock:
            return self._frame.with_columns(available=pl.Series(self.available.copy()))

    def videos_at(self, rows: np.ndarray) -> pl.DataFrame:
        """The videos table's ``rows`` (in that order), availability current: a page costs its length."""
        rows = np.asarray(rows, dtype=np.int64)
        with self._lock:
            return self._frame[rows].with_columns(available=pl.Series("available", self.available[rows], pl.Boolean))

    # ---- changing ---------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(rows, videos)`` after every upload, with the new rows and their table."""
        if listener not in self._listeners:
            self._listeners.append(listener)

    def on_remove(self, listener: Callable[[np.ndarray], None]) -> None:
        """Call ``listener(rows)`` after every removal."""
        if listener not in self._removal_listeners:
            self._removal_listeners.append(listener)

    def add(self, videos: pl.DataFrame) -> np.ndarray:
        """Append validated uploads (ids must be new); returns their rows. Listeners run after."""
        frame = _conform(videos)
        with self._lock:
            new_ids = frame["video_id"].to_list()
            taken = [v for v in new_ids if v in self._row]
            if taken or len(set(new_ids)) != len(new_ids):
                raise ValueError(f"video ids already in the catalogue or repeated: {', '.join(taken[:5])}")
            start = len(self.ids)
            cols = self._columns(frame)
            for name, col in self._cols.items():
                col.extend(cols[name])
            self.tags = self.tags.extend(cols["tags"])
            for words, csr in list(self._tag_cache.items()):
                self._tag_cache[words] = csr.extend(self._encode_tags(frame, words))
            self._frame = pl.concat([self._frame, frame.select(self._frame.columns)], how="vertical", rechunk=False)
            for i, v in enumerate(new_ids, start):
                self._row[v] = i
            self.ids.extend(new_ids)
            self._sort_uploads(start)
            self._note_creators(start)
            rows = np.arange(start, len(self.ids), dtype=np.int64)
        for listener in self._listeners:
            listener(rows, frame)
        return rows

    def remove(self, rows: np.ndarray) -> int:
        """Mark rows unavailable; returns how many were available before."""
        rows = np.asarray(rows, dtype=np.int64)
        with self._lock:
            avail = self._cols["available"].values
            was = int(avail[rows].sum())
            avail[rows] = False
        for listener in self._removal_listeners:
            listener(rows)
        return was

    # ---- internals ----------------------------------------------------------------------

    def _columns(self, frame: pl.DataFrame) -> dict:
        language = frame["language"].to_list() if "language" in frame.columns else [None] * frame.height
        tags = [np.asarray(self.tags_vocab.encode(t or []), dtype=np.int32) for t in frame["tags"].to_list()]
        return {
            "creator": self.creators.encode(frame["creator_id"].to_list()),
            "category": self.categories.encode(frame["category"].to_list()),
            "language": self.languages.encode(language),
            "uploaded_us": frame["uploaded_at"].cast(TIMESTAMP).dt.epoch("us").to_numpy().astype(np.int64),
            "duration": frame["duration_seconds"].cast(pl.Float64).to_numpy(),
            "available": frame["available"].fill_null(False).to_numpy().astype(bool),
            "id_key": _utf8(frame["video_id"].to_list()),
            "tags": CSR.from_lists(tags),
        }

    def _encode_tags(self, frame: pl.DataFrame, title_words: bool) -> CSR:
        from vidrec.features.crosses import cross_tags

        lists = cross_tags(frame, title_words)["tags"].to_list()
        return CSR.from_lists([self.tags_vocab.encode(t or []) for t in lists])

    @property
    def creator_first_us(self) -> np.ndarray:
        """(creators,) int64 each creator's first upload time (kept as uploads arrive)."""
        return self._creator_first

    def _note_creators(self, start: int = 0) -> None:
        first = np.full(len(self.creators), np.iinfo(np.int64).max, dtype=np.int64)
        first[: len(self._creator_first)] = self._creator_first
        np.minimum.at(first, self.creator[start:], self.uploaded_us[start:])
        self._creator_first = first

    def _sort_uploads(self, start: int = 0) -> None:
        """Keep rows ordered by upload time: appended when the new ones are the latest, else re-sorted."""
        times = self.uploaded_us
        new = times[start:]
        latest = self._upload_times[-1] if start and len(self._upload_times) else None
        if latest is not None and len(new) and new.min() >= latest:
            order = start + np.argsort(new, kind="stable")
            self._upload_order = np.concatenate([self._upload_order, order])
            self._upload_times = np.concatenate([self._upload_times, times[order]])
            return
        self._upload_order = np.argsort(times, kind="stable")
        self._upload_times = times[self._upload_order]


def _conform(videos: pl.DataFrame) -> pl.DataFrame:
    """The canonical columns (optional ones null when absent) in canonical types, extras dropped."""
    spec = {**VIDEOS_REQUIRED, **VIDEOS_OPTIONAL}
    return videos.select(
        pl.col(c).cast(t) if c in videos.columns else pl.lit(None, dtype=t).alias(c) for c, t in spec.items()
    )
