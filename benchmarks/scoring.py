"""Scoring-stage figures: the ranker alone per head, end to end, the oracle ratio, latency.

    .venv/bin/python benchmarks/scoring.py ranker ml100k --root /tmp/sc   # held-out AUC / log loss / ECE
    .venv/bin/python benchmarks/scoring.py e2e ml100k --root /tmp/sc --split val   # NDCG@10 per variant
    .venv/bin/python benchmarks/scoring.py e2e sim --root /tmp/sc --split test      # + oracle ratio
    .venv/bin/python benchmarks/scoring.py latency ml100k --root /tmp/sc   # request path and offline frame score

``--root`` caches the data, the split, the validation carve (each user's last 20% of
training watches held out, as the test split holds out the last 20% of all watches) and
one Recommender per split trained with the default config. Ranker variants are fitted on
that Recommender's feature two-tower and ranker cut and swapped in, so every variant
sees the same candidates. Choose settings on ``--split val``; run ``test`` once.

Ranker alone: the ranker's training examples (same construction as ``fit``), the latest
10% by time held out; every model trains and calibrates (isotonic, on its own latest
``val_fraction``) on the rest, on the same standardised features and labels.

Latency: 500 candidates of one user, each variant timed on the request path serving runs
since the serving rebuild (``score_request``: features from the hydrated request and the
live counts) beside the offline frame ``score`` (as-of joins over the training tables),
which is what serving ran when the earlier latency figures were taken.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import polars as pl
import torch

from end_to_end import prepare
from stage_frames import training_events
from vidrec.candidates.two_tower.source import TwoTowerEmbeddings
from vidrec.data.dataset import Dataset, read_dataset, write_dataset
from vidrec.data.simulator import GroundTruth
from vidrec.data.splits import SplitConfig, read_split, write_split
from vidrec.evaluation.oracle import oracle_ratio
from vidrec.evaluation.protocol import EvaluationData, temporal_holdout
from vidrec.evaluation.system import evaluate_all, evaluate_stages
from vidrec.recommender import Recommender
from vidrec.scoring import LABELS, MultiTaskRanker, RankerConfig, ValueModel
from vidrec.scoring.baselines import LightGBMBaseline, LogisticBaseline
from vidrec.scoring.calibration import Calibrator, expected_calibration_error, log_loss, roc_auc
from vidrec.scoring.features import Standardizer
from vidrec.scoring.train import time_split

ML100K = Path(__file__).resolve().parents[2] / "shared/data/ml-100k"
HEADS = dict(zip(LABELS, ("p_complete", "p_interact", "p_like", "p_dislike")))


def split_dir(root: Path, dataset: str, which: str) -> Path:
    """The split directory (``test``: the per-user temporal split; ``val``: its training carve)."""
    base = root / dataset
    if not (base / "split" / "split.json").exists():
        write_split(read_dataset(prepare(dataset, base, ML100K)), base / "split", SplitConfig())
    if which == "test":
        return base / "split"
    if not (base / "val" / "test" / "events.parquet").exists():
        train, _ = read_split(base / "split")
        fit_ev, hold_ev = temporal_holdout(train.events, 0.2)
        write_dataset(Dataset(fit_ev, train.videos, train.users), base / "val" / "train")
        (base / "val" / "test").mkdir(parents=True, exist_ok=True)
        hold_ev.write_parquet(base / "val" / "test" / "events.parquet")
    return base / "val"


def recommender(root: Path, dataset: str, which: str) -> tuple[Recommender, Path]:
    """The default-config Recommender of the split (trained once, then loaded)."""
    split = split_dir(root, dataset, which)
    model = root / dataset / f"model_{which}"
    if (model / "LATEST").exists():
        try:
            return Recommender.load(model), split
        except Exception as err:  # noqa: BLE001 - a stale cache is retrained
            print(f"retraining ({err})")
    train, _ = read_split(split)
    start = time.perf_counter()
    rec = Recommender.train(train, log=lambda m: None)
    print(f"Recommender.train {time.perf_counter() - start:.0f} s; timings {json.dumps(rec.pipeline.timings)}")
    rec.save(model)
    return rec, split


def variant(base: RankerConfig, overrides: dict) -> RankerConfig:
    """``base`` with JSON overrides (``examples``, ``value`` and ``features`` as nested dicts)."""
    ov = dict(overrides)
    ex = replace(base.examples, **ov.pop("examples", {}))
    value = replace(base.value, **ov.pop("value", {}))
    features = replace(base.features, **ov.pop("features", {}))
    for name in ("hidden", "expert_hidden", "tower_hidden", "loss_weights"):
        if name in ov:
            ov[name] = tuple(ov[name])
    return replace(base, examples=ex, value=value, features=features, **ov)


MULTI = [1.0, 0.5, 0.5, 0.5]
ONE = {"ensemble": 1}
VARIANTS = {
    "mmoe": {"architecture": "mmoe", "loss_weights": MULTI, **ONE},
    "shared_bottom": {"architecture": "shared_bottom", "loss_weights": MULTI, **ONE},
    "mlp multi-task": {"architecture": "mlp", "loss_weights": MULTI, **ONE},
    "mlp single head": {"architecture": "mlp", "loss_weights": [1, 0, 0, 0], **ONE},
    "mlp single head, 3 averaged (default)": {"architecture": "mlp", "loss_weights": [1, 0, 0, 0], "ensemble": 3},
}
"""Rankers compared, as overrides of the default config (one network each unless said)."""


def head_metrics(name: str, p: dict[str, np.ndarray], y: np.ndarray) -> list[dict]:
    """AUC, log loss and ECE of each head the model reports (a head without a network reports nothing)."""
    rows = []
    for j, column in enumerate(HEADS.values()):
        if column not in p:
            continue
        yt = y[:, j]
        rows.append({"model": name, "head": column, "auc": roc_auc(p[column], yt), "log_loss": log_loss(p[column], yt),
                     "ece": expected_calibration_error(p[column], yt), "positive_rate": float(yt.mean())})  # fmt: skip
    return rows


def calibrated(raw_fit: np.ndarray, y_fit: np.ndarray, raw_test: np.ndarray) -> dict[str, np.ndarray]:
    """Isotonic per head, fitted on the validation slice's raw outputs, applied to the test rows."""
    return {col: Calibrator("isotonic").fit(raw_fit[:, j], y_fit[:, j])(raw_test[:, j]) for j, col in enumerate(HEADS.values())}


