"""End-to-end figures of BENCHMARKS.md: vidrec's stages beside most-popular, iALS and EASE.

    .venv/bin/python benchmarks/end_to_end.py ml100k [--ml100k ../shared/data/ml-100k]
    .venv/bin/python benchmarks/end_to_end.py ml100k --coarse-creators   # creator = first genre (19 channels)
    .venv/bin/python benchmarks/end_to_end.py sim [--creators 10]   # 10 creators: coarse, 200 videos each

Per-user temporal split (each user's last 20% of watches by time are the test set);
baselines tuned on a carve of the training period; vidrec with its default config.
Prints the metrics table, the training time of every stage, the recommendation time per
user per stage, and on the simulated platform the share of the oracle's expected
completions that each model's ten reach (vidrec's stages and the baselines alike).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import torch

from vidrec.config import load_config
from vidrec.data.adapters import load_source
from vidrec.data.dataset import read_dataset
from vidrec.data.ingest import ingest_tables
from vidrec.data.simulator import GroundTruth, SimulatorConfig, simulate
from vidrec.data.splits import SplitConfig, write_split
from vidrec.evaluation.protocol import EvaluationData
from vidrec.evaluation.report import print_report
from vidrec.evaluation.shapes import SHAPES
from vidrec.evaluation.system import evaluate_all, run_stages
from vidrec.recommender import Recommender
from vidrec.report.figures import candidate_matrix, oracle_breakdown


def prepare(dataset: str, root: Path, ml100k: Path, creators: int | None = None, coarse: bool = False,
            shape: str = "as-logged") -> Path:  # fmt: skip
    """Write the validated data directory and return it (``creators``: the simulated platform's, None: default;
    ``coarse``: MovieLens with creator = first genre, 19 channels of up to hundreds of movies each;
    ``shape``: the simulated log with one kind of information taken away, ``vidrec.evaluation.shapes``)."""
    if dataset == "ml100k":
        raw = load_source("movielens", ml100k)
        videos = raw.videos.with_columns(creator_id=pl.lit("genre-") + pl.col("category")) if coarse else raw.videos
        ingest_tables(raw.events, videos, raw.users, root / "data", sources=raw.sources)
    else:
        simulate(SimulatorConfig(creators=creators), root / "platform")
        ds = SHAPES[shape](read_dataset(root / "platform"))
        ingest_tables(ds.events, ds.videos, ds.users, root / "data")
    return root / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=["ml100k", "sim"])
    parser.add_argument("--ml100k", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/ml-100k")
    parser.add_argument("--out", type=Path, default=None, help="keep the artifacts here")
    parser.add_argument("--creators", type=int, default=None,
                        help="sim only: creators on the platform (default videos / 20; few = coarse creators)")
    parser.add_argument("--coarse-creators", action="store_true",
                        help="ml100k only: creator = the movie's first genre (coarse channels) instead of one per movie")
    parser.add_argument("--config", type=Path, default=None, help="a vidrec TOML config (default: the defaults)")
    parser.add_argument("--shape", choices=list(SHAPES), default="as-logged",
                        help="sim only: the log with one kind of information taken away (vidrec.evaluation.shapes)")
    parser.add_argument("--ndcg-budget", action="store_true",
                        help="sim only: the re-ranking budget on validation NDCG@10, not on the simulator's true "
                             "expected completions")
    args = parser.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix=f"vidrec-{args.dataset}-"))
    data_dir = prepare(args.dataset, root, args.ml100k, args.creators, args.coarse_creators, args.shape)
    write_split(read_dataset(data_dir), root / "split", SplitConfig())
    train = read_dataset(root / "split" / "train")
    start = time.perf_counter()
    config = load_config(args.config)
    if args.dataset == "sim" and not args.ndcg_budget and config.rerank.budget_truth is None:
        config = replace(config, rerank=replace(config.rerank, budget_truth=str(root / "platform")))
    rec = Recommender.train(train, config, log=lambda m: None)
    train_seconds = time.perf_counter() - start
    rec.save(root / "model")
    data = EvaluationData.from_split(root / "split")
    run = run_stages(rec, data)
    recommendations: dict[str, np.ndarray] = {}
    table, per_user = evaluate_all(rec, data, run=run, recommendations=recommendations)
    print_report(table, data.summary(), title=f"end to end on {args.dataset} (per-user temporal 80/20 split)")
    print(f"\ntraining time of all stages: {train_seconds:.1f} s; per stage: "
          + json.dumps({k: round(v, 1) for k, v in rec.pipeline.timings.items()}))
    print("recommendation time per user, batch of all test users (ms): "
          + json.dumps({k: round(v * 1e3, 3) for k, v in per_user.items()}))
    torch.set_num_threads(1)  # as the service runs
    users = data.users.ids.head(300).to_list()
    for uid in users[:20]:
        rec.slate(uid, k=10)  # warm-up: the networks are traced for one request on first use
    took = []
    for uid in users:
        one = time.perf_counter()
        rec.slate(uid, k=10)
        took.append(time.perf_counter() - one)
    p50, p99 = np.percentile(np.asarray(took) * 1e3, [50, 99])
    print(f"one request at a time (the service's path, {len(users)} users): p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    final = table.filter(table["model"] == "vidrec final").row(0, named=True)
    ease = table.filter(table["model"] == "EASE").row(0, named=True)
    cands = table.filter(table["model"] == "vidrec candidates").row(0, named=True)
    print(f"final NDCG@10 / EASE: {final['final_ndcg@10'] / ease['final_ndcg@10']:.3f}; "
          f"candidate recall@200 / EASE: {cands['cand_recall@200'] / ease['cand_recall@200']:.3f}")
    if args.dataset == "sim":  # every model's ten against the simulator's oracle, the baselines' too
        truth = GroundTruth.load(root / "platform")
        shares = oracle_breakdown(rec, run, data, candidate_matrix(rec, run, data), recommendations, truth)
        print("\nagainst the oracle (share of its expected completions, ratio of totals):")
        for row in shares.iter_rows(named=True):
            print(f"| {row['ten per user from']} | {row['share of the oracle']:.3f} |")
    print(f"artifacts: {root}")


if __name__ == "__main__":
    main()
