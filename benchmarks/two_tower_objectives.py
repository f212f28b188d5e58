"""Two-tower objectives and negative samplers on MovieLens-100K, against EASE and most-popular
in the same run.

Protocol: per-user temporal split (last 20% of each user's ratings are test). Settings are
chosen on a validation carve of the training period (each user's last 20% of training
ratings); every variant is then retrained on the whole training period and scored on test.
recall@K = |top-K ∩ held-out videos| / |held-out videos|, averaged over users, ranking every
video the user has not rated. Two-tower recall is that of the two-tower generator alone
(validation run: early stopping on its own inner carve of the fit period; test run: retrained on
the whole training period for the epoch count chosen in the validation run).

    .venv/bin/python benchmarks/two_tower_objectives.py [--data DIR] [--only NAME ...] [--set key=json ...]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import polars as pl
import torch

from two_tower_ml100k import KS, load_ml100k, parse_overrides, peers, recall, temporal_split
from vidrec.candidates import TwoTowerGenerator
from vidrec.candidates.two_tower import TwoTowerConfig
from vidrec.data.dataset import Dataset
from vidrec.features import build_user_state

VARIANTS: dict[str, dict[str, object]] = {
    "binary uniform": dict(objective="binary", popularity_negative_share=0.0),
    "binary popularity": dict(objective="binary", popularity_negative_share=1.0),
    "binary mix (old default)": dict(objective="binary"),
    "binary mix + hard": dict(objective="binary", hard_negatives=2),
    "softmax, no log-Q": dict(objective="sampled_softmax", logq_correction="none"),
    "softmax, log-Q streaming": dict(objective="sampled_softmax", logq_correction="streaming"),
    "softmax, log-Q counts": dict(objective="sampled_softmax", logq_correction="counts"),
    "softmax, log-Q + uniform": dict(objective="sampled_softmax", uniform_negatives=256),
    "softmax, log-Q + uniform + hard": dict(objective="sampled_softmax", uniform_negatives=256, hard_negatives=2),
}
EASE_LAMBDAS = (50.0, 200.0, 500.0, 1000.0)


def run_two_tower(
    config: TwoTowerConfig, train: pl.DataFrame, videos: pl.DataFrame, held_out: pl.DataFrame
) -> dict[str, float]:
    """Fit the generator on ``train``, score recall on ``held_out``; times and throughput."""
    now = train["ts"].max() + timedelta(seconds=1)
    ds = Dataset(train, videos, train.select("user_id").unique())
    t0 = time.perf_counter()
    gen = TwoTowerGenerator(config, exact=True, log=lambda _: None).fit(ds, now)
    fit_s = time.perf_counter() - t0
    cands = gen.generate(build_user_state(train, videos), max(KS), now)
    rep = gen.report
    trained = [r for r in rep.epochs if "examples_per_s" in r]
    out = {f"r@{k}": recall(cands, held_out, k) for k in KS}
    out.update(
        fit_s=fit_s,
        epochs=float(rep.best_epoch),
        examples_per_s=sum(r["examples_per_s"] for r in trained) / max(len(trained), 1),
    )
    return out


def ease_and_popular(
    train: pl.DataFrame, held_out: pl.DataFrame, lam: float
) -> dict[str, dict[str, float]]:
    """Recall of most-popular and EASE(lambda) fitted on ``train``, with their fit time."""
    t0 = time.perf_counter()
    cands = peers(train, max(KS), lam)
    secs = time.perf_counter() - t0
    return {name: {**{f"r@{k}": recall(c, held_out, k) for k in KS}, "fit_s": secs} for name, c in cands.items()}


def print_table(title: str, rows: dict[str, dict[str, float]]) -> None:
    print(f"\n{title}", flush=True)
    print(f"{'method':34s}" + "".join(f"  r@{k:<5d}" for k in KS) + "   fit s  epochs  examples/s")
    for name, r in rows.items():
        extra = (
            f"  {r['fit_s']:6.1f}  {r.get('epochs', float('nan')):6.0f}  {r.get('examples_per_s', float('nan')):10,.0f}"
        )
        print(f"{name:34s}" + "".join(f"  {r[f'r@{k}']:.4f} " for k in KS) + extra, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data/ml-100k"))
    ap.add_argument("--only", nargs="*", default=None, help="variant names to run (default: all)")
    ap.add_argument("--set", nargs="*", default=[], help="TwoTowerConfig overrides for every variant, key=json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    events, videos = load_ml100k(args.data)
    train, test = temporal_split(events)
    fit, val = temporal_split(train)
    base = TwoTowerConfig(threads=1, **parse_overrides(args.set))
    names = args.only or list(VARIANTS)
    print(f"train {train.height:,} (fit {fit.height:,} + val {val.height:,}), test {test.height:,} ratings")

    ease_val = {lam: ease_and_popular(fit, val, lam) for lam in EASE_LAMBDAS}
    lam = max(EASE_LAMBDAS, key=lambda x: ease_val[x]["ease"]["r@200"])
    val_rows = {"most popular": ease_val[lam]["most_popular"], f"EASE (lambda {lam:g})": ease_val[lam]["ease"]}
    test_rows = {
        "most popular": (peers_test := ease_and_popular(train, test, lam))["most_popular"],
        f"EASE (lambda {lam:g})": peers_test["ease"],
    }
    for name in names:
        config = replace(base, **VARIANTS[name])
        # Validation: epochs by the generator's own inner carve of the fit period, no refit.
        val_rows[name] = run_two_tower(replace(config, refit_full=False), fit, videos, val)
        # Test: the whole training period for the epoch count chosen above.
        epochs = int(val_rows[name]["epochs"])
        test_rows[name] = run_two_tower(replace(config, val_fraction=0.0, epochs=epochs), train, videos, test)
        print_table(f"{name} (validation, then test)", {"val": val_rows[name], "test": test_rows[name]})
    print_table("VALIDATION (fit on the first 80% of each user's training ratings)", val_rows)
    print_table("TEST (refit on the whole training period)", test_rows)
    best = max(names, key=lambda n: val_rows[n]["r@200"])
    print(f"\nbest two-tower variant on validation recall@200: {best} "
          f"(val {val_rows[best]['r@200']:.4f}, test {test_rows[best]['r@200']:.4f})")


if __name__ == "__main__":
    main()
