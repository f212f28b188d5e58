"""The shared backend: a Redis server that several serving replicas read and update.

Layout under a key prefix (one per model version): per user, one sorted set per video set
(``seen``, ``watched``, ``completed``, ``disliked`` merged with ``ZADD LT``; ``last_watched``
with ``ZADD GT``; read newest-last with ``ZRANGE``, ties by video id as the batch definitions
order them), a totals hash, one hash per attribute table (fields ``<key>|a``, ``|b``, ``|c``,
``|l``) and a profile; per video one hash per count; per attribute kind two hashes; the
platform totals; the per-log cursors; the ``feed`` stream every replica reads, and a
``catalogue`` stream of uploads and removals for processes that start later. A write is one
``MULTI/EXEC`` transaction guarded by ``WATCH`` on the cursors; a read is one pipeline.
"""

from __future__ import annotations

import json
import time
from typing import Any

import polars as pl

from vidrec.features.derive import COUNTS
from vidrec.features.store.base import Applied, FeedEntry, OnlineStore, Snapshot, StoreOutdated, UserRecord
from vidrec.features.store.deltas import ATTRIBUTES, FIRST_KINDS, KINDS, PAIR_TABLES, USER_COUNTS, Deltas, StoreConfig

_CHUNK = 5_000  # fields per command: small requests, and under Lua's unpack() limit
_MERGE_PAIRS = """
for i = 1, #ARGV, 3 do
  if ARGV[i + 1] == '+' then
    redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 2])
  else
    local old = redis.call('HGET', KEYS[1], ARGV[i])
    if (not old) or tonumber(old) < tonumber(ARGV[i + 2]) then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2]) end
  end
end
return #ARGV / 3
"""
_COLUMNS = ("a", "b", "c")


