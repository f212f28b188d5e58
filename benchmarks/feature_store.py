"""Online feature store: request-time reads, bulk load and one-event update, per backend.

    .venv/bin/python benchmarks/feature_store.py                       # default simulated platform
    .venv/bin/python benchmarks/feature_store.py --users 30000 --videos 20000 --requests 2000

A request makes one store round trip (:meth:`OnlineStore.read`): the user's record (video
sets with their times, counts, per-category / creator / tag / language pairs, profile) and
the store's feed since this process's last read; the record is then hydrated into a request
(ids mapped to catalogue rows, :func:`vidrec.request.hydrate`). Timed per backend: that read,
the read plus hydration (the store's whole part of a request), one batched read of 32 users
(``read_many``: requests served together), one event applied (its deltas computed and applied,
as ``Recommender.observe`` does without an event log), the snapshot a serving process copies
at start (into :class:`~vidrec.features.live.LiveCounts`) and the bulk load of the version
state (the simulated platform's log aggregated, ``vidrec.data.simulator``).

Adapted to the rebuilt store, which no longer serves video statistics or embeddings per
request (``get_video_stats``, ``get_video_embeddings``, ``bulk_load`` and ``apply_events``
are gone): the candidates' statistics are read from the process's in-memory ``LiveCounts``,
kept current by the feed the same round trip returns, and their embeddings from the ranker's
in-memory two-tower vectors. The former "500 stats" and "500 embeddings" columns therefore
have no store equivalent; the closest are the feed part of the user read and the start-up
snapshot, both timed here. Peer in the same run: the first version's path (rebuilding the
user's state and the video statistics from the event log on every request).
Redis runs as a local redis-server on loopback started for the run (or ``--redis-url``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.redis_server

from tests.redis_server import RedisServer  # noqa: E402
from vidrec.catalogue import Catalogue  # noqa: E402
from vidrec.data.dataset import read_dataset  # noqa: E402
from vidrec.data.schema import epoch_us  # noqa: E402
from vidrec.data.simulator import SimulatorConfig, simulate  # noqa: E402
from vidrec.features import build_user_state, video_stats  # noqa: E402
from vidrec.features.live import LiveCounts  # noqa: E402
from vidrec.features.store import OnlineStore, StoreConfig, open_store  # noqa: E402
from vidrec.features.store.base import Applied, CountDeltas  # noqa: E402
from vidrec.features.store.deltas import compute_deltas  # noqa: E402
from vidrec.features.store.snapshot import VersionState  # noqa: E402
from vidrec.request import hydrate  # noqa: E402

BATCH = 32
K = 10


def percentiles(seconds: list[float]) -> tuple[float, float]:
    """(p50, p99) in milliseconds."""
    ms = np.asarray(seconds) * 1000.0
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def timed(fn: Callable[[Any], object], items: Sequence[Any]) -> list[float]:
    out = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        out.append(time.perf_counter() - t0)
    return out


def bench_store(name: str, store: OnlineStore, state: VersionState, catalogue: Catalogue, events: pl.DataFrame,
                args: argparse.Namespace) -> dict:  # fmt: skip
    """Bulk load, start-up snapshot, per-request reads and single-event updates on one backend."""
    t0 = time.perf_counter()
    store.load(state.deltas, state.profiles, uuid.uuid4().hex)
    bulk = time.perf_counter() - t0
    t0 = time.perf_counter()
    snap = store.snapshot()
    LiveCounts(catalogue).load(snap)
    snapshot_s = time.perf_counter() - t0
    position = snap.position
    rng = np.random.default_rng(0)
    pool = events["user_id"].unique().sort().to_list()
    users = [pool[i] for i in rng.integers(0, len(pool), args.requests)]
    batches = [users[i : i + BATCH] for i in range(0, len(users) - BATCH + 1, BATCH)] or [users]
    now_us = epoch_us(events["ts"].max() + timedelta(microseconds=1))
    history = store.config.history_len

    def request(user: str) -> None:
        record, _, _ = store.read(user, position)
        hydrate(record, catalogue, now_us, K, history)

    timings = {
        "read 1 user (+ feed)": percentiles(timed(lambda u: store.read(u, position), users)),
        "read + hydrate": percentiles(timed(request, users)),
        f"read_many {BATCH} users": percentiles(timed(lambda b: store.read_many(b, position), batches)),
    }
    one = events.sample(args.updates, seed=1, with_replacement=True)
    title_words = store.config.title_words

    def apply(row: pl.DataFrame) -> None:
        meta = catalogue.meta(catalogue.rows_of(row["video_id"].unique()), title_words)
        d = compute_deltas(row, meta, store.config)
        store.apply(None, 0, 0, [Applied("counts", CountDeltas.of(d).to_json(), d)])

    timings["apply 1 event"] = percentiles(timed(apply, [one.slice(i, 1) for i in range(one.height)]))
    return {"name": name, "bulk_s": bulk, "snapshot_s": snapshot_s, "timings": timings}


def bench_rebuild(events: pl.DataFrame, videos: pl.DataFrame, n: int) -> dict:
    """The first version's path: per request, rebuild the user's state and the stats from the event log."""
    rng = np.random.default_rng(0)
    pool = events["user_id"].unique().sort().to_list()
    users = [pool[i] for i in rng.integers(0, len(pool), n)]
    state = [0.0] * n
    stats = [0.0] * n
    for i, u in enumerate(users):
        t0 = time.perf_counter()
        build_user_state(events.filter(pl.col("user_id") == u), videos)
        t1 = time.perf_counter()
        video_stats(events, videos)
        state[i], stats[i] = t1 - t0, time.perf_counter() - t1
    return {"user state": percentiles(state), "all stats": percentiles(stats)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=SimulatorConfig.users)
    parser.add_argument("--videos", type=int, default=SimulatorConfig.videos)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--updates", type=int, default=500, help="single-event applies timed")
    parser.add_argument("--rebuild-requests", type=int, default=30, help="requests timed on the rebuild path")
    parser.add_argument("--redis-url", default=None, help="use this Redis instead of starting one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vidrec-fs-") as tmp:
        root = Path(tmp)
        simulate(SimulatorConfig(users=args.users, videos=args.videos), root / "platform")
        data = read_dataset(root / "platform")
        events, videos = data.events, data.videos
        print(f"platform: {data.users.height:,} users, {videos.height:,} videos, {events.height:,} events")
        config = StoreConfig()
        catalogue = Catalogue(videos)
        t0 = time.perf_counter()
        state = VersionState.build(events, catalogue, data.users, config)
        aggregate_s = time.perf_counter() - t0
        rows = []
        with open_store(root / "features.db", config) as store:
            rows.append(bench_store("sqlite (WAL file)", store, state, catalogue, events, args))
        server = None
        url = args.redis_url
        if url is None:
            (root / "redis").mkdir()
            server = RedisServer(root / "redis")
            url = server.url
        try:
            with open_store(url, config, prefix=f"bench-{uuid.uuid4().hex[:8]}:") as store:
                rows.append(bench_store("redis (loopback)", store, state, catalogue, events, args))
        finally:
            if server is not None:
                server.stop()
        rebuild = bench_rebuild(events, videos, args.rebuild_requests)
    report(rows, rebuild, aggregate_s, args)


def report(rows: list[dict], rebuild: dict, aggregate_s: float, args: argparse.Namespace) -> None:
    print(f"\n{args.requests:,} requests of 1 user (k={K}); milliseconds p50 / p99 "
          f"(read_many: per batch of {BATCH}); the log aggregated into the version state in {aggregate_s:.2f} s")
    keys = list(rows[0]["timings"])
    head = ["backend", *keys, "start-up snapshot s", "bulk load s"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        cells = [f"{r['timings'][k][0]:.2f} / {r['timings'][k][1]:.2f}" for k in keys]
        cells += [f"{r['snapshot_s']:.3f}", f"{r['bulk_s']:.2f}"]
        print(f"| {r['name']} | " + " | ".join(cells) + " |")
    us, st = rebuild["user state"], rebuild["all stats"]
    print(f"\nrebuilt from the log per request (first version, {args.rebuild_requests} requests): user state "
          f"{us[0]:.2f} / {us[1]:.2f}, all videos' statistics {st[0]:.2f} / {st[1]:.2f}, "
          f"{us[0] + st[0]:.2f} (p50 sum)")


if __name__ == "__main__":
    main()
