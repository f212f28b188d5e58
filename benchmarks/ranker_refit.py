"""Refit only the ranker of a saved `oracle_breakdown.py --out DIR` run and judge it by the oracle.

    .venv/bin/python benchmarks/ranker_refit.py DIR [--seeds 0 1 2] [--set '{"ensemble": 1}']

The candidates stay those of the saved model, so ranker variants (features, ensemble
size, seeds) are compared on equal terms. For each seed it prints the scoring-stage and
final shares of the oracle's expected completions (as `oracle_breakdown.py` does) and
the mean over seeds: one network's share moves by about 0.02 with its seed, so compare
means.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import torch

from oracle_breakdown import _top10
from scoring import variant
from stage_frames import stage_frames, training_events, video_vectors
from vidrec.candidates.two_tower.source import TwoTowerEmbeddings
from vidrec.data.dataset import Dataset
from vidrec.data.simulator import GroundTruth
from vidrec.evaluation.oracle import oracle_ratio
from vidrec.recommender import Recommender
from vidrec.reranking import DefaultReRanker
from vidrec.scoring import MultiTaskRanker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="artifacts of oracle_breakdown.py --out")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", default="{}",
                        help='JSON RankerConfig overrides, e.g. {"features": {"title_words": false}}')
    args = parser.parse_args()
    torch.set_num_threads(1)
    rec = Recommender.load(args.root / "model")
    pipe = rec.pipeline
    base = variant(pipe.ranker.config, json.loads(args.set))
    emb = TwoTowerEmbeddings(pipe.feature_model, rec.catalogue) if pipe.feature_model else None
    events, videos = training_events(rec), rec.videos
    train = Dataset(events, videos, rec.users)
    truth = GroundTruth.load(args.root / "platform")
    users = pl.read_parquet(args.root / "split" / "test" / "events.parquet")["user_id"].unique().sort().to_list()
    state, now = rec.user_state(users), rec.now
    seen = state.select("user_id", "seen")
    vectors = video_vectors(rec)
    shares = []
    for seed in args.seeds:
        # The refit ranker serves in the saved model's place: the same candidates, scored as the pipeline scores.
        pipe.ranker = MultiTaskRanker(replace(base, seed=seed)).fit(train, emb)
        pipe.bind(rec.catalogue, rec.live)
        _, scored = stage_frames(rec, users)
        final = DefaultReRanker(pipe.config.rerank).rerank(scored, state, videos, now, 10, events=events,
                                                           video_vectors=vectors)  # fmt: skip
        row = [oracle_ratio(truth, slate.select("user_id", "rank", "video_id"), seen, now)["ratio_of_totals"]
               for slate in (_top10(scored, "score"), final)]  # fmt: skip
        shares.append(row)
        print(f"seed {seed}: scoring stage {row[0]:.4f}, final {row[1]:.4f}, "
              f"validation AUC {pipe.ranker.report['val_auc']:.4f}", flush=True)
    mean = np.mean(shares, axis=0)
    print(json.dumps({"set": json.loads(args.set), "seeds": args.seeds, "scoring_stage": round(float(mean[0]), 4),
                      "final": round(float(mean[1]), 4)}))  # fmt: skip


if __name__ == "__main__":
    main()
