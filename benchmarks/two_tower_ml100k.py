"""Candidate recall on MovieLens-100K, per-user temporal split: two-tower, trending, merged,
against most-popular and EASE computed in the same run.

Protocol: each user's last 20% of ratings by time are test; any rating is an interaction.
recall@K = |top-K ∩ test videos| / |test videos|, averaged over users, ranking all videos
the user has not rated in training.

    .venv/bin/python benchmarks/two_tower_ml100k.py [--data DIR] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from vidrec.candidates import TrendingGenerator, TwoTowerGenerator, merge_candidates
from vidrec.candidates.two_tower import TwoTowerConfig
from vidrec.data.dataset import Dataset
from vidrec.data.schema import TIMESTAMP
from vidrec.features import build_user_state

GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
]
DURATION = 6000.0  # seconds; a rating r becomes a watch of r/5 of the film (r >= 4 completes)
KS = (50, 100, 200)


def load_ml100k(root: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Ratings as canonical watch events, movies as canonical videos (genres as category/tags)."""
    ratings = pl.read_csv(
        root / "u.data", separator="\t", has_header=False,
        new_columns=["user", "item", "rating", "ts"], schema_overrides=[pl.Int64] * 4,
    )
    events = ratings.select(
        user_id="u" + pl.col("user").cast(pl.String),
        video_id="m" + pl.col("item").cast(pl.String),
        ts=pl.from_epoch("ts", time_unit="s").cast(TIMESTAMP),
        event=pl.lit("watch"),
        watch_seconds=pl.col("rating").cast(pl.Float64) / 5.0 * DURATION,
    )
    lines = (root / "u.item").read_bytes().decode("latin-1").splitlines()
    rows = [line.split("|") for line in lines if line]
    flags = np.array([[int(x) for x in r[-19:]] for r in rows], dtype=bool)
    tags = [[g for g, f in zip(GENRES, fl) if f] for fl in flags]
    first_seen = events.group_by("video_id").agg(first=pl.col("ts").min())
    videos = pl.DataFrame(
        {
            "video_id": ["m" + r[0] for r in rows],
            "title": [r[1] for r in rows],
            "release": [r[2] for r in rows],
            "tags": tags,
        }
    ).join(first_seen, on="video_id", how="left")
    release = pl.col("release").str.to_datetime("%d-%b-%Y", strict=False).dt.replace_time_zone("UTC")
    videos = videos.with_columns(
        creator_id=pl.lit("movielens"),
        category=pl.col("tags").list.first().fill_null("unknown"),
        duration_seconds=pl.lit(DURATION),
        # Dates are coarse (some ratings precede the release): never after the first rating.
        uploaded_at=pl.min_horizontal(release.cast(TIMESTAMP), pl.col("first")).fill_null(
            pl.lit(datetime(1990, 1, 1, tzinfo=UTC)).cast(TIMESTAMP)
        ),
        available=pl.lit(True),
    ).select("video_id", "creator_id", "category", "tags", "duration_seconds", "uploaded_at", "available", "title")
    return events, videos