def cmd_ranker(root: Path, dataset: str, which: str) -> None:
    rec, _ = recommender(root, dataset, which)
    base = rec.pipeline.ranker.config
    emb = TwoTowerEmbeddings(rec.pipeline.feature_model, rec.catalogue) if rec.pipeline.feature_model else None
    probe = MultiTaskRanker(base)
    with torch.no_grad():
        data, _ = probe.prepare(Dataset(training_events(rec), rec.videos, rec.users), emb)
    hold = time_split(data.ts, 0.1)
    x, y, ts, xt, yt = data.x[:hold], data.y[:hold], data.ts[:hold], data.x[hold:], data.y[hold:]
    print(f"{dataset}/{which}: {len(data.y)} examples ({hold} to fit, {len(yt)} held out); "
          f"positive rates {dict(zip(LABELS, data.y.mean(0).round(4).tolist()))}")  # fmt: skip
    rows, fit_s, curves = [], {}, []
    for name, ov in VARIANTS.items():
        start = time.perf_counter()
        r = MultiTaskRanker(variant(base, ov)).fit_arrays(x, y, ts)
        fit_s[name] = time.perf_counter() - start
        rows += head_metrics(name, r.predict_matrix(xt), yt)
        curves += reliability_series(name, r, xt, yt)
    cut = time_split(ts, base.val_fraction)
    scaler = Standardizer().fit(x[:cut])
    xs, xts = scaler(x), scaler(xt)
    start = time.perf_counter()
    lr = LogisticBaseline().fit(xs[:cut], y[:cut])
    fit_s["logistic regression"] = time.perf_counter() - start
    rows += head_metrics("logistic regression", calibrated(lr.predict_proba(xs[cut:]), y[cut:], lr.predict_proba(xts)), yt)
    start = time.perf_counter()
    gbm = LightGBMBaseline().fit(xs[:cut], y[:cut], xs[cut:], y[cut:])
    fit_s["LightGBM"] = time.perf_counter() - start
    rows += head_metrics("LightGBM", calibrated(gbm.predict_proba(xs[cut:]), y[cut:], gbm.predict_proba(xts)), yt)
    table = pl.DataFrame(rows)
    with pl.Config(tbl_rows=40, tbl_width_chars=160, float_precision=4):
        print(table.sort("head", "model"))
    print("fit seconds: " + json.dumps({k: round(v, 1) for k, v in fit_s.items()}))
    table.write_csv(root / dataset / f"ranker_{which}.csv")
    plot_reliability(curves, dataset, which)


