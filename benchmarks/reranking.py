"""Re-ranking trade-offs: accuracy against diversity, freshness, creator fairness and calibration.

    .venv/bin/python benchmarks/reranking.py sim --phase val     # choose the defaults here
    .venv/bin/python benchmarks/reranking.py sim --phase test    # report the chosen defaults
    .venv/bin/python benchmarks/reranking.py ml100k --phase test [--model DIR]

``--phase val`` trains on a carve of the training period (each user's last 20% of training
watches held out) and never reads the test split; ``--phase test`` trains on the whole
training period (per-user temporal 80/20 split, as benchmarks/end_to_end.py) and judges
on the test events. Candidates are generated and scored once; every re-ranking config
runs on the same scored frame. Printed per config: NDCG@10 (test completed = relevant)
and its ratio to re-ranking off, intra-list diversity (1 - mean pairwise cosine of the
two-tower video embeddings; and by category), distinct categories per slate, share of
fresh videos (uploaded < 7 days before now), creator exposure Gini (position weight
1 / log2(rank + 1), over all catalogue creators) and the calibration KL to the user's
history (alpha 0.01).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import torch

from end_to_end import prepare
from vidrec.candidates.generators import TwoTowerGenerator
from vidrec.candidates.two_tower.source import TwoTowerEmbeddings
from vidrec.data.dataset import read_dataset
from vidrec.data.splits import SplitConfig, write_split
from vidrec.evaluation.protocol import EvaluationData, evaluate_recommendations
from vidrec.evaluation.system import to_matrix
from vidrec.recommender import Recommender
from vidrec.reranking import DefaultReRanker, ReRankConfig
from vidrec.reranking.objectives import kl_divergence

K = 10
OFF = ReRankConfig(fresh_boost=0.0, creator_cap=None, diversity="none")
SWEEPS: dict[str, list[dict]] = {
    "mmr": [{"diversity": "mmr", "diversity_weight": w} for w in (0.1, 0.2, 0.3, 0.5, 0.7)],
    "dpp": [{"diversity": "dpp", "diversity_weight": w} for w in (0.1, 0.2, 0.3, 0.5, 0.7)],
    "fresh_boost": [{"fresh_boost": b} for b in (0.0, 0.2, 0.5, 1.0, 2.0)],
    "min_fresh": [{"min_fresh": m} for m in (1, 2, 3)],
    "fair_min_share": [{"fair_min_share": s} for s in (0.1, 0.2, 0.3, 0.5)],
    "calibration": [{"calibration_weight": w} for w in (0.1, 0.3, 0.5, 0.8)],
    "creator_cap": [{"creator_cap": c} for c in (None, 1, 2, 3)],
}


COMBINED: dict[str, dict] = {  # candidate defaults, compared on the validation carve
    "A dpp.1 fresh1": dict(diversity="dpp", diversity_weight=0.1, min_fresh=1),
    "B A+cal.3": dict(diversity="dpp", diversity_weight=0.1, min_fresh=1, calibration_weight=0.3),
    "C A+fair.2": dict(diversity="dpp", diversity_weight=0.1, min_fresh=1, fair_min_share=0.2),
    "D A+cal.3+fair.2": dict(diversity="dpp", diversity_weight=0.1, min_fresh=1, calibration_weight=0.3,
                             fair_min_share=0.2),
    "E D+fresh2+boost.5": dict(diversity="dpp", diversity_weight=0.1, min_fresh=2, calibration_weight=0.3,
                               fair_min_share=0.2, fresh_boost=0.5),
    "F mmr.2+cal.3+fair.2": dict(diversity="mmr", diversity_weight=0.2, min_fresh=1, calibration_weight=0.3,
                                 fair_min_share=0.2),
    "G D+cap3": dict(diversity="dpp", diversity_weight=0.1, min_fresh=1, calibration_weight=0.3,
                     fair_min_share=0.2, creator_cap=3),
    "H D dpp.05": dict(diversity="dpp", diversity_weight=0.05, min_fresh=1, calibration_weight=0.3,
                       fair_min_share=0.2),
}


def scored_candidates(rec: Recommender, users: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(user state, scored candidates) exactly as the pipeline hands them to stage 3."""
    pipe = rec.pipeline
    state = rec.user_state(users)
    cands = pipe.candidates(state, rec.now).rename({"rank": "candidate_rank"})
    return state, pipe.ranker.score(cands, state, rec.videos, rec.now)


