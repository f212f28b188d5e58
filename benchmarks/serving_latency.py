"""Benchmark: one request at a time, in process -- p50 / p99 of a slate and of each stage.

    .venv/bin/python benchmarks/serving_latency.py default      # the default simulated platform
    .venv/bin/python benchmarks/serving_latency.py million      # 1,000,000 videos x 1,000,000 users

``default`` trains the pipeline on the default platform (the demo's data) unless
``--model`` names a trained model directory. ``million`` simulates 1M users x 1M videos
over 2 days (7.1M events) and trains every stage on the whole catalogue and user table but
the latest 1M events of the log, with a shortened budget (two-towers one epoch, no refit;
ranker 3 epochs on its latest 500k examples): training at full scale is its own work (a
two-tower step updates every row of its 1M-video tables). It serves that model: a 1M-video
HNSW index, 1M-row catalogue and embedding tables, the users of those events in a SQLite
store (the others are served as cold users). Both are kept under ``runs/bench-*`` and
reused when there.

Requests go to users with history (sampled among those with watches) and to cold users;
each is one ``Recommender.run`` (store read, hydration, three stages). Printed beside them,
measured in the same run: the two-tower's index search alone (the floor a retrieval-only
service pays) and a batch of 8 requests served together (what the HTTP service does under
load), per request.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import polars as pl

RUNS = Path("runs")
MILLION_EVENTS = 1_000_000  # the latest events of the simulated log the million model trains on
MILLION = {
    "two_tower": {"epochs": 1, "patience": 1, "refit_full": False},
    "ranker": {"max_epochs": 3, "max_examples": 500_000},
}


def model_dir(given: str | None) -> Path:
    """The model directory a benchmark was given, else the default platform's (built if not there)."""
    return Path(given) if given else build("default")[0]


def build(kind: str) -> tuple[Path, Path]:
    """(model dir, data dir) of the platform, trained and simulated if not there yet."""
    from vidrec.config import PipelineConfig
    from vidrec.data.dataset import Dataset, read_dataset
    from vidrec.data.simulator import SimulatorConfig, simulate
    from vidrec.recommender import Recommender

    root = RUNS / f"bench-{kind}"
    data, model = root / "data", root / "model"
    sim = SimulatorConfig() if kind == "default" else SimulatorConfig(users=1_000_000, videos=1_000_000, days=2)
    if not (data / "events.parquet").exists():
        t = time.perf_counter()
        simulate(sim, data)
        print(f"simulated {sim.users:,} users x {sim.videos:,} videos in {time.perf_counter() - t:.0f} s")
    if not (model / "LATEST").exists():
        config = PipelineConfig() if kind == "default" else PipelineConfig.from_dict(MILLION)
        train = read_dataset(data)
        if kind == "million":
            train = Dataset(train.events.sort("ts").tail(MILLION_EVENTS), train.videos, train.users)
        t = time.perf_counter()
        rec = Recommender.train(train, config, log=lambda m: print(m, flush=True))
        rec.save(model)
        print(f"trained in {time.perf_counter() - t:.0f} s: " + json.dumps({k: round(v) for k, v in
                                                                        rec.pipeline.timings.items()}))  # fmt: skip
    return model, data


def percentiles(values: list[float]) -> str:
    ms = np.asarray(values) * 1e3
    return f"{np.percentile(ms, 50):.2f} / {np.percentile(ms, 99):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("platform", choices=["default", "million"])
    parser.add_argument("--model", help="a trained model directory (default: build the platform's)")
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()
    import logging

    import torch

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    from vidrec.recommender import Recommender

    torch.set_num_threads(1)  # as the service runs
    model, data = (Path(args.model), None) if args.model else build(args.platform)
    t = time.perf_counter()
    state = RUNS / f"bench-{args.platform}" / "state.sqlite"
    rec = Recommender.load(model, store=str(state))
    print(f"loaded in {time.perf_counter() - t:.1f} s; catalogue {len(rec.catalogue):,} videos, "
          f"index {rec.pipeline.generators[0].index.kind}")  # fmt: skip
    assert rec.path is not None
    trained_on = pl.scan_parquet(rec.path / "data" / "events.parquet")  # the events the model was trained on
    watchers = trained_on.filter(pl.col("event") == "watch").select("user_id").unique().sort("user_id").collect()
    watchers = watchers["user_id"]
    rng = np.random.default_rng(0)
    users = watchers.to_numpy()[rng.choice(len(watchers), args.requests, replace=len(watchers) < args.requests)]
    cold = [f"cold-{i}" for i in range(args.requests // 5)]
    for u in users[:50]:
        rec.run(str(u))  # warm-up: traces, caches
    totals, stages = [], {"candidates": [], "scoring": [], "reranking": []}
    for u in [*map(str, users), *cold]:
        start = time.perf_counter()
        result = rec.run(u)
        totals.append(time.perf_counter() - start)
        for s in stages:
            stages[s].append(result.times[s])
    warm = totals[: len(users)]
    tower = rec.pipeline.generators[0]
    queries = [rec.request(str(u)) for u in users[:300]]
    search = []
    for q in queries:
        vec = tower._inputs.vectors([q])[0]
        start = time.perf_counter()
        tower.index.search_positions(vec, rec.pipeline.config.candidates.per_generator, q.excluded)
        search.append(time.perf_counter() - start)
    start = time.perf_counter()
    asks = [(str(u), 10) for u in users]
    for s in range(0, len(asks), 8):
        rec.run_many(asks[s : s + 8])
    batched = (time.perf_counter() - start) / len(asks)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n{args.platform}: {len(rec.catalogue):,} videos, {args.requests:,} users with history + {len(cold):,} cold, "
          f"peak RSS {rss:,.0f} MiB\n")  # fmt: skip
    print("| path | p50 / p99 (ms) |\n|---|---|")
    print(f"| one request, users with history | {percentiles(warm)} |")
    print(f"| one request, cold users | {percentiles(totals[len(users) :])} |")
    for s, values in stages.items():
        print(f"| stage: {s} | {percentiles(values)} |")
    print(f"| peer: the two-tower index search alone ({tower.index.kind}) | {percentiles(search)} |")
    print(f"| 8 requests served together, per request (mean) | {batched * 1e3:.2f} |")


if __name__ == "__main__":
    main()