def cmd_e2e(root: Path, dataset: str, which: str, variants: dict, baselines: bool) -> None:
    rec, split = recommender(root, dataset, which)
    data = EvaluationData.from_split(split)
    base = rec.pipeline.ranker.config
    emb = TwoTowerEmbeddings(rec.pipeline.feature_model, rec.catalogue) if rec.pipeline.feature_model else None
    train = Dataset(training_events(rec), rec.videos, rec.users)
    truth = GroundTruth.load(root / dataset / "platform") if dataset == "sim" else None
    users = data.users.ids.to_list()
    if baselines:
        table, _ = evaluate_all(rec, data)
        with pl.Config(tbl_rows=20, tbl_width_chars=160, float_precision=4):
            print(table.select("model", "cand_recall@200", "final_ndcg@10"))
    fitted: dict[str, MultiTaskRanker] = {}
    for name, ov in variants.items():
        cfg = variant(base, ov)
        key = json.dumps(replace(cfg, value=ValueModel()).to_dict(), sort_keys=True)  # value weights need no refit
        if key not in fitted:
            start = time.perf_counter()
            fitted[key] = MultiTaskRanker(cfg).fit(train, emb)
            print(f"  fit {name}: {time.perf_counter() - start:.0f} s", flush=True)
        rec.pipeline.ranker = _valued(fitted[key], cfg.value)
        rec.pipeline.bind(rec.catalogue, rec.live)  # the swapped-in ranker scores requests over the live catalogue
        table, _ = evaluate_stages(rec, data)
        ndcg = dict(zip(table["model"], table["final_ndcg@10"]))
        line = f"{dataset}/{which} {name:34s} " + "  ".join(f"{k} {v:.4f}" for k, v in ndcg.items())
        if truth is not None:
            ratio = oracle_ratio(truth, rec.recommend_batch(users, k=10), rec.user_state(users), rec.now)
            line += f"  oracle ratio {ratio['ratio_of_totals']:.3f} (mean {ratio['mean_ratio']:.3f})"
        rep = fitted[key].report
        print(line + f"  [val auc {rep['val_auc']:.3f} ece {rep['val_ece']:.3f}]", flush=True)


def _valued(ranker: MultiTaskRanker, value: ValueModel) -> MultiTaskRanker:
    """A shallow copy of ``ranker`` scoring with ``value`` (the fitted model is shared)."""
    out = MultiTaskRanker.__new__(MultiTaskRanker)
    out.__dict__.update(ranker.__dict__)
    return out.with_value(value)


