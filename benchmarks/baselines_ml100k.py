"""Baselines on MovieLens 100K under vidrec's offline protocol.

Each rating is a watch (interacted); a rating of 4 or 5 counts as completed. The last
20% of each user's ratings by time are the test split; tuning uses a further carve of
the last 15% of each user's training ratings. Prints most-popular, iALS and EASE with
candidate recall@{10,50,100,200}, final NDCG/recall/precision@10 and fit times.

    .venv/bin/python benchmarks/baselines_ml100k.py [--data PATH] [--json OUT] [--no-tune]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl

from vidrec.data.schema import TIMESTAMP
from vidrec.evaluation import (
    EvaluationData,
    evaluate_baselines,
    format_table,
    print_report,
    temporal_holdout,
    write_json,
)

DEFAULT_DATA = Path("/work/shared/data/ml-100k/u.data")


def load_ml100k(path: Path) -> pl.DataFrame:
    """u.data (tab-separated user, item, rating, unix time) -> labelled watch events."""
    raw = pl.read_csv(
        path,
        separator="\t",
        has_header=False,
        new_columns=["user", "item", "rating", "unix"],
        schema_overrides={
            "user": pl.String, "item": pl.String, "rating": pl.Int8, "unix": pl.Int64
        },
    )
    return raw.select(
        user_id="u" + pl.col("user"),
        video_id="m" + pl.col("item"),
        ts=pl.from_epoch("unix", time_unit="s").cast(TIMESTAMP),
        event=pl.lit("watch"),
        interacted=pl.lit(True),
        completed=pl.col("rating") >= 4,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="path to ml-100k/u.data")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--valid-fraction", type=float, default=0.15)
    parser.add_argument("--no-tune", action="store_true", help="use default parameters")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()

    events = load_ml100k(args.data)
    train, test = temporal_holdout(events, args.test_fraction)
    data = EvaluationData.from_labelled(train, test)
    tables: dict[str, pl.DataFrame] = {}
    start = time.perf_counter()
    results = evaluate_baselines(
        data, tune=not args.no_tune, valid_fraction=args.valid_fraction, tuning_tables=tables
    )
    total = time.perf_counter() - start
    summary = {"train_events": train.height, "test_events": test.height, **data.summary()}
    print_report(results, summary, title="Baselines on ML-100K (per-user temporal 80/20 split)")
    print("\nchosen parameters:")
    for name, params in results.select("model", "params").iter_rows():
        print(f"  {name}: {params}")
    for name, table in tables.items():
        print(f"\nvalidation grid for {name} (NDCG@10 on the training-period carve):")
        print(format_table(table.sort("ndcg@10", descending=True)))
    print(f"\ntotal time (tuning + fits + evaluation): {total:.1f} s")
    if args.json:
        write_json(results, args.json, {"data": str(args.data), **summary, "total_seconds": total})


if __name__ == "__main__":
    main()