class RedisStore(OnlineStore):
    """:class:`OnlineStore` on a Redis server at ``url`` (``redis://host:port/db``), keys under ``prefix``."""

    FEED_START = "0-0"

    def __init__(self, url: str, config: StoreConfig | None = None, prefix: str = "vidrec:", **client_kwargs: Any):
        try:
            import redis  # optional dependency, imported only when a Redis store is opened
        except ImportError as exc:
            raise ImportError("the Redis feature store needs the redis client: pip install redis==8.1.0") from exc

        super().__init__(config)
        if not prefix or any(ch in prefix for ch in "*?[]\\"):
            raise ValueError(f"Redis key prefix must be non-empty without glob characters, got {prefix!r}")
        self.prefix, self.url = prefix, url
        self._redis = redis
        self._client = redis.Redis.from_url(url, **client_kwargs)
        try:
            stored = self._client.hget(self._k("meta"), "config")
        except redis.exceptions.ConnectionError as exc:
            raise ValueError(f"cannot reach the Redis feature store at {url}: {exc}; is redis-server running?") from exc
        saved = self._check_config(None if stored is None else _text(stored))
        self._client.hset(self._k("meta"), "config", saved)
        self._merge_pairs = self._client.register_script(_MERGE_PAIRS)

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def close(self) -> None:
        self._client.close()

    def order(self, position: str) -> tuple[int, ...]:
        ms, _, seq = position.partition("-")
        return (int(ms), int(seq or 0))

    # ---- state ----------------------------------------------------------------------------

    def generation(self) -> str | None:
        got = self._client.hget(self._k("meta"), "generation")
        return None if got is None else _text(got)

    def cursor(self, log_id: str) -> int:
        got = self._client.hget(self._k("cursor"), log_id)
        return 0 if got is None else int(got)

    def load(self, deltas: Deltas, profiles: pl.DataFrame, generation: str, replace: bool = True) -> bool:
        """Replace everything; one loader at a time (a lock key), the generation set last."""
        lock = self._k("lock", "load")
        while not self._client.set(lock, generation, nx=True, px=600_000):
            time.sleep(0.05)
        try:
            if not replace and self.generation() is not None:
                return False
            self._clear()
            for part in _chunks(deltas):
                pipe = self._client.pipeline(transaction=False)
                self._queue_deltas(pipe, part)
                pipe.execute()
            pipe = self._client.pipeline(transaction=False)
            cols = profiles.columns[1:]
            for row in profiles.rows():
                values = {c: v for c, v in zip(cols, row[1:]) if v is not None}
                if values:
                    pipe.set(self._k("u", str(row[0]), "profile"), json.dumps(values))
            pipe.hset(self._k("meta"), "generation", generation)
            pipe.execute()
            return True
        finally:
            self._client.delete(lock)

    def _clear(self) -> None:
        keep = {self._k("meta").encode(), self._k("lock", "load").encode()}
        batch: list[bytes] = []
        for key in self._client.scan_iter(match=self.prefix + "*", count=1000):
            if key not in keep:
                batch.append(key)
            if len(batch) >= 1000:
                self._client.unlink(*batch)
                batch = []
        if batch:
            self._client.unlink(*batch)
        self._client.hdel(self._k("meta"), "generation")

    def apply(self, log_id: str | None, expected: int, through: int, batches: list[Applied]) -> None:
        with self._client.pipeline(transaction=True) as pipe:
            try:
                if log_id is not None:
                    pipe.watch(self._k("cursor"))
                    got = pipe.hget(self._k("cursor"), log_id)
                    if (0 if got is None else int(got)) != expected:
                        raise StoreOutdated(log_id)
                pipe.multi()
                for batch in batches:
                    if batch.deltas is not None:
                        self._queue_deltas(pipe, batch.deltas)
                    pipe.xadd(self._k("feed"), {"kind": batch.kind, "body": batch.feed})
                    if batch.kind != "counts":
                        pipe.xadd(self._k("catalogue"), {"kind": batch.kind, "body": batch.feed})
                if log_id is not None:
                    pipe.hset(self._k("cursor"), log_id, through)
                pipe.execute()
            except self._redis.exceptions.WatchError:
                raise StoreOutdated(log_id) from None

    def _queue_deltas(self, pipe: Any, d: Deltas) -> None:
        for kind in KINDS:
            mine = d.firsts.filter(pl.col("kind") == kind)
            for (user,), vids, ts in _groups(mine, ["user_id"], "video_id", "ts_us"):
                for s in range(0, len(vids), _CHUNK):
                    mapping = dict(zip(vids[s : s + _CHUNK], ts[s : s + _CHUNK]))
                    pipe.zadd(self._k("u", user, kind), mapping, lt=kind in FIRST_KINDS, gt=kind not in FIRST_KINDS)
        for row in d.user_counts.select("user_id", *USER_COUNTS).rows():
            key = self._k("u", str(row[0]), "c")
            for c, v in zip(USER_COUNTS, row[1:]):
                if v:
                    if c == "completion_sum":
                        pipe.hincrbyfloat(key, c, v)
                    else:
                        pipe.hincrby(key, c, int(v))
        for table, (key_col, counts) in PAIR_TABLES.items():
            frame = d.pairs[table]
            last = "last_dislike_us" in frame.columns
            cols = [key_col, *counts, *(["last_dislike_us"] if last else [])]
            for (user,), rows in _rows_by_user(frame, cols):
                args: list[Any] = []
                for r in rows:
                    for col, value in zip(_COLUMNS, r[1 : 1 + len(counts)]):
                        if value:
                            args += [f"{r[0]}|{col}", "+", int(value)]
                    if last and r[-1] is not None:
                        args += [f"{r[0]}|l", "max", int(r[-1])]
                for s in range(0, len(args), 3 * _CHUNK):
                    self._merge_pairs(keys=[self._k("u", user, "p", table)], args=args[s : s + 3 * _CHUNK], client=pipe)
        videos = d.video_counts
        for c in COUNTS:
            for vid, n in zip(videos["video_id"].to_list(), videos[c].to_list()):
                if n:
                    pipe.hincrby(self._k("v", c), vid, int(n))
        for kind, name, events, views in d.attributes.select("kind", "name", "events", "views").rows():
            pipe.hincrby(self._k("a", kind, "events"), name, int(events))
            if views:
                pipe.hincrby(self._k("a", kind, "views"), name, int(views))
        for c, v in d.totals.items():
            if v:
                if c == "completion_sum":
                    pipe.hincrbyfloat(self._k("tot"), c, v)
                else:
                    pipe.hincrby(self._k("tot"), c, int(v))
        if d.last_event_us is not None:
            pipe.zadd(self._k("clock"), {"last_event_us": d.last_event_us}, gt=True)

    # ---- reads --------------------------------------------------------------------------

    def read_many(self, user_ids: list[str], since: str) -> tuple[list[UserRecord], list[FeedEntry], str | None]:
        pipe = self._client.pipeline(transaction=False)
        for user in user_ids:
            for kind in KINDS:
                pipe.zrange(self._k("u", user, kind), 0, -1, withscores=True)
            pipe.hgetall(self._k("u", user, "c"))
            for table in PAIR_TABLES:
                pipe.hgetall(self._k("u", user, "p", table))
            pipe.get(self._k("u", user, "profile"))
        pipe.xrange(self._k("feed"), min=f"({since}" if since not in ("0", "0-0") else "-")
        pipe.hget(self._k("meta"), "generation")
        replies = pipe.execute()
        per_user = len(KINDS) + 2 + len(PAIR_TABLES)
        records = []
        for i, user in enumerate(user_ids):
            mine = replies[i * per_user : (i + 1) * per_user]
            lists = {kind: [(v.decode(), int(s)) for v, s in mine[j]] for j, kind in enumerate(KINDS)}
            n = len(KINDS)
            counts = {c: float(mine[n].get(c.encode(), 0)) for c in USER_COUNTS}
            pairs = {table: _pairs(mine[n + 1 + j]) for j, table in enumerate(PAIR_TABLES)}
            profile = mine[-1]
            records.append(UserRecord(user, lists, counts, pairs, json.loads(profile) if profile else {}))
        feed = [_entry(i, f) for i, f in replies[-2]]
        gen = replies[-1]
        return records, feed, None if gen is None else gen.decode()

    def snapshot(self) -> Snapshot:
        pipe = self._client.pipeline(transaction=True)  # MULTI/EXEC: one consistent view
        pipe.hget(self._k("meta"), "generation")
        pipe.xrevrange(self._k("feed"), count=1)
        for c in COUNTS:
            pipe.hgetall(self._k("v", c))
        for kind in ATTRIBUTES:
            pipe.hgetall(self._k("a", kind, "events"))
            pipe.hgetall(self._k("a", kind, "views"))
        pipe.hgetall(self._k("tot"))
        pipe.zscore(self._k("clock"), "last_event_us")
        pipe.xrange(self._k("catalogue"))
        gen, last, *rest = pipe.execute()
        video_hashes, rest = rest[: len(COUNTS)], rest[len(COUNTS) :]
        attr_hashes, (tot, clock, changes) = rest[: 2 * len(ATTRIBUTES)], rest[2 * len(ATTRIBUTES) :]
        position = last[0][0].decode() if last else self.FEED_START
        ids = sorted({v for h in video_hashes for v in h})
        videos = pl.DataFrame({"video_id": [v.decode() for v in ids],
                               **{c: [int(h.get(v, 0)) for v in ids] for c, h in zip(COUNTS, video_hashes)}},
                              schema={"video_id": pl.String, **{c: pl.Int64 for c in COUNTS}})  # fmt: skip
        rows = []
        for j, kind in enumerate(ATTRIBUTES):
            events, views = attr_hashes[2 * j], attr_hashes[2 * j + 1]
            rows += [(kind, name.decode(), int(n), int(views.get(name, 0))) for name, n in events.items()]
        attrs = pl.DataFrame(rows, schema={"kind": pl.String, "name": pl.String, "events": pl.Int64,
                                           "views": pl.Int64}, orient="row")  # fmt: skip
        totals = {k.decode(): float(v) for k, v in tot.items()}
        if clock is not None:
            totals["last_event_us"] = float(clock)
        catalogue = [_entry(i, f) for i, f in changes]  # written with their feed entries, so all precede ``position``
        return Snapshot("" if gen is None else gen.decode(), position, videos, attrs, totals, catalogue)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entry(stream_id: bytes, fields: dict) -> FeedEntry:
    return FeedEntry(stream_id.decode(), fields[b"kind"].decode(), bytes(fields[b"body"]))