def _latency_ms(fn: Callable[[], object], runs: int = 220, warmup: int = 20) -> tuple[float, float]:
    """(p50, p99) milliseconds of ``fn()`` over ``runs`` calls after ``warmup``."""
    times = []
    for _ in range(warmup + runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    ms = np.array(times[warmup:]) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def cmd_latency(root: Path, dataset: str, which: str, variants: dict) -> None:
    """Each variant's latency for 500 candidates of one user: the request path serving runs
    (``score_request`` on the hydrated request, the ranker bound to the live catalogue), and the
    offline frame path (``score``: point-in-time features over the training tables; the serving
    path before the serving rebuild, kept for comparison with earlier figures)."""
    rec, _ = recommender(root, dataset, which)
    base = rec.pipeline.ranker.config
    emb = TwoTowerEmbeddings(rec.pipeline.feature_model, rec.catalogue) if rec.pipeline.feature_model else None
    events, videos = training_events(rec), rec.videos
    train = Dataset(events, videos, rec.users)
    user = events["user_id"].mode()[0]
    state = rec.user_state([user])
    cands = videos.select("video_id").head(500).with_columns(user_id=pl.lit(user)).select("user_id", "video_id")
    request, rows = rec.request(user), rec.catalogue.rows(cands["video_id"].to_list())
    for name, ov in variants.items():
        r = MultiTaskRanker(variant(base, ov)).fit(train, emb).bind(rec.catalogue, rec.live)
        served = _latency_ms(partial(r.score_request, request, rows))
        frame = _latency_ms(partial(r.score, cands, state, videos, rec.now))
        print(f"{dataset} {name:24s} {len(rows)} candidates, one user: request path p50 {served[0]:.1f} ms, "
              f"p99 {served[1]:.1f} ms; offline frame score p50 {frame[0]:.1f} ms, p99 {frame[1]:.1f} ms")


PLOTTED = ("mmoe", "mlp single head, 3 averaged (default)")
"""The models drawn in the reliability diagram (every model's ECE is in the table)."""


def reliability_series(name: str, ranker: MultiTaskRanker, xt: np.ndarray, yt: np.ndarray) -> list:
    """Raw and calibrated probabilities of each head ``ranker`` really has, for the reliability diagram."""
    import plots

    if name not in PLOTTED:
        return []
    with torch.no_grad():
        raw = ranker.model.predict_proba(torch.from_numpy(ranker.scaler(xt))).numpy()  # (n, tasks)
    cal = ranker.predict_matrix(xt)
    tasks = list(ranker.config.tasks)  # the labels with a head, in the model's output order
    out = []
    for task in tasks:
        head, y = HEADS[task], yt[:, LABELS.index(task)]
        for stage, p in (("raw", raw[:, tasks.index(task)].astype(np.float64)), ("calibrated", cal[head])):
            out.append(plots.Reliability(head, f"{name}, {stage}", p, y, expected_calibration_error(p, y)))
    return out


def plot_reliability(curves: list, dataset: str, which: str) -> None:
    """Write docs/figures/scoring-reliability-DATA-SPLIT.png (skipped without matplotlib)."""
    import plots

    if not plots.available():
        print("matplotlib is not installed (pip install vidrec[plots]); reliability diagram skipped")
        return
    name = {"sim": "simulated platform", "ml100k": "MovieLens 100K"}[dataset]
    path = plots.reliability_diagram(curves, f"Reliability on held-out examples, {name} ({which} split; "
                                     "ECE: 15 equal-width bins)", plots.FIGURES / f"scoring-reliability-{dataset}-{which}.png")
    print(f"figure: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["ranker", "e2e", "latency"])
    parser.add_argument("dataset", choices=["ml100k", "sim"])
    parser.add_argument("--root", type=Path, default=Path("/tmp/vidrec-scoring"))
    parser.add_argument("--split", choices=["val", "test"], default="val")
    parser.add_argument("--variants", type=str, default=None, help='JSON {name: RankerConfig overrides}')
    parser.add_argument("--baselines", action="store_true", help="also print the tuned baselines (e2e)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    variants = json.loads(args.variants) if args.variants else VARIANTS
    if args.command == "ranker":
        cmd_ranker(args.root, args.dataset, args.split)
    elif args.command == "e2e":
        cmd_e2e(args.root, args.dataset, args.split, variants, args.baselines)
    else:
        cmd_latency(args.root, args.dataset, args.split, variants)


if __name__ == "__main__":
    main()
