"""Where vidrec loses expected completions against the simulator's oracle, stage by stage.

    .venv/bin/python benchmarks/oracle_breakdown.py [--days 28] [--impressions 4] [--out DIR] [--config FILE]

Trains vidrec (default config) on the per-user temporal split of a simulated platform
and scores, with the simulator's true P(complete >= 80% | shown) at the model's clock,
each user's ten from: the best ten within vidrec's merged candidates (the ceiling the
later stages can reach), the merged candidate order, the scoring stage, the final list
with re-ranking's soft objectives off, and the final list with the defaults (and with
each soft objective off in turn). Each figure
is a share of the oracle's best ten over the whole corpus (ratio of totals).

Two more tables explain the ranker's gap. Ratios by user activity (quartiles of
training impressions) show how much is a lack of evidence about a user. "Information
ceilings" rank the candidates by the true probability with one ingredient replaced by
what a recommender without it could know (the population's topic interests, or no
video quality / language), as shares of the best ten within the candidates.

"What the log allows" bounds every recommender trained on this log: a Bayesian oracle
that knows the response model and every video's truth (topic, quality, length, language,
age) and each user's prior, but must infer the user's topic interests from the training
log (`vidrec.evaluation.log_oracle`): from nothing, from the logged outcomes, from the
outcomes plus which videos the (personalised) logging policy chose to show, and finally
inferring the videos' qualities from the log as well (the last row is the bound proper).
It ranks by the posterior expected P(complete), the Bayes-optimal choice, so no model
learning from the same log can beat it on average; it still knows the topics and the
response model, so it is an upper bound, not an achievable figure.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import torch

from stage_frames import stage_frames, training_events, video_vectors
from vidrec.config import load_config
from vidrec.data.dataset import read_dataset
from vidrec.data.ingest import ingest_tables
from vidrec.data.simulator import GroundTruth, SimulatorConfig, simulate
from vidrec.data.simulator.behaviour import log_affinity, response_probabilities
from vidrec.data.splits import SplitConfig, write_split
from vidrec.evaluation.log_oracle import LogOracleConfig, log_informed_best, log_posterior
from vidrec.evaluation.oracle import oracle_ratio
from vidrec.recommender import Recommender
from vidrec.reranking import DefaultReRanker


def _top10(frame: pl.DataFrame, col: str, descending: bool = True) -> pl.DataFrame:
    ordered = frame.sort("user_id", col, descending=[False, descending])
    return ordered.with_columns(rank=pl.int_range(1, pl.len() + 1).over("user_id")).filter(pl.col("rank") <= 10)


def _ceilings(truth: GroundTruth, cands: pl.DataFrame, now_us: int) -> dict[str, float]:
    """Shares of the best ten within the candidates when ranking by a partly-known truth."""
    u = truth._index(cands["user_id"].to_list(), truth.user_ids, "user")
    v = truth._index(cands["video_id"].to_list(), truth.video_ids, "video")
    affinity = log_affinity(truth.interest[u, truth.topic[v]], truth.n_topics)
    population = log_affinity(truth.interest.mean(axis=0)[truth.topic[v]], truth.n_topics)
    penalty = truth.language_penalty[truth.user_language[u], truth.video_language[v]]
    zeros = np.zeros(len(v))

    def p(a: np.ndarray = affinity, q: np.ndarray = truth.quality[v], pen: np.ndarray = penalty) -> np.ndarray:
        watch, full = response_probabilities(truth.params, a, pen, q, truth.duration[v], now_us - truth.uploaded_us[v])
        return watch * full

    true = cands["true_p"].to_numpy()
    best = _top10(cands, "true_p")["true_p"].sum()
    variants = {
        "population topic interests (no personalisation)": p(a=population),
        "no video quality": p(q=zeros),
        "no language": p(pen=zeros),
        "topic interest only": p(q=zeros, pen=zeros),
    }
    out = {}
    for name, score in variants.items():
        top = _top10(cands.with_columns(x=pl.Series(score), true_p=pl.Series(true)), "x")
        out[name] = float(top["true_p"].sum() / best)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=SimulatorConfig.days)
    parser.add_argument("--impressions", type=float, default=SimulatorConfig.impressions_per_user_day,
                        help="mean impressions per user per day (more = more evidence per user)")
    parser.add_argument("--out", type=Path, default=None, help="keep the artifacts here")
    parser.add_argument("--no-bound", action="store_true", help="skip the log-informed oracle (a few minutes)")
    parser.add_argument("--config", type=Path, default=None, help="a vidrec TOML config (default: the defaults)")
    parser.add_argument("--ndcg-budget", action="store_true",
                        help="the re-ranking budget on validation NDCG@10, not on the simulator's true expected "
                             "completions")
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = args.out or Path(tempfile.mkdtemp(prefix="vidrec-oracle-"))
    cfg = SimulatorConfig(days=args.days, impressions_per_user_day=args.impressions)
    simulate(cfg, root / "platform")
    ds = read_dataset(root / "platform")
    ingest_tables(ds.events, ds.videos, ds.users, root / "data")
    write_split(read_dataset(root / "data"), root / "split", SplitConfig())
    train = read_dataset(root / "split" / "train")
    start = time.perf_counter()
    config = load_config(args.config)
    if not args.ndcg_budget and config.rerank.budget_truth is None:
        config = replace(config, rerank=replace(config.rerank, budget_truth=str(root / "platform")))
    rec = Recommender.train(train, config, log=lambda m: None)
    rec.save(root / "model")
    print(f"simulated platform: {cfg.users} users, {cfg.videos} videos, {cfg.days} days, "
          f"{cfg.impressions_per_user_day} impressions per user-day; {train.events.height:,} training events; "
          f"training {time.perf_counter() - start:.1f} s")

    truth = GroundTruth.load(root / "platform")
    test = pl.read_parquet(root / "split" / "test" / "events.parquet")
    users = test["user_id"].unique().sort().to_list()
    state, now, pipe, videos = rec.user_state(users), rec.now, rec.pipeline, rec.videos
    seen = state.select("user_id", "seen")
    cands, scored = stage_frames(rec, users)
    cands = cands.with_columns(true_p=pl.Series(truth.p_complete(cands["user_id"].to_list(), cands["video_id"].to_list(), now)))
    vectors, events = video_vectors(rec), training_events(rec)
    base = pipe.config.rerank
    soft_off = replace(base, fresh_boost=0.0, min_fresh=0, diversity="none", creator_cap=None, calibration_weight=0.0,
                       fair_min_share=0.0)  # fmt: skip

    def final(config) -> pl.DataFrame:
        return DefaultReRanker(config).rerank(scored, state, videos, now, 10, events=events, video_vectors=vectors)

    slates = {
        "best ten within the candidates (ceiling)": _top10(cands, "true_p"),
        "merged candidate order": _top10(cands, "rank", descending=False),
        "scoring stage": _top10(scored, "score"),
        "final, re-ranking hard rules only": final(soft_off),
        "final, default re-ranking": final(base),
    }
    print("\n| ten per user from | share of the oracle's expected completions | completions per slate (oracle) |")
    print("|---|---:|---:|")
    per_user = {}
    for name, slate in slates.items():
        r = oracle_ratio(truth, slate.select("user_id", "rank", "video_id"), seen, now)
        per_user[name] = slate
        print(f"| {name} | {r['ratio_of_totals']:.3f} | {r['expected_completions_per_slate']:.2f} "
              f"({r['oracle_completions_per_slate']:.2f}) |")

    activity = train.events.filter(pl.col("event") == "impression").group_by("user_id").agg(n=pl.len())
    activity = activity.filter(pl.col("user_id").is_in(users)).with_columns(
        q=pl.col("n").rank("ordinal").bin_quantiles(4, labels=["1 (least)", "2", "3", "4 (most)"])
    )
    print("\n| activity quartile | training impressions (median) | scoring stage | final |")
    print("|---|---:|---:|---:|")
    for q in ["1 (least)", "2", "3", "4 (most)"]:
        group = activity.filter(pl.col("q") == q)
        ids = group["user_id"].implode()
        row = [f"| {q} | {int(group['n'].median())} "]
        for name in ("scoring stage", "final, default re-ranking"):
            slate = per_user[name].filter(pl.col("user_id").is_in(ids))
            r = oracle_ratio(truth, slate.select("user_id", "rank", "video_id"), seen, now)
            row.append(f"| {r['ratio_of_totals']:.3f} ")
        print("".join(row) + "|")

    now_us = int(now.timestamp() * 1_000_000)
    print("\n| ranking the candidates by the true probability with | share of the best ten within the candidates |")
    print("|---|---:|")
    for name, value in _ceilings(truth, cands, now_us).items():
        print(f"| {name} | {value:.3f} |")
    ranker_share = (_top10(scored.join(cands.select("user_id", "video_id", "true_p"), on=["user_id", "video_id"]),
                           "score")["true_p"].sum() / _top10(cands, "true_p")["true_p"].sum())  # fmt: skip
    print(f"| (vidrec's scoring stage, for comparison) | {ranker_share:.3f} |")
    knobs = {
        "without the creator cap": replace(base, creator_cap=None),
        "without the DPP": replace(base, diversity="none"),
        "without the fresh boost": replace(base, fresh_boost=0.0),
        "without the fresh minimum": replace(base, min_fresh=0),
    }
    print("\n| default re-ranking, one soft objective off | share of the oracle's expected completions |")
    print("|---|---:|")
    for name, config in knobs.items():
        r = oracle_ratio(truth, final(config).select("user_id", "rank", "video_id"), seen, now)
        print(f"| {name} | {r['ratio_of_totals']:.3f} |")
    if not args.no_bound:
        _log_bound(truth, train, users, seen, now, slates)
    print("\n" + json.dumps({"artifacts": str(root)}))


def _log_bound(truth: GroundTruth, train, users: list[str], seen: pl.DataFrame, now, slates: dict) -> None:
    """Shares of the oracle reached by the Bayesian oracle that knows only the log about users."""
    exclude = {r["user_id"]: set(r["seen"] or []) for r in seen.iter_rows(named=True)}
    variants = {
        "nothing: the prior only (qualities known)": (train.events.head(0), LogOracleConfig(burn_in=100, samples=100,
                                                                                          exposure=False)),
        "the logged outcomes: watch, completion, like, dislike (qualities known)": (
            train.events, LogOracleConfig(exposure=False)),
        "outcomes and what the logging policy chose to show (qualities known)": (train.events, LogOracleConfig()),
        "outcomes, exposure, and qualities inferred from the log too": (
            train.events, LogOracleConfig(infer_quality=True, burn_in=150, samples=100)),
    }  # fmt: skip
    print("\n| Bayes-optimal ten, interests inferred from | share of the oracle's expected completions | sampling |")
    print("|---|---:|---:|")
    for name, (log, cfg) in variants.items():
        start = time.perf_counter()
        post = log_posterior(truth, log, users, cfg)
        r = oracle_ratio(truth, log_informed_best(truth, post, now, 10, exclude), seen, now)
        print(f"| {name} | {r['ratio_of_totals']:.3f} | {time.perf_counter() - start:.0f} s, "
              f"acceptance {post.acceptance:.2f} |")
    for name in ("scoring stage", "final, default re-ranking"):
        r = oracle_ratio(truth, slates[name].select("user_id", "rank", "video_id"), seen, now)
        print(f"| (vidrec, {name}) | {r['ratio_of_totals']:.3f} | |")


if __name__ == "__main__":
    main()
