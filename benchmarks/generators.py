"""Candidate recall@{100,200,500} of every generator and of the merged set, beside EASE and iALS.

Defaults (co-watch settings, merge order and quotas) are chosen on a validation carve of the
training period (each user's last 15% of training watches), then every generator is refit on
the whole training period and judged on the test split at the same candidate counts.

    .venv/bin/python benchmarks/generators.py SPLITDIR [--name NAME] [--skip-two-tower]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from dataclasses import replace
from datetime import timedelta

import polars as pl

from vidrec.candidates.base import CandidateGenerator
from vidrec.candidates.cowatch import CoWatchConfig, CoWatchGenerator
from vidrec.candidates.creators import CreatorsGenerator
from vidrec.candidates.demographic import DemographicConfig, DemographicGenerator
from vidrec.candidates.ease import EaseGenerator
from vidrec.candidates.fresh import FreshGenerator
from vidrec.candidates.generators import TrendingGenerator, TwoTowerGenerator
from vidrec.candidates.merge import merge_candidates
from vidrec.candidates.two_tower.config import TwoTowerConfig
from vidrec.data.dataset import Dataset, read_dataset
from vidrec.evaluation.protocol import (
    EvaluationData,
    default_baselines,
    evaluate_baselines,
    evaluate_recommendations,
    temporal_holdout,
)
from vidrec.evaluation.system import to_matrix
from vidrec.features import build_user_state
from vidrec.features.store.snapshot import profiles

KS = (100, 200, 500)
DEPTH = max(KS)
TUNE_K = 200
COWATCH_GRID = {
    "signal": ["completed", "watched"],
    "normalisation": ["cosine", "conditional"],
    "history": [20, 50],
    "neighbours": [100, 300],
}
QUOTA_SHARES = [0.0, 0.05, 0.1, 0.2, 0.35, 1.0]


def state_of(ds: Dataset, data: EvaluationData) -> tuple[pl.DataFrame, object]:
    """The judged users' state with their profiles (the users table's string columns, as the online
    store holds them): generators read a request's demographics from its profile."""
    now = ds.events["ts"].max() + timedelta(microseconds=1)
    judged = data.users.ids.gather(data.judged_users())
    state = build_user_state(ds.events, ds.videos, as_of=now).filter(pl.col("user_id").is_in(judged.implode()))
    return state.join(profiles(ds.users), on="user_id", how="left"), now


def judge(data: EvaluationData, frame: pl.DataFrame, name: str) -> dict[str, float]:
    row = evaluate_recommendations(data, to_matrix(frame, data, DEPTH), name, ks=KS)
    return {f"recall@{k}": row[f"cand_recall@{k}"].item() for k in KS}


def build(ds: Dataset, cowatch: CoWatchConfig, demographic: DemographicConfig, two_tower: bool) -> dict[str, CandidateGenerator]:
    gens: dict[str, CandidateGenerator] = {}
    if two_tower:
        gens["two_tower"] = TwoTowerGenerator(replace(TwoTowerConfig(), threads=1), log=lambda _: None)
    gens |= {
        "trending": TrendingGenerator(),
        "cowatch": CoWatchGenerator(cowatch),
        "ease": EaseGenerator(),
        "fresh": FreshGenerator(),
        "creators": CreatorsGenerator(),
        "demographic": DemographicGenerator(demographic),
    }
    return gens


def run_all(ds: Dataset, data: EvaluationData, gens: dict[str, CandidateGenerator]) -> tuple[dict[str, pl.DataFrame], dict[str, float]]:
    state, now = state_of(ds, data)
    out, seconds = {}, {}
    for name, gen in gens.items():
        t0 = time.perf_counter()
        out[name] = gen.fit(ds, now).generate(state, DEPTH, now)
        seconds[name] = time.perf_counter() - t0
    return out, seconds


def merged(frames: dict[str, pl.DataFrame], order: list[str], shares: dict[str, float], target: int) -> pl.DataFrame:
    quotas = {n: round(s * target) for n, s in shares.items() if s < 1.0}
    return merge_candidates([frames[n] for n in order if n in frames], quotas=quotas, target=target)


def merged_recall(data: EvaluationData, frames: dict[str, pl.DataFrame], order: list[str], shares: dict[str, float], k: int) -> float:
    return judge(data, merged(frames, order, shares, k), "merged")[f"recall@{k}"]


