"""How the ranker's score relates to the simulator's truth, within each user's candidates.

    .venv/bin/python benchmarks/ranker_ingredients.py DIR

DIR: the artifacts of ``oracle_breakdown.py --out``. Within each user (values demeaned per
user), the ranker's logit and the true logit of P(complete | shown) are each regressed on
the truth's ingredients: log-affinity, video quality, freshness, log duration and the
language penalty. A ranker that knew the truth would weigh them as the truth does; where
it weighs an ingredient less, it cannot estimate that ingredient from the log.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import polars as pl
import torch

from stage_frames import stage_frames
from vidrec.data.schema import epoch_us
from vidrec.data.simulator import GroundTruth
from vidrec.data.simulator.behaviour import freshness, log_affinity
from vidrec.recommender import Recommender

INGREDIENTS = ("log_affinity", "quality", "freshness", "log_duration", "language")


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="artifacts of oracle_breakdown.py --out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rec = Recommender.load(args.root / "model")
    truth = GroundTruth.load(args.root / "platform")
    users = pl.read_parquet(args.root / "split" / "test" / "events.parquet")["user_id"].unique().sort().to_list()
    _, scored = stage_frames(rec, users)
    u = truth.user_ids.to_index(scored["user_id"].to_list())
    v = truth.video_ids.to_index(scored["video_id"].to_list())
    age = epoch_us(rec.now) - truth.uploaded_us[v]
    frame = pl.DataFrame({
        "user": u,
        "log_affinity": log_affinity(truth.interest[u, truth.topic[v]], truth.n_topics),
        "quality": truth.quality[v],
        "freshness": freshness(age, truth.params),
        "log_duration": np.log(truth.duration[v] / 60.0),
        "language": truth.language_penalty[truth.user_language[u], truth.video_language[v]],
        "truth": _logit(truth.p_complete(scored["user_id"].to_list(), scored["video_id"].to_list(), rec.now)),
        "ranker": _logit(scored["score"].to_numpy()),
    })  # fmt: skip
    cols = [*INGREDIENTS, "truth", "ranker"]
    within = frame.select((pl.col(c) - pl.col(c).mean().over("user")).alias(c) for c in cols)
    x = within.select(INGREDIENTS).to_numpy()
    print(f"{within.height:,} candidates of {len(users):,} users, values demeaned within each user\n")
    print("| logit of | " + " | ".join(INGREDIENTS) + " | R^2 |")
    print("|---|" + "---:|" * (len(INGREDIENTS) + 1))
    for target in ("truth", "ranker"):
        y = within[target].to_numpy()
        beta, *_ = np.linalg.lstsq(x, y, rcond=None)
        r2 = 1 - ((y - x @ beta) ** 2).sum() / (y**2).sum()
        print(f"| {target} | " + " | ".join(f"{b:.2f}" for b in beta) + f" | {r2:.2f} |")
    corr = np.corrcoef(within["truth"].to_numpy(), within["ranker"].to_numpy())[0, 1]
    print(f"\ncorrelation of the ranker's logit with the true one, within users: {corr:.3f}")


if __name__ == "__main__":
    main()
