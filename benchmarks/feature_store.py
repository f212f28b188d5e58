"""Online feature store: request-time reads, bulk load and one-event update, per backend.

    .venv/bin/python benchmarks/feature_store.py                       # default simulated platform
    .venv/bin/python benchmarks/feature_store.py --users 30000 --videos 20000 --requests 2000

A request reads what scoring needs for one user and 500 candidate videos: the user's
state (history, seen, disliked, affinities), 500 video statistics and 500 embeddings.
The store is bulk-loaded from the simulated platform (``vidrec.data.simulator``).
Peers in the same run: the SQLite and Redis backends, and today's path (rebuilding the
user's state and the video statistics from the event log on every request).
Redis runs as a local redis-server on loopback started for the run (or ``--redis-url``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.redis_server

from tests.redis_server import RedisServer  # noqa: E402
from vidrec.data.dataset import read_dataset  # noqa: E402
from vidrec.data.simulator import SimulatorConfig, simulate  # noqa: E402
from vidrec.features import build_user_state, video_stats  # noqa: E402
from vidrec.features.store import OnlineStore, open_store  # noqa: E402

CANDIDATES = 500
DIM = 64


def percentiles(seconds: list[float]) -> tuple[float, float]:
    """(p50, p99) in milliseconds."""
    ms = np.asarray(seconds) * 1000.0
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def timed_requests(fn: Callable[[str, list[str]], object], users: list[str], cands: list[list[str]]) -> list[float]:
    out = []
    for user, ids in zip(users, cands):
        t0 = time.perf_counter()
        fn(user, ids)
        out.append(time.perf_counter() - t0)
    return out


def bench_store(name: str, store: OnlineStore, events: pl.DataFrame, videos: pl.DataFrame, args) -> dict:
    """Bulk load, embeddings, per-request reads and single-event updates on one backend."""
    t0 = time.perf_counter()
    store.bulk_load(events, videos)
    bulk = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    vids = videos["video_id"].to_list()
    t0 = time.perf_counter()
    store.put_video_embeddings(vids, rng.normal(size=(len(vids), DIM)).astype(np.float32))
    emb = time.perf_counter() - t0
    user_pool = events["user_id"].unique().sort().to_list()
    users = [user_pool[i] for i in rng.integers(0, len(user_pool), args.requests)]
    cands = [[vids[i] for i in rng.choice(len(vids), CANDIDATES, replace=False)] for _ in users]

    def request(user: str, ids: list[str]) -> None:
        store.get_user_state([user])
        store.get_video_stats(ids)
        store.get_video_embeddings(ids)

    parts = {
        "user state": lambda u, ids: store.get_user_state([u]),
        "500 stats": lambda u, ids: store.get_video_stats(ids),
        "500 embeddings": lambda u, ids: store.get_video_embeddings(ids),
        "request (all three)": request,
    }
    timings = {k: percentiles(timed_requests(fn, users, cands)) for k, fn in parts.items()}
    one = events.sample(args.updates, seed=1, with_replacement=True)
    apply = []
    for i in range(one.height):
        t0 = time.perf_counter()
        store.apply_events(one.slice(i, 1), videos)
        apply.append(time.perf_counter() - t0)
    return {"name": name, "bulk_s": bulk, "emb_s": emb, "timings": timings, "apply": percentiles(apply)}


def bench_rebuild(events: pl.DataFrame, videos: pl.DataFrame, n: int) -> dict:
    """Today's path: per request, rebuild the user's state and the stats from the event log."""
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
    parser.add_argument("--updates", type=int, default=500, help="single-event apply_events calls timed")
    parser.add_argument("--rebuild-requests", type=int, default=30, help="requests timed on the rebuild path")
    parser.add_argument("--redis-url", default=None, help="use this Redis instead of starting one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vidrec-fs-") as tmp:
        root = Path(tmp)
        simulate(SimulatorConfig(users=args.users, videos=args.videos), root / "platform")
        data = read_dataset(root / "platform")
        events, videos = data.events, data.videos
        print(f"platform: {data.users.height:,} users, {videos.height:,} videos, {events.height:,} events")
        rows = []
        with open_store(root / "features.db") as store:
            rows.append(bench_store("sqlite (WAL file)", store, events, videos, args))
        server = None
        url = args.redis_url
        if url is None:
            (root / "redis").mkdir()
            server = RedisServer(root / "redis")
            url = server.url
        try:
            with open_store(url, prefix="bench:") as store:
                rows.append(bench_store("redis (loopback)", store, events, videos, args))
        finally:
            if server is not None:
                server.stop()
        rebuild = bench_rebuild(events, videos, args.rebuild_requests)
    report(rows, rebuild, args)


def report(rows: list[dict], rebuild: dict, args) -> None:
    print(f"\n{args.requests:,} requests of 1 user + {CANDIDATES} candidates (d={DIM}); milliseconds p50 / p99")
    head = ["backend", "user state", "500 stats", "500 embeddings", "request (all three)", "apply 1 event", "bulk load s"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        cells = [f"{r['timings'][k][0]:.2f} / {r['timings'][k][1]:.2f}" for k in head[1:5]]
        cells.append(f"{r['apply'][0]:.2f} / {r['apply'][1]:.2f}")
        cells.append(f"{r['bulk_s']:.2f} (+{r['emb_s']:.2f} embeddings)")
        print(f"| {r['name']} | " + " | ".join(cells) + " |")
    us, st = rebuild["user state"], rebuild["all stats"]
    print(f"| rebuild from log (today, {args.rebuild_requests} requests) | {us[0]:.2f} / {us[1]:.2f} "
          f"| {st[0]:.2f} / {st[1]:.2f} (all videos) | - | {us[0] + st[0]:.2f} (p50 sum) | - | - |")


if __name__ == "__main__":
    main()