def tune_cowatch(ds: Dataset, data: EvaluationData) -> tuple[CoWatchConfig, pl.DataFrame]:
    state, now = state_of(ds, data)
    rows = []
    for values in itertools.product(*COWATCH_GRID.values()):
        cfg = CoWatchConfig(**dict(zip(COWATCH_GRID, values)))
        r = judge(data, CoWatchGenerator(cfg).fit(ds, now).generate(state, DEPTH, now), "cowatch")
        rows.append(dict(zip(COWATCH_GRID, values)) | r)
    table = pl.DataFrame(rows).sort(f"recall@{TUNE_K}", descending=True)
    best = {k: table[k][0] for k in COWATCH_GRID}
    return CoWatchConfig(**best), table


def tune_merge(data: EvaluationData, frames: dict[str, pl.DataFrame], single: dict[str, dict[str, float]]) -> tuple[list[str], dict[str, float], float]:
    """Order by single-generator recall; then coordinate descent on each generator's quota share."""
    order = sorted(frames, key=lambda n: -single[n][f"recall@{TUNE_K}"])
    shares = {n: 1.0 for n in order}
    best = merged_recall(data, frames, order, shares, TUNE_K)
    for _ in range(2):
        for name in order:
            for s in QUOTA_SHARES:
                trial = shares | {name: s}
                r = merged_recall(data, frames, order, trial, TUNE_K)
                if r > best + 1e-9:
                    best, shares = r, trial
    return order, shares, best


def table(rows: dict[str, dict[str, float]]) -> str:
    lines = ["| candidates | " + " | ".join(f"recall@{k}" for k in KS) + " |", "|---|" + "---|" * len(KS)]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{r[f'recall@{k}']:.4f}" for k in KS) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("split")
    ap.add_argument("--name", default="dataset")
    ap.add_argument("--skip-two-tower", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    train = read_dataset(f"{args.split}/train").conform()
    data = EvaluationData.from_split(args.split)
    fit_events, valid_events = temporal_holdout(train.events, 0.15)
    vtrain = Dataset(fit_events, train.videos, train.users)
    vdata = EvaluationData.from_frames(vtrain, valid_events)
    print(f"## Generators on {args.name}\n")

    cowatch, grid = tune_cowatch(vtrain, vdata)
    print("co-watch grid (validation, top 8 by recall@200):\n" + str(grid.head(8)) + "\n")
    demo_rows = {}
    for mh in (5, None):
        state, now = state_of(vtrain, vdata)
        g = DemographicGenerator(DemographicConfig(max_history=mh)).fit(vtrain, now)
        demo_rows[f"demographic max_history={mh}"] = judge(vdata, g.generate(state, DEPTH, now), "demo")
    print("demographic (validation):\n" + table(demo_rows) + "\n")

    gens = build(vtrain, cowatch, DemographicConfig(), not args.skip_two_tower)
    vframes, _ = run_all(vtrain, vdata, gens)
    vsingle = {n: judge(vdata, f, n) for n, f in vframes.items()}
    order, shares, best = tune_merge(vdata, vframes, vsingle)
    vsingle["merged (tuned)"] = {f"recall@{k}": merged_recall(vdata, vframes, order, shares, k) for k in KS}
    base = [b for b in default_baselines() if b.name in ("EASE", "iALS")]
    vbase = evaluate_baselines(vdata, ks=KS, tune=False, baselines=base)
    for row in vbase.iter_rows(named=True):
        vsingle[row["model"]] = {f"recall@{k}": row[f"cand_recall@{k}"] for k in KS}
    print(f"merge order {order}, quota shares {shares} (validation recall@{TUNE_K} {best:.4f})\n")
    print("### Validation carve\n\n" + table(vsingle) + "\n")

    gens = build(train, cowatch, DemographicConfig(), not args.skip_two_tower)
    frames, seconds = run_all(train, data, gens)
    single = {n: judge(data, f, n) for n, f in frames.items()}
    single["merged (tuned)"] = {f"recall@{k}": merged_recall(data, frames, order, shares, k) for k in KS}
    single["merged (equal round-robin)"] = {
        f"recall@{k}": merged_recall(data, frames, order, {n: 1.0 for n in order}, k) for k in KS
    }
    tbase = evaluate_baselines(data, ks=KS, tune=True, baselines=base)
    for row in tbase.iter_rows(named=True):
        single[f"{row['model']} {row['params']}"] = {f"recall@{k}": row[f"cand_recall@{k}"] for k in KS}
    print("### Test\n\n" + table(single) + "\n")
    print("fit+generate seconds: " + ", ".join(f"{n} {s:.1f}" for n, s in seconds.items()))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"cowatch": cowatch.__dict__, "order": order, "shares": shares, "test": single}, fh, indent=2)


if __name__ == "__main__":
    main()
