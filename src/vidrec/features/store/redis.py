"""The shared backend: a Redis server that several serving replicas read and update.

Layout under a key prefix (default ``vidrec:``): per user, four sorted sets (seen,
watched, completed, disliked) scored by first time in epoch microseconds -- merged with
``ZADD LT`` and read newest-last with ``ZRANGE``, ties ordered by video id exactly as
:func:`vidrec.features.user_state.build_user_state` orders them -- and four affinity
hashes; per video, one hash per count (``HINCRBY``), the upload time and the embedding
(raw float32 bytes); catalogue totals; and a clock sorted set merged with ``ZADD GT``.
A write is one ``MULTI/EXEC`` transaction; a read is one pipeline (one round trip).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from vidrec.features.store.base import CATEGORY_SCHEMA, CREATOR_SCHEMA, FIRSTS_SCHEMA, OnlineStore, StoreConfig, VideoRows
from vidrec.features.store.deltas import COUNTS, KINDS, Deltas, as_matrix, place

_AFFINITY = {  # hash suffix -> (frame, key column, count column)
    "cat_views": ("category", "category", "views"),
    "cat_completions": ("category", "category", "completions"),
    "creator_views": ("creator", "creator_id", "views"),
    "creator_dislikes": ("creator", "creator_id", "dislikes"),
}
_CHUNK = 5_000  # fields per command: small requests, and under Lua's unpack() limit

# HINCRBY of many fields in one atomic command: ARGV = field1, n1, field2, n2, ...
_HINCRBY_MANY = """
for i = 1, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
return #ARGV / 2
"""

# HMGET of the same integer fields from several hashes, joined server-side into one
# comma-separated string per hash (missing: the int64 minimum), so the client parses a handful of
# replies instead of one per (hash, field).
_HMGET_JOINED = """
local out = {}
for k = 1, #KEYS do
  local vals = redis.call('HMGET', KEYS[k], unpack(ARGV))
  for i = 1, #vals do if not vals[i] then vals[i] = '-9223372036854775808' end end
  out[k] = table.concat(vals, ',')