def temporal_split(events: pl.DataFrame, test_share: float = 0.2) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per user: the last ``test_share`` of ratings by time (ties by video id) are test."""
    ranked = events.sort("user_id", "ts", "video_id").with_columns(
        pos=pl.int_range(pl.len()).over("user_id"), n=pl.len().over("user_id")
    )
    is_test = pl.col("pos") >= (pl.col("n").cast(pl.Float64) * (1 - test_share)).floor()
    return ranked.filter(~is_test).drop("pos", "n"), ranked.filter(is_test).drop("pos", "n")


def recall(cands: pl.DataFrame, test: pl.DataFrame, k: int) -> float:
    """Mean over test users of the share of their test videos among their top-k candidates."""
    truth = test.select("user_id", "video_id").unique()
    top = cands.filter(pl.col("rank") <= k).select("user_id", "video_id", hit=pl.lit(1))
    per = truth.join(top, on=["user_id", "video_id"], how="left").group_by("user_id").agg(
        r=pl.col("hit").fill_null(0).sum() / pl.len()
    )
    return float(per["r"].mean())


def rank_matrix(scores: np.ndarray, users: list[str], items: list[str], k: int) -> pl.DataFrame:
    """Top-k of a dense (users x items) score matrix as candidate rows."""
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return pl.DataFrame(
        {
            "user_id": np.repeat(users, k),
            "video_id": np.asarray(items)[top.reshape(-1)],
            "rank": np.tile(np.arange(1, k + 1), len(users)),
        }
    )


def peers(train: pl.DataFrame, k: int, lam: float = 500.0) -> dict[str, pl.DataFrame]:
    """Most-popular and EASE (Steck 2019) on the binary train matrix, seen items excluded."""
    users = train["user_id"].unique().sort().to_list()
    items = train["video_id"].unique().sort().to_list()
    ui = train.select(
        u=pl.col("user_id").replace_strict(users, list(range(len(users)))),
        i=pl.col("video_id").replace_strict(items, list(range(len(items)))),
    ).unique()
    x = np.zeros((len(users), len(items)), dtype=np.float64)
    x[ui["u"].to_numpy(), ui["i"].to_numpy()] = 1.0
    pop = np.broadcast_to(x.sum(0), x.shape).copy()
    g = x.T @ x + lam * np.eye(len(items))
    p = np.linalg.inv(g)
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    ease = x @ b
    out = {}
    for name, s in (("most_popular", pop), ("ease", ease)):
        s = np.where(x > 0, -np.inf, s)
        out[name] = rank_matrix(s, users, items, k)
    return out


def parse_overrides(pairs: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        out[key] = json.loads(value) if value[:1] in "[{0123456789-tf" else value
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data/ml-100k"))
    ap.add_argument("--set", nargs="*", default=[], help="TwoTowerConfig overrides, key=json")
    ap.add_argument("--skip-peers", action="store_true")
    args = ap.parse_args()
    events, videos = load_ml100k(args.data)
    train, test = temporal_split(events)
    now = train["ts"].max() + timedelta(seconds=1)
    ds = Dataset(train, videos, train.select("user_id").unique())
    config = TwoTowerConfig(**parse_overrides(args.set))
    print(f"train {train.height:,} events, test {test.height:,}; config {config.to_dict()}")

    state = build_user_state(train, videos)
    t0 = time.perf_counter()
    tt = TwoTowerGenerator(config).fit(ds, now)
    fit_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    cand_tt = tt.generate(state, max(KS), now)
    gen_s = time.perf_counter() - t1
    trend = TrendingGenerator().fit(ds, now)
    cand_tr = trend.generate(state, max(KS), now)

    results: dict[str, dict[int, float]] = {"two_tower": {}, "trending": {}, "merged (tt+10% trending)": {}}
    for k in KS:
        results["two_tower"][k] = recall(cand_tt, test, k)
        results["trending"][k] = recall(cand_tr, test, k)
        merged = merge_candidates([cand_tt, cand_tr], {"trending": k // 10}, target=k)
        results["merged (tt+10% trending)"][k] = recall(merged, test, k)
    if not args.skip_peers:
        for name, cands in peers(train, max(KS)).items():
            results[name] = {k: recall(cands, test, k) for k in KS}
    rep = tt.report
    print(f"\ntwo-tower: best epoch {rep.best_epoch}, val recall@{config.eval_k} {rep.best_recall:.4f}, "
          f"train {rep.seconds:.1f}s + refit {rep.refit_seconds:.1f}s, fit total {fit_s:.1f}s, "
          f"generate {state.height} users x {max(KS)} in {gen_s:.2f}s")
    print(f"\n{'method':28s}" + "".join(f"  recall@{k:<4d}" for k in KS))
    for name, row in results.items():
        print(f"{name:28s}" + "".join(f"  {row[k]:.4f}     " for k in KS))
    if "ease" in results:
        print(f"\ntwo_tower / EASE at 200: {results['two_tower'][200] / results['ease'][200]:.3f}; "
              f"merged / EASE: {results['merged (tt+10% trending)'][200] / results['ease'][200]:.3f}")


if __name__ == "__main__":
    main()
