"""The two-tower generator alone beside most-popular, iALS and EASE: candidate recall, and on the
simulated platform the recall of the oracle's best 100 videos per user.

    .venv/bin/python benchmarks/two_tower_alone.py {ml100k,sim} [--out DIR] [--set key=json ...]

Per-user temporal split (each user's last 20% of watches by time are test), the evaluation
protocol of `vidrec evaluate` (full ranking over the videos a user has not interacted with
in training; baselines tuned on a carve of the training period). The two-tower runs with
the default config (``--set`` overrides fields of it, e.g. ``--set video_titles=true``) behind
its default index, exactly as stage 1 uses it. "Oracle best-100
recall" is the share of each user's 100 best unseen videos by the simulator's true
P(complete >= 80% | shown) at the end of training that the method's top 100 contain.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import torch

from end_to_end import prepare
from two_tower_ml100k import parse_overrides
from vidrec.candidates import TwoTowerGenerator
from vidrec.candidates.two_tower import TwoTowerConfig
from vidrec.config import PipelineConfig
from vidrec.data.dataset import read_dataset
from vidrec.data.simulator import GroundTruth
from vidrec.data.splits import SplitConfig, write_split
from vidrec.evaluation.protocol import EvaluationData, default_baselines, evaluate_baselines, evaluate_recommendations
from vidrec.evaluation.system import to_matrix
from vidrec.features import build_user_state

KS = (50, 100, 200)


def oracle_recall(truth: GroundTruth, data: EvaluationData, recs: np.ndarray, users: np.ndarray, now, k: int = 100) -> float:
    """Mean over ``users`` of |top-k of ``recs`` ∩ oracle's best k| / k (training interactions excluded on both sides)."""
    ids = data.users.ids.gather(users).to_list()
    train = data.train.tocsr()
    exclude = {u: set(data.videos.ids.gather(train[row].indices).to_list()) for u, row in zip(ids, users)}
    best = truth.best_videos(ids, now, k=k, exclude=exclude)
    best = best.with_columns(u=pl.Series(data.users.to_index(best["user_id"])), v=pl.Series(data.videos.to_index(best["video_id"])))
    top = recs[users, :k]
    ours = pl.DataFrame({"u": np.repeat(users, top.shape[1]), "v": top.reshape(-1)}).filter(pl.col("v") >= 0)
    hits = best.join(ours, on=["u", "v"], how="semi").group_by("u").len()
    per_user = pl.DataFrame({"u": users}).join(hits, on="u", how="left").fill_null(0)["len"].to_numpy()
    return float((per_user / k).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=["ml100k", "sim"])
    parser.add_argument("--ml100k", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/ml-100k")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--set", nargs="*", default=[], help="TwoTowerConfig overrides, key=json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = args.out or Path(tempfile.mkdtemp(prefix=f"vidrec-tt-{args.dataset}-"))
    data_dir = prepare(args.dataset, root, args.ml100k)
    write_split(read_dataset(data_dir), root / "split", SplitConfig())
    train = read_dataset(root / "split" / "train")
    data = EvaluationData.from_split(root / "split")
    now = train.events["ts"].max() + timedelta(microseconds=1)
    config = PipelineConfig()
    overrides = parse_overrides(args.set)
    two_tower = TwoTowerConfig.from_dict({**config.two_tower.to_dict(), **overrides})

    start = time.perf_counter()
    gen = TwoTowerGenerator(two_tower, config.index, log=lambda m: None).fit(train, now)
    fit_seconds = time.perf_counter() - start
    users = data.judged_users()
    ids = data.users.ids.gather(users)
    state = build_user_state(train.events.filter(pl.col("user_id").is_in(ids.implode())), train.videos)
    recs = to_matrix(gen.generate(state, max(KS), now), data, max(KS))
    rows = [evaluate_recommendations(data, recs, "two-tower alone", ks=KS, fit_seconds=fit_seconds)]
    base = evaluate_baselines(data, ks=KS)
    table = pl.concat([base, *rows], how="diagonal_relaxed")

    cols = [f"cand_recall@{k}" for k in KS]
    extra = ""
    oracle: dict[str, float] = {}
    if args.dataset == "sim":
        truth = GroundTruth.load(root / "platform")
        oracle["two-tower alone"] = oracle_recall(truth, data, recs, users, now)
        specs = {s.name: s for s in default_baselines()}
        for row in base.iter_rows(named=True):
            model = specs[row["model"]].factory(**json.loads(row["params"])).fit(data.train)
            mat = np.full((len(data.users), 100), -1, dtype=np.int64)
            mat[users] = model.recommend(users, 100, exclude=data.exclude)
            oracle[row["model"]] = oracle_recall(truth, data, mat, users, now)
        extra = " oracle best-100 recall |"
    print(f"\n{args.dataset}: {data.summary()}" + (f"\ntwo-tower overrides: {overrides}" if overrides else ""))
    print("\n| model | " + " | ".join(f"recall@{k}" for k in KS) + " |" + extra)
    print("|---|" + "---:|" * (len(KS) + (1 if extra else 0)))
    for row in table.iter_rows(named=True):
        cells = " | ".join(f"{row[c]:.4f}" for c in cols)
        tail = f" {oracle[row['model']]:.4f} |" if oracle else ""
        print(f"| {row['model']} | {cells} |{tail}")
    rep = gen.report
    print(f"\ntwo-tower: best epoch {rep.best_epoch}, validation recall@{two_tower.eval_k} {rep.best_recall:.4f}; "
          f"fit {fit_seconds:.1f} s (search {rep.seconds:.1f} s + refit {rep.refit_seconds:.1f} s, index included)")
    ease = table.filter(pl.col("model") == "EASE").row(0, named=True)
    ials = table.filter(pl.col("model") == "iALS").row(0, named=True)
    mine = table.filter(pl.col("model") == "two-tower alone").row(0, named=True)
    for k in (100, 200):
        c = f"cand_recall@{k}"
        print(f"recall@{k}: two-tower / EASE {mine[c] / ease[c]:.3f}, two-tower / iALS {mine[c] / ials[c]:.3f}")


if __name__ == "__main__":
    main()