end
return out
"""


class RedisStore(OnlineStore):
    """:class:`OnlineStore` on a Redis server at ``url`` (``redis://host:port/db``), keys under ``prefix``."""

    def __init__(self, url: str, config: StoreConfig | None = None, prefix: str = "vidrec:", **client_kwargs: Any):
        try:
            import redis  # optional dependency, imported only when a Redis store is opened
        except ImportError as exc:
            raise ImportError("the Redis feature store needs the redis client: pip install redis==8.1.0") from exc

        super().__init__(config)
        if not prefix or any(ch in prefix for ch in "*?[]\\"):
            raise ValueError(f"Redis key prefix must be non-empty without glob characters, got {prefix!r}")
        self.prefix = prefix
        self._client = redis.Redis.from_url(url, **client_kwargs)
        try:
            stored = self._client.hget(self._k("meta"), "config")
        except redis.exceptions.ConnectionError as exc:
            raise ValueError(f"cannot reach the Redis feature store at {url}: {exc}; is redis-server running?") from exc
        saved = self._check_config(None if stored is None else stored.decode())
        self._client.hset(self._k("meta"), "config", saved)
        self._hincrby_many = self._client.register_script(_HINCRBY_MANY)
        self._hmget_joined = self._client.register_script(_HMGET_JOINED)

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def close(self) -> None:
        self._client.close()

    # ---- writes -------------------------------------------------------------------------

    def _reset_features(self) -> None:
        keep = {self._k("meta").encode(), self._k("emb").encode()}
        batch: list[bytes] = []
        for key in self._client.scan_iter(match=self.prefix + "*", count=1000):
            if key not in keep:
                batch.append(key)
            if len(batch) >= 1000:
                self._client.unlink(*batch)
                batch = []
        if batch:
            self._client.unlink(*batch)

    def _write_catalogue(self, uploads: pl.DataFrame) -> None:
        pipe = self._client.pipeline(transaction=True)
        self._catalogue(pipe, uploads)
        pipe.execute()

    def _catalogue(self, pipe: Any, uploads: pl.DataFrame) -> None:
        ids, us = uploads["video_id"].to_list(), uploads["uploaded_us"].to_list()
        for s in range(0, len(ids), _CHUNK):
            pipe.hset(self._k("upl"), mapping=dict(zip(ids[s : s + _CHUNK], us[s : s + _CHUNK])))
        if ids:
            pipe.zadd(self._k("clock"), {"last_upload_us": max(us)}, gt=True)

    def _write(self, deltas: Deltas) -> None:
        pipe = self._client.pipeline(transaction=True)
        self._catalogue(pipe, deltas.uploads)
        counts = deltas.video_counts
        for c in COUNTS:
            self._incr(pipe, self._k("cnt", c), counts["video_id"].to_list(), counts[c].to_list())
        self._incr(pipe, self._k("tot"), list(COUNTS), [int(counts[c].sum()) for c in COUNTS])
        if deltas.last_event_us is not None:
            pipe.zadd(self._k("clock"), {"last_event_us": deltas.last_event_us}, gt=True)
        firsts = deltas.firsts.sort("user_id", "kind")
        for (user, kind), vids, ts in _groups(firsts, ["user_id", "kind"], "video_id", "ts_us"):
            for s in range(0, len(vids), _CHUNK):
                pipe.zadd(self._k("u", user, kind), dict(zip(vids[s : s + _CHUNK], ts[s : s + _CHUNK])), lt=True)
        frames = {"category": deltas.category, "creator": deltas.creator}
        for suffix, (frame, key, count) in _AFFINITY.items():
            df = frames[frame].filter(pl.col(count) != 0).sort("user_id")
            for (user,), keys, values in _groups(df, ["user_id"], key, count):
                self._incr(pipe, self._k("u", user, suffix), keys, values)
        pipe.execute()

    def _incr(self, pipe: Any, key: str, fields: list[str], values: list[int]) -> None:
        """Queue atomic ``HINCRBY`` of many fields (zero increments skipped)."""
        args = [x for f, v in zip(fields, values) if v for x in (f, int(v))]
        for s in range(0, len(args), 2 * _CHUNK):
            self._hincrby_many(keys=[key], args=args[s : s + 2 * _CHUNK], client=pipe)

    def put_video_embeddings(self, video_ids: list[str], vectors: np.ndarray) -> None:
        ids = [str(v) for v in video_ids]
        mat = as_matrix(ids, vectors)
        dim = self._client.hget(self._k("meta"), "dim")
        if dim is not None and int(dim) != mat.shape[1]:
            raise ValueError(f"this store holds {int(dim)}-dimensional embeddings, got {mat.shape[1]}-dimensional ones")
        pipe = self._client.pipeline(transaction=True)
        pipe.hset(self._k("meta"), "dim", mat.shape[1])
        for s in range(0, len(ids), _CHUNK):
            pipe.hset(self._k("emb"), mapping={v: mat[i].tobytes() for i, v in enumerate(ids[s : s + _CHUNK], s)})
        pipe.execute()

    # ---- reads --------------------------------------------------------------------------

    def _read_users(self, user_ids: list[str]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        n = self.config.history_len
        pipe = self._client.pipeline(transaction=False)
        for user in user_ids:
            for kind in KINDS:
                start = -n if kind in ("watched", "completed") else 0
                pipe.zrange(self._k("u", user, kind), start, -1, withscores=True)
            for suffix in _AFFINITY:
                pipe.hgetall(self._k("u", user, suffix))
        replies = iter(pipe.execute())
        cols: dict[str, list] = {c: [] for c in FIRSTS_SCHEMA}
        affinity: dict[str, tuple[list, list, list]] = {s: ([], [], []) for s in _AFFINITY}
        for user in user_ids:
            for kind in KINDS:
                pairs = next(replies)
                cols["user_id"] += [user] * len(pairs)
                cols["kind"] += [kind] * len(pairs)
                cols["video_id"] += [m for m, _ in pairs]
                cols["ts_us"] += [int(s) for _, s in pairs]
            for suffix in _AFFINITY:
                got = next(replies)
                users, keys, values = affinity[suffix]
                users += [user] * len(got)
                keys += list(got)
                values += list(got.values())
        firsts = pl.DataFrame(
            {**cols, "video_id": _strings(cols["video_id"])}, schema=FIRSTS_SCHEMA
        )
        category = _affinity_frame(affinity, "cat_views", "cat_completions", CATEGORY_SCHEMA)
        creator = _affinity_frame(affinity, "creator_views", "creator_dislikes", CREATOR_SCHEMA)
        return firsts, category, creator

    def _read_videos(self, video_ids: list[str]) -> VideoRows:
        pipe = self._client.pipeline(transaction=False)
        pipe.hgetall(self._k("tot"))
        pipe.zrange(self._k("clock"), 0, -1, withscores=True)
        keys = [self._k("upl"), *(self._k("cnt", c) for c in COUNTS)]
        for s in range(0, len(video_ids), _CHUNK):
            self._hmget_joined(keys=keys, args=video_ids[s : s + _CHUNK], client=pipe)
        tot, clock, *chunks = pipe.execute()
        columns = [_joined_ints([chunk[k] for chunk in chunks]) for k in range(len(keys))]
        raw = pl.DataFrame({"uploaded_us": columns[0], **dict(zip(COUNTS, columns[1:]))})
        missing = np.iinfo(np.int64).min
        frame = raw.select(
            pl.Series("video_id", video_ids, dtype=pl.String),
            *(pl.when(pl.col(c) != missing).then(pl.col(c)).alias(c) for c in raw.columns),
        )
        clocks = {m.decode(): int(s) for m, s in clock}
        return VideoRows(
            frame,
            {c: int(tot.get(c.encode(), 0)) for c in COUNTS},
            clocks.get("last_event_us"),
            clocks.get("last_upload_us"),
        )

    def get_video_embeddings(self, video_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        ids = [str(v) for v in video_ids]
        pipe = self._client.pipeline(transaction=False)
        pipe.hget(self._k("meta"), "dim")
        if ids:
            pipe.hmget(self._k("emb"), ids)
        dim, *rest = pipe.execute()
        blobs = rest[0] if rest else []
        d = 0 if dim is None else int(dim)
        hits = [b for b in blobs if b is not None]
        found = [v for v, b in zip(ids, blobs) if b is not None]
        stored = np.frombuffer(b"".join(hits), dtype=np.float32).reshape(len(hits), d)
        return place(ids, found, stored)


def _groups(df: pl.DataFrame, keys: list[str], a: str, b: str) -> list[tuple[tuple, list, list]]:
    """``(key values, a values, b values)`` per run of equal ``keys`` in a frame sorted by them."""
    if not df.height:
        return []
    grouped = df.group_by(keys, maintain_order=True).agg(pl.col(a), pl.col(b))
    key_rows = grouped.select(keys).rows()
    return list(zip(key_rows, grouped[a].to_list(), grouped[b].to_list()))


def _strings(values: list[bytes]) -> pl.Series:
    return pl.Series(values, dtype=pl.Binary).cast(pl.String)


def _ints(values: list[bytes | None]) -> pl.Series:
    return pl.Series(values, dtype=pl.Binary).cast(pl.String).cast(pl.Int64)


def _joined_ints(parts: list[bytes]) -> np.ndarray:
    """int64 values of the comma-joined replies of :data:`_HMGET_JOINED`, parsed by numpy."""
    if not parts:
        return np.zeros(0, dtype=np.int64)
    return np.array(b",".join(parts).split(b","), dtype=np.bytes_).astype(np.int64)


def _affinity_frame(
    affinity: dict[str, tuple[list, list, list]], first: str, second: str, schema: dict[str, pl.DataType]
) -> pl.DataFrame:
    """Outer-join two affinity hashes (e.g. views and completions per category) into one frame."""
    user, key, a, b = list(schema)
    frames = []
    for suffix, name in ((first, a), (second, b)):
        users, keys, values = affinity[suffix]
        frames.append(pl.DataFrame({user: users, key: _strings(keys), name: _ints(values)},
                                   schema={user: pl.String, key: pl.String, name: pl.Int64}))  # fmt: skip
    out = frames[0].join(frames[1], on=[user, key], how="full", coalesce=True)
    return out.with_columns(pl.col(a).fill_null(0), pl.col(b).fill_null(0)).select(list(schema))
