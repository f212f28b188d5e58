"""Recommendations judged against the simulator's ground truth: how close to the best possible."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

from vidrec.data.simulator import GroundTruth


def oracle_ratio(
    truth: GroundTruth, recs: pl.DataFrame, seen: pl.DataFrame, now: datetime, k: int = 10
) -> dict[str, float]:
    """Expected completions of each user's ``k`` recommendations over the oracle's best ``k``.

    ``recs`` has ``user_id, rank, video_id``; ``seen`` has ``user_id, seen`` (list of video
    ids the oracle must not pick either, as the recommender may not). Both sides are scored
    by the true P(complete >= 80%) at ``now``. Returns the mean per-user ratio and the
    ratio of totals.
    """
    slate = recs.filter(pl.col("rank") <= k)
    users = slate["user_id"].unique().sort()
    p = truth.p_complete(slate["user_id"].to_list(), slate["video_id"].to_list(), now)
    ours = slate.with_columns(p=pl.Series(p)).group_by("user_id").agg(ours=pl.col("p").sum())
    exclude = {
        r["user_id"]: set(r["seen"] or [])
        for r in seen.filter(pl.col("user_id").is_in(users.implode())).iter_rows(named=True)
    }
    best = truth.best_videos(users.to_list(), now, k=k, exclude=exclude)
    top = best.group_by("user_id").agg(best=pl.col("p_complete").sum())
    both = ours.join(top, on="user_id")
    ratio = (both["ours"] / both["best"]).to_numpy()
    return {
        "users": float(both.height),
        "mean_ratio": float(np.nanmean(ratio)),
        "ratio_of_totals": float(both["ours"].sum() / both["best"].sum()),
        "expected_completions_per_slate": float(both["ours"].mean()),
        "oracle_completions_per_slate": float(both["best"].mean()),
    }
