"""Two-tower feature groups on MovieLens-100K (per-user temporal split): the current model vs
each richer-tower feature group vs all, and the history-pooling comparison.

Protocol as ``two_tower_ml100k.py`` (last 20% of each user's ratings are test; recall@K over
all videos the user has not rated), with two additions the feature groups need: ratings
below 3 also give a ``dislike`` event at the rating time (the MovieLens adapter's rule),
and the users table carries age_bucket, gender and occupation from ``u.user``. Validation
recall is the one training reports (its own inner carve, recall@``eval_k``), which is what
the defaults are chosen on; test recall is printed next to it.

    .venv/bin/python benchmarks/two_tower_features.py [--only NAME ...] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import timedelta
from pathlib import Path

import polars as pl
import torch

from two_tower_ml100k import DURATION, KS, load_ml100k, parse_overrides, peers, recall, temporal_split
from vidrec.candidates import TwoTowerGenerator
from vidrec.candidates.two_tower import TwoTowerConfig
from vidrec.data.dataset import Dataset
from vidrec.features import build_user_state

VIDEO_ALL = {"video_duration": True, "video_language": True}
USER_ALL = {"dislike_len": 20, "user_demographics": True, "request_context": True, "example_age": True}
MEAN = {"history_pooling": "mean"}  # the pre-issue pooling; single groups are added to it
ATT = {"history_pooling": "attention"}
VARIANTS: dict[str, dict[str, object]] = {
    "current (mean pooling)": MEAN,
    "pooling weighted": {"history_pooling": "weighted"},
    "pooling attention": ATT,
    "+ dislikes (20)": {**MEAN, "dislike_len": 20},
    "+ demographics": {**MEAN, "user_demographics": True},
    "+ request context": {**MEAN, "request_context": True},
    "+ example age": {**MEAN, "example_age": True},
    "+ duration, language": {**MEAN, **VIDEO_ALL},
    "+ video-id dropout 0.2": {**MEAN, "video_id_dropout": 0.2},
    "all groups": {**MEAN, **USER_ALL, **VIDEO_ALL},
    "attention + dislikes (20)": {**ATT, "dislike_len": 20},
    "attention + demographics": {**ATT, "user_demographics": True},
    "attention + dislikes + demographics": {**ATT, "dislike_len": 20, "user_demographics": True},
}


def load_users(root: Path) -> pl.DataFrame:
    """ML-100K users with the adapter's demographic columns (age_bucket, gender, occupation)."""
    raw = pl.read_csv(
        root / "u.user", separator="|", has_header=False,
        new_columns=["user", "age", "gender", "occupation", "zip"],
        schema_overrides=[pl.Int64, pl.Int64] + [pl.String] * 3,
    )
    age = pl.col("age")
    bucket = (
        pl.when(age < 18).then(pl.lit("<18")).when(age < 25).then(pl.lit("18-24"))
        .when(age < 35).then(pl.lit("25-34")).when(age < 45).then(pl.lit("35-44"))
        .when(age < 55).then(pl.lit("45-54")).otherwise(pl.lit("55+"))
    )
    return raw.select(user_id="u" + pl.col("user").cast(pl.String), age_bucket=bucket, gender="gender",
                      occupation="occupation")


def with_dislikes(events: pl.DataFrame) -> pl.DataFrame:
    """Add a ``dislike`` at the rating time for every rating below 3 (the adapter's rule)."""
    low = events.filter(pl.col("watch_seconds") < 3.0 / 5.0 * DURATION)
    dislikes = low.with_columns(event=pl.lit("dislike"), watch_seconds=pl.lit(None, dtype=pl.Float64))
    return pl.concat([events, dislikes]).sort("user_id", "ts", "event")


def run(name: str, overrides: dict[str, object], ds: Dataset, test: pl.DataFrame, now, base: dict) -> dict:
    config = TwoTowerConfig(**{**base, **overrides})
    state = build_user_state(ds.events, ds.videos).join(ds.users, on="user_id", how="left")
    t0 = time.perf_counter()
    gen = TwoTowerGenerator(config, exact=True, log=lambda _: None).fit(ds, now)
    fit_s = time.perf_counter() - t0
    cands = gen.generate(state, max(KS), now)
    rep = gen.report
    row = {"name": name, "val_recall": rep.best_recall, "epochs": rep.best_epoch, "fit_s": fit_s}
    row |= {f"test_r@{k}": recall(cands, test, k) for k in KS}
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data/ml-100k"))
    ap.add_argument("--only", nargs="*", default=None, help="variant names to run (default: all)")
    ap.add_argument("--set", nargs="*", default=[], help="TwoTowerConfig overrides for every variant, key=json")
    ap.add_argument("--json", type=Path, default=None, help="append one JSON line per variant here")
    ap.add_argument("--peers", action="store_true", help="also print most-popular and EASE")
    args = ap.parse_args()
    torch.set_num_threads(1)
    events, videos = load_ml100k(args.data)
    train, test = temporal_split(events)
    now = train["ts"].max() + timedelta(seconds=1)
    users = load_users(args.data).join(train.select("user_id").unique(), on="user_id")
    ds = Dataset(with_dislikes(train), videos, users)
    base = {"threads": 1, **parse_overrides(args.set)}
    names = args.only or list(VARIANTS)
    print(f"{'variant':28s} {'val r@100':>9s} {'r@50':>7s} {'r@100':>7s} {'r@200':>7s} {'epochs':>6s} {'fit s':>6s}")
    for name in names:
        row = run(name, VARIANTS[name], ds, test, now, base)
        print(f"{name:28s} {row['val_recall']:9.4f} " + " ".join(f"{row[f'test_r@{k}']:7.4f}" for k in KS)
              + f" {row['epochs']:6d} {row['fit_s']:6.0f}", flush=True)
        if args.json:
            with args.json.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
    if args.peers:
        for name, cands in peers(train, max(KS)).items():
            print(f"{name:28s} {'-':>9s} " + " ".join(f"{recall(cands, test, k):7.4f}" for k in KS))


if __name__ == "__main__":
    main()