def retrieval_vectors(rec: Recommender) -> TwoTowerEmbeddings | None:
    """The retrieval two-tower's video embeddings (what the pipeline should pass)."""
    for gen in rec.pipeline.generators:
        if isinstance(gen, TwoTowerGenerator):
            return TwoTowerEmbeddings(gen.model, rec.videos)
    return None


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values (0 = equal exposure)."""
    v = np.sort(values)
    n = len(v)
    if n == 0 or v.sum() == 0:
        return 0.0
    return float((2 * np.arange(1, n + 1) - n - 1) @ v / (n * v.sum()))


def slate_metrics(out: pl.DataFrame, state: pl.DataFrame, videos: pl.DataFrame, emb, now: datetime) -> dict:
    """Diversity, coverage, freshness, exposure Gini and calibration of the slates."""
    info = videos.select("video_id", "creator_id", "category", "uploaded_at")
    slates = out.join(info, on="video_id", how="left")
    vec = emb.video_vectors(slates["video_id"]).astype(np.float64)
    vec /= np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12)
    ild, ild_cat = [], []
    users = slates["user_id"].to_numpy()
    cats = slates["category"].to_numpy()
    bounds = np.flatnonzero(np.r_[True, users[1:] != users[:-1], True])
    for a, b in zip(bounds[:-1], bounds[1:]):
        n = b - a
        if n < 2:
            continue
        sim = vec[a:b] @ vec[a:b].T
        ild.append(1 - (sim.sum() - np.trace(sim)) / (n * (n - 1)))
        same = cats[a:b][:, None] == cats[a:b][None, :]
        ild_cat.append(1 - (same.sum() - n) / (n * (n - 1)))
    weight = 1 / np.log2(slates["rank"].to_numpy() + 1)
    exposure = slates.with_columns(w=pl.Series(weight)).group_by("creator_id").agg(pl.col("w").sum())
    creators = videos.select("creator_id").unique().join(exposure, on="creator_id", how="left")
    fresh = slates["uploaded_at"] > (now - timedelta(days=7))
    return {
        "ild_emb": float(np.mean(ild)),
        "ild_cat": float(np.mean(ild_cat)),
        "cats_per_slate": slates.group_by("user_id").agg(pl.col("category").n_unique())["category"].mean(),
        "fresh_share": float(fresh.mean()),
        "creator_gini": gini(creators["w"].fill_null(0.0).to_numpy()),
        "calib_kl": calibration_kl(slates, state, videos),
    }


def calibration_kl(slates: pl.DataFrame, state: pl.DataFrame, videos: pl.DataFrame) -> float:
    """Mean KL(p_history || 0.99 q_slate + 0.01 p_history) over users with a history."""
    cats = videos.select("video_id", "category")
    hist = state.select("user_id", pl.col("recent_completed").alias("video_id")).explode("video_id")
    hist = hist.join(cats, on="video_id", how="inner").group_by("user_id", "category").len()
    slate = slates.group_by("user_id", "category").len()
    both = hist.join(slate, on=["user_id", "category"], how="full", coalesce=True, suffix="_s").fill_null(0)
    both = both.filter(pl.col("user_id").is_in(hist["user_id"].implode()))
    both = both.with_columns(
        p=pl.col("len") / pl.col("len").sum().over("user_id"),
        q=pl.col("len_s") / pl.col("len_s").sum().over("user_id"),
    ).fill_nan(0.0)
    kls = [kl_divergence(g["p"].to_numpy(), g["q"].to_numpy(), 0.01) for g in both.partition_by("user_id")]
    return float(np.mean(kls))


def configs(defaults: ReRankConfig) -> list[tuple[str, ReRankConfig]]:
    """Off, the defaults, and each knob swept from the defaults."""
    out = [("off", OFF), ("defaults", defaults), ("no slate greedy", replace(defaults, diversity="none",
            calibration_weight=0.0, min_fresh=0, fair_min_share=0.0))]
    for knob, values in SWEEPS.items():
        for change in values:
            label = f"{knob}: " + ", ".join(f"{k}={v}" for k, v in change.items())
            out.append((label, replace(defaults, **change)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=["ml100k", "sim"])
    parser.add_argument("--phase", choices=["val", "test"], default="test")
    parser.add_argument("--ml100k", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/ml-100k")
    parser.add_argument("--out", type=Path, default=None, help="keep the data and model here")
    parser.add_argument("--model", type=Path, default=None, help="a saved model trained on this phase's training data")
    parser.add_argument("--plan", choices=["sweep", "quick", "combined"], default="sweep",
                        help="each knob swept from the defaults, off and defaults only, or candidate defaults")
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = args.out or Path(tempfile.mkdtemp(prefix=f"vidrec-rerank-{args.dataset}-"))
    split = root / "split"
    if not (split / "split.json").exists():
        write_split(read_dataset(prepare(args.dataset, root, args.ml100k)), split, SplitConfig())
    if args.phase == "val":  # a carve of the training period only: the test split is never read
        if not (root / "val" / "split.json").exists():
            write_split(read_dataset(split / "train"), root / "val", SplitConfig())
        split = root / "val"
    t0 = time.perf_counter()
    if args.model is not None:
        rec = Recommender.load(args.model)
    else:
        rec = Recommender.train(read_dataset(split / "train"), log=lambda m: None)
        rec.save(root / f"model-{args.phase}")
    print(f"model ready in {time.perf_counter() - t0:.0f} s ({root})")
    data = EvaluationData.from_split(split)
    users = data.users.ids.gather(data.judged_users()).to_list()
    state, scored = scored_candidates(rec, users)
    emb = retrieval_vectors(rec)
    vectors = emb.video_vectors if emb is not None else None
    rows = []
    plan = configs(ReRankConfig())
    if args.plan == "quick":
        plan = plan[:3]
    elif args.plan == "combined":
        plan = plan[:3] + [(name, replace(ReRankConfig(), **kw)) for name, kw in COMBINED.items()]
    for label, cfg in plan:
        t1 = time.perf_counter()
        out = DefaultReRanker(cfg).rerank(scored, state, rec.videos, rec.now, K, events=rec.events, video_vectors=vectors)
        seconds = time.perf_counter() - t1
        ndcg = evaluate_recommendations(data, to_matrix(out, data, K), label, ks=(K,))["final_ndcg@10"].item()
        rows.append({"config": label, "ndcg@10": ndcg, **slate_metrics(out, state, rec.videos, emb, rec.now),
                     "ms_per_user": seconds / len(users) * 1e3})
    table = pl.DataFrame(rows)
    off = table["ndcg@10"][0]
    table = table.with_columns((pl.col("ndcg@10") / off).alias("ndcg_vs_off")).select(
        "config", "ndcg@10", "ndcg_vs_off", pl.exclude("config", "ndcg@10", "ndcg_vs_off"))
    with pl.Config(tbl_rows=100, tbl_cols=20, tbl_width_chars=250, float_precision=4, tbl_formatting="MARKDOWN",
                   tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True, fmt_str_lengths=60):
        print(f"\nre-ranking on {args.dataset}, phase {args.phase}, {len(users)} judged users, k={K}")
        print(table)


if __name__ == "__main__":
    main()
