"""Cold-start recall of the two-tower retriever on the simulated platform (default size):
recall@{50,100,200} restricted to test interactions with videos uploaded after the training
cut, with and without video-id dropout (the content-only path that places new videos).

Protocol: one global cut at the time that leaves the last 20% of watches for test. The model
trains on events before the cut and only knows videos uploaded before it; at test time the
index holds the whole catalogue, new videos embedded from their content alone (id unknown).
recall@K per user = share of the user's post-cut-upload test videos (watched or liked) in
their top-K over all videos they did not interact with in training; averaged over users with
at least one such video. All-video recall is printed next to it. (On MovieLens-100K cold-start
recall is not meaningful: every movie exists before the test period.)

    .venv/bin/python benchmarks/two_tower_cold_start.py [--dropouts 0 0.2 0.5] [--set key=json ...] [--no-tags]

``--set video_titles=true`` adds the title embeddings to the content path; ``--no-tags`` empties
every video's tags first, so category, creator and (with it) the title are the only content.
With titles on, a "(new untitled)" row follows each model: the same model with the new
videos' titles withheld at export (how much that model leans on the title).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from two_tower_ml100k import KS, parse_overrides, recall
from vidrec.candidates import TwoTowerGenerator
from vidrec.candidates.two_tower import TwoTowerConfig, user_embeddings, video_embeddings
from vidrec.data.dataset import Dataset, read_dataset
from vidrec.data.simulator import SimulatorConfig, simulate
from vidrec.features import build_user_state


def global_cut(events: pl.DataFrame, fraction: float = 0.2) -> object:
    """The time leaving the last ``fraction`` of watches after it."""
    ts = events.filter(pl.col("event") == "watch")["ts"].sort()
    return ts[int(len(ts) * (1 - fraction))]


def top_k(model, state: pl.DataFrame, videos: pl.DataFrame, train_events: pl.DataFrame, k: int, now) -> pl.DataFrame:
    """Exact top-k over every video (new ones embedded from content), training interactions excluded."""
    ids, v = video_embeddings(model, videos)
    scores = user_embeddings(model, state, now=now) @ v.T  # (users, videos)
    users = state["user_id"]
    seen = train_events.select("user_id", "video_id").unique().join(
        pl.DataFrame({"user_id": users, "u": np.arange(len(users))}), on="user_id").join(
        pl.DataFrame({"video_id": ids, "v": np.arange(len(ids))}), on="video_id")
    scores[seen["u"].to_numpy(), seen["v"].to_numpy()] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return pl.DataFrame({
        "user_id": users.gather(np.repeat(np.arange(len(users)), k)),
        "video_id": ids.gather(top.reshape(-1)),
        "rank": np.tile(np.arange(1, k + 1), len(users)),
    })


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dropouts", nargs="*", type=float, default=[0.0, 0.2, 0.5])
    ap.add_argument("--set", nargs="*", default=[], help="TwoTowerConfig overrides, key=json")
    ap.add_argument("--no-tags", action="store_true", help="empty every video's tags (titles then carry the topic)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        simulate(SimulatorConfig(), Path(tmp) / "platform")
        ds = read_dataset(Path(tmp) / "platform")
    if args.no_tags:
        ds = Dataset(ds.events, ds.videos.with_columns(tags=pl.lit([], dtype=pl.List(pl.String))), ds.users)
    cut = global_cut(ds.events)
    train_events = ds.events.filter(pl.col("ts") < cut)
    old_videos = ds.videos.filter(pl.col("uploaded_at") < cut)
    train = Dataset(train_events, old_videos, ds.users)
    test = ds.events.filter((pl.col("ts") >= cut) & pl.col("event").is_in(["watch", "like"]))
    test = test.join(train_events.filter(pl.col("event").is_in(["watch", "like"])).select("user_id", "video_id"),
                     on=["user_id", "video_id"], how="anti")
    new_ids = ds.videos.filter(pl.col("uploaded_at") >= cut)["video_id"]
    test_new = test.filter(pl.col("video_id").is_in(new_ids.implode()))
    end = ds.events["ts"].max()
    print(f"cut {cut}; train {train_events.height:,} events, {old_videos.height} videos known; "
          f"{len(new_ids)} new videos; test pairs {test.select('user_id', 'video_id').n_unique():,}, "
          f"on new videos {test_new.select('user_id', 'video_id').n_unique():,} "
          f"({test_new['user_id'].n_unique()} users)")
    state = build_user_state(train_events, old_videos)
    print(f"{'video_id_dropout':>16s}" + "".join(f"  new r@{k:<4d}" for k in KS)
          + "".join(f"  all r@{k:<4d}" for k in KS) + "  new share of top-200  fit s")
    for p in args.dropouts:
        config = TwoTowerConfig(**{"threads": 1, **parse_overrides(args.set), "video_id_dropout": p})
        t0 = time.perf_counter()
        gen = TwoTowerGenerator(config, exact=True, log=lambda _: None).fit(train, cut)
        fit_s = time.perf_counter() - t0
        # The generator is fitted and indexed on the videos known before the cut, so the whole
        # catalogue (new videos embedded from their content) is scored here directly: exact inner products.
        cands = top_k(gen.model, state, ds.videos, train_events, max(KS), end)
        share = cands.filter(pl.col("video_id").is_in(new_ids.implode()))["video_id"].len() / max(cands.height, 1)
        print(f"{p:16.2f}" + "".join(f"  {recall(cands, test_new, k):.4f}    " for k in KS)
              + "".join(f"  {recall(cands, test, k):.4f}    " for k in KS) + f"  {share:.3f}  {fit_s:6.0f}", flush=True)
        if config.video_titles:  # the same model, the new videos' titles withheld: what the title carries
            new_rows = pl.col("uploaded_at") >= cut
            blanked = ds.videos.with_columns(title=pl.when(new_rows).then(None).otherwise("title"))
            cands = top_k(gen.model, state, blanked, train_events, max(KS), end)
            print(f"{'(new untitled)':>16s}" + "".join(f"  {recall(cands, test_new, k):.4f}    " for k in KS), flush=True)


if __name__ == "__main__":
    main()
