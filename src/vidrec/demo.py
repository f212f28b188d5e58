"""The main job on the built-in data: simulate a platform, validate, split, train all three
stages, evaluate them beside the baselines and the oracle, and show a few users' slates.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import polars as pl

from vidrec.config import PipelineConfig
from vidrec.data.dataset import read_dataset
from vidrec.data.ingest import ingest_tables
from vidrec.data.simulator import GroundTruth, SimulatorConfig, simulate
from vidrec.data.splits import SplitConfig, write_split
from vidrec.data.stats import describe, format_summary
from vidrec.evaluation.oracle import oracle_ratio
from vidrec.evaluation.protocol import EvaluationData
from vidrec.evaluation.report import print_report, write_json
from vidrec.evaluation.system import evaluate_all, run_stages
from vidrec.recommender import Recommender
from vidrec.report import Evaluation, ReportInputs, write_report
from vidrec.report.inputs import read_test_events


def _step(title: str) -> float:
    print(f"\n=== {title} ===", flush=True)
    return time.perf_counter()


def show_users(rec: Recommender, events: pl.DataFrame, user_ids: list[str], k: int = 10) -> None:
    """Print each user's recent history (from ``events``) and their slate with provenance."""
    recs = rec.recommend_batch(user_ids, k=k)
    watches = events.filter(pl.col("event") == "watch", pl.col("user_id").is_in(user_ids))
    watches = watches.join(rec.videos.select("video_id", "category", "duration_seconds"), on="video_id")
    for uid in user_ids:
        print(f"\nuser {uid}: last watches")
        hist = watches.filter(pl.col("user_id") == uid).sort("ts").tail(5)
        for r in hist.iter_rows(named=True):
            print(f"  {r['ts']:%m-%d %H:%M}  {r['video_id']:<10} {r['category']:<12} "
                  f"completion {r['watch_seconds'] / r['duration_seconds']:.2f}")
        print(f"user {uid}: recommendations")
        mine = recs.filter(pl.col("user_id") == uid).join(
            rec.videos.select("video_id", "category", "creator_id"), on="video_id", how="left"
        )
        for r in mine.iter_rows(named=True):
            retr = "-" if r["retrieval_score"] is None else f"{r['retrieval_score']:.2f}"
            adj = ",".join(r["adjustments"]) or "-"
            print(f"  {r['rank']:>2}. {r['video_id']:<10} {r['category']:<12} from {r['source']:<18} "
                  f"retrieval {retr:>6}  p_complete {r['p_complete']:.3f}  final {r['final_score']:.3f}  {adj}")


def run_demo(out: Path, users: int = 3000, videos: int = 2000, days: int = 28, seed: int = 0) -> dict:
    """Run the whole path into ``out`` and return the headline figures."""
    start = time.perf_counter()
    t = _step("1. simulate a video platform")
    simulate(SimulatorConfig(users=users, videos=videos, days=days, seed=seed), out / "platform")
    print(f"simulated in {time.perf_counter() - t:.1f} s")

    _step("2. validate (ingest) and describe")
    raw = read_dataset(out / "platform")
    result = ingest_tables(raw.events, raw.videos, raw.users, out / "data")
    print(result.summary())
    print(format_summary(describe(result.validation.dataset)))

    _step("3. split: each user's last 20% of watches by time are the test set")
    info = write_split(result.validation.dataset, out / "split", SplitConfig())
    print(f"{info['train_events']:,} training events, {info['test_events']:,} test events")

    t = _step("4. train candidates -> scoring -> re-ranking")
    train = read_dataset(out / "split" / "train")
    # a simulated platform knows what its users would complete: the re-ranking budget is measured on that
    config = PipelineConfig()
    config = replace(config, rerank=replace(config.rerank, budget_truth=str(out / "platform")))
    rec = Recommender.train(train, config, log=lambda m: None)
    path = rec.save(out / "model")
    print(f"trained in {time.perf_counter() - t:.1f} s -> {path}")
    print("stage times (s): " + json.dumps({k: round(v, 1) for k, v in rec.pipeline.timings.items()}))

    _step("5. evaluate each stage beside most-popular, iALS and EASE")
    data = EvaluationData.from_split(out / "split")
    run, lists = run_stages(rec, data), {}  # kept for the report, which reads this pass and these lists
    table, per_user = evaluate_all(rec, data, run=run, recommendations=lists)
    print_report(table, data.summary())
    truth = GroundTruth.load(out / "platform")
    judged = data.users.ids.to_list()
    final = rec.recommend_batch(judged, k=10)
    oracle = oracle_ratio(truth, final, rec.user_state(judged), rec.now)
    figures = json.dumps({k: round(v, 3) for k, v in oracle.items()})
    print(f"\nvs the oracle (true P(complete) of the ten, summed): {figures}")
    write_json(table, path / "evaluation.json", meta={"oracle": oracle, "seconds_per_user": per_user})

    _step("6. three users, their recent history and their ten")
    active = train.events.filter(pl.col("event") == "watch").group_by("user_id").len().sort("len", descending=True)
    picks = [active["user_id"][i] for i in (0, active.height // 2, active.height - 1)]
    show_users(rec, train.events, picks)

    t = _step("7. the report: every figure in one HTML file")
    sources = {"split": str(out / "split"), "ground truth": str(out / "platform" / "ground_truth")}
    inputs = ReportInputs(rec, path, data, read_test_events(out / "split"), sources, truth,
                          Evaluation(table, run, lists))  # fmt: skip
    report = write_report(inputs, out / "report.html")
    print(f"wrote {report} in {time.perf_counter() - t:.1f} s (open it in a browser; it needs no network)")
    return {"oracle": oracle, "table": table.to_dicts(), "report": str(report),
            "seconds": time.perf_counter() - start}