def _pairs(raw: dict) -> list[tuple]:
    """Parse a pair hash (``<key>|a`` ... ``<key>|l``) into ``(key, a, b, c, last)`` rows."""
    out: dict[str, list] = {}
    for field, value in raw.items():
        key, _, col = field.decode().rpartition("|")
        row = out.setdefault(key, [0, 0, 0, None])
        row["abcl".index(col)] = int(value)
    return [(k, *v) for k, v in out.items()]


def _groups(df: pl.DataFrame, keys: list[str], a: str, b: str) -> list[tuple[tuple, list, list]]:
    """``(key values, a values, b values)`` per group of equal ``keys``."""
    if not df.height:
        return []
    grouped = df.group_by(keys, maintain_order=True).agg(pl.col(a), pl.col(b))
    return list(zip(grouped.select(keys).rows(), grouped[a].to_list(), grouped[b].to_list()))


def _rows_by_user(frame: pl.DataFrame, cols: list[str]) -> list[tuple[tuple, list[tuple]]]:
    if not frame.height:
        return []
    grouped = frame.group_by("user_id", maintain_order=True).agg(pl.struct(cols).alias("_r"))
    return [((u,), [tuple(r.values()) for r in rs]) for u, rs in grouped.rows()]


def _chunks(d: Deltas, users_per_chunk: int = 2_000) -> list[Deltas]:
    """Split a bulk load by users (and the platform part once) so no pipeline grows unbounded."""
    users = d.user_counts["user_id"].unique().sort().to_list()
    users = sorted(set(users) | set(d.firsts["user_id"].unique().to_list()))
    empty_platform = {"video_counts": d.video_counts.head(0), "attributes": d.attributes.head(0)}
    out = []
    for s in range(0, max(len(users), 1), users_per_chunk):
        part = pl.Series(users[s : s + users_per_chunk], dtype=pl.String).implode()
        mine = pl.col("user_id").is_in(part)
        first = s == 0
        out.append(Deltas(
            d.firsts.filter(mine), d.user_counts.filter(mine), {t: f.filter(mine) for t, f in d.pairs.items()},
            d.video_counts if first else empty_platform["video_counts"],
            d.attributes if first else empty_platform["attributes"],
            d.totals if first else {}, d.last_event_us if first else None,
        ))  # fmt: skip
    return out
