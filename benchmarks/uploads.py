"""Uploads into a running system: how fast ``Recommender.add_videos`` is, and whether videos
uploaded after training reach the candidates of the users who later watch them.

Protocol: simulate a platform, cut it globally so the last 20% of watches are test. Train
the whole pipeline on events before the cut with the catalogue of videos uploaded before it.
Then add every video uploaded after the cut through ``add_videos`` (no retraining) and ask
for each test user's candidates (stage 1, merged) at the end of the simulation, with the
user's state as of the cut. Recall@K counts the user's test watches/likes of new videos
found in their top K candidates; averaged over users with at least one. A uniform random
pick of K of the videos the user has not seen is printed beside it. Before ``add_videos``
this recall is 0 by construction (the system does not know the videos).

    .venv/bin/python benchmarks/uploads.py [--users 1500] [--videos 1000] [--days 28]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import polars as pl
import torch

from vidrec.config import PipelineConfig
from vidrec.data.dataset import Dataset, read_dataset
from vidrec.data.simulator import SimulatorConfig, simulate
from vidrec.recommender import Recommender

KS = (50, 100, 200)


def recall(cands: pl.DataFrame, test: pl.DataFrame, k: int) -> float:
    """Mean over users of |top-k candidates ∩ test videos| / |test videos|."""
    hits = cands.filter(pl.col("rank") <= k).join(test, on=["user_id", "video_id"], how="semi")
    per = test.group_by("user_id").agg(n=pl.len()).join(
        hits.group_by("user_id").agg(h=pl.len()), on="user_id", how="left"
    )
    return float(per.select((pl.col("h").fill_null(0) / pl.col("n")).mean()).item())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=1500)
    ap.add_argument("--videos", type=int, default=1000)
    ap.add_argument("--days", type=int, default=28)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        simulate(SimulatorConfig(users=args.users, videos=args.videos, days=args.days), Path(tmp) / "p")
        ds = read_dataset(Path(tmp) / "p")
    watches = ds.events.filter(pl.col("event") == "watch")["ts"].sort()
    cut = watches[int(0.8 * len(watches))]
    train = Dataset(ds.events.filter(pl.col("ts") < cut), ds.videos.filter(pl.col("uploaded_at") < cut), ds.users)
    new = ds.videos.filter(pl.col("uploaded_at") >= cut)
    seen = train.events.select("user_id", "video_id").unique()
    test = (
        ds.events.filter((pl.col("ts") >= cut) & pl.col("event").is_in(["watch", "like"]))
        .select("user_id", "video_id").unique()
        .join(seen, on=["user_id", "video_id"], how="anti")
        .filter(pl.col("video_id").is_in(new["video_id"].implode()))
    )  # fmt: skip
    users = test["user_id"].unique().sort().to_list()
    print(f"{ds.events.height:,} events; cut {cut:%Y-%m-%d %H:%M}; {train.videos.height} videos known at training, "
          f"{new.height} uploaded after; {test.height:,} test pairs on new videos ({len(users)} users)")

    t0 = time.perf_counter()
    cfg = PipelineConfig.from_dict({"candidates": {"generators": ["two_tower", "cowatch", "trending", "fresh", "creators"]}})
    rec = Recommender.train(train, cfg, log=lambda m: None)
    print(f"trained in {time.perf_counter() - t0:.0f} s")
    end = ds.events["ts"].max() + timedelta(microseconds=1)

    t0 = time.perf_counter()
    rec.add_videos(new.head(1))
    one_ms = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    bad = rec.add_videos(new.slice(1))
    rest_ms = (time.perf_counter() - t0) * 1e3
    print(f"add_videos: 1 video {one_ms:.0f} ms; {new.height - 1} videos {rest_ms:.0f} ms; {bad.height} refused")

    cands = rec.recommend_batch(users, k=max(KS), stage="candidates", now=end)
    two_tower = cands.filter(pl.col("sources").list.contains("two_tower")).with_columns(
        rank=pl.col("retrieval_score").rank("ordinal", descending=True).over("user_id")
    )
    unseen = train.videos.height + new.height - seen.group_by("user_id").len()["len"].mean()
    print(f"{'candidates':<28}" + "".join(f"  new r@{k:<4d}" for k in KS))
    for name, frame in (("merged (stage 1)", cands), ("two-tower part of stage 1", two_tower)):
        print(f"{name:<28}" + "".join(f"  {recall(frame, test, k):.4f}    " for k in KS))
    print(f"{'uniform random pick':<28}" + "".join(f"  {min(1.0, k / unseen):.4f}    " for k in KS))
    share = cands.filter(pl.col("video_id").is_in(new["video_id"].implode())).height / max(cands.height, 1)
    print(f"share of new videos in the candidates: {share:.3f} (new videos are {new.height / (train.videos.height + new.height):.3f} of the catalogue)")

    t0 = time.perf_counter()
    gone = new["video_id"].head(50)
    rec.remove_videos(gone)
    rm_ms = (time.perf_counter() - t0) * 1e3
    again = rec.recommend_batch(users, k=max(KS), stage="candidates", now=end)
    print(f"remove_videos: 50 videos {rm_ms:.0f} ms; returned afterwards: {again['video_id'].is_in(gone.implode()).sum()}")


if __name__ == "__main__":
    main()
