"""Re-ranking trade-offs: accuracy against diversity, freshness, creator fairness and calibration.

    .venv/bin/python benchmarks/reranking.py sim --phase val --out /tmp/rr/sim --plan budget ablation   # choose here
    .venv/bin/python benchmarks/reranking.py sim --phase test --out /tmp/rr/sim --plan sweep ablation   # report
    .venv/bin/python benchmarks/reranking.py ml100k --phase test --out /tmp/rr/ml [--defaults '{"diversity_weight": 0.05}']
    .venv/bin/python benchmarks/reranking.py sim --creators 10 --phase test --out /tmp/rr/sim10 --plan ablation  # coarse

The ``sweep`` plan also draws NDCG@10 against intra-list diversity and against the share
of fresh videos (docs/figures/reranking-tradeoffs-DATA-PHASE.png; needs the optional
matplotlib, the tables print without it).

``--phase val`` trains on a carve of the training period (each user's last 20% of training
watches held out) and never reads the test split; ``--phase test`` trains on the whole
training period (per-user temporal 80/20 split, as benchmarks/end_to_end.py) and judges
on the test events. Candidates are generated and scored once; every re-ranking config
runs on the same scored frame. Printed per config: NDCG@10 (test completed = relevant)
and its ratio to re-ranking off, intra-list diversity (1 - mean pairwise cosine of the
two-tower video embeddings; and by category), distinct categories per slate, share of
fresh videos (uploaded < 7 days before now), creator exposure Gini (position weight
1 / log2(rank + 1), over all catalogue creators) and the calibration KL to the user's
history (alpha 0.01).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import torch

from end_to_end import prepare
from stage_frames import stage_frames, training_events
from vidrec.data.dataset import read_dataset
from vidrec.data.splits import SplitConfig, write_split
from vidrec.evaluation.protocol import EvaluationData, evaluate_recommendations
from vidrec.evaluation.system import to_matrix
from vidrec.recommender import Recommender
from vidrec.reranking import DefaultReRanker, ReRankConfig
from vidrec.reranking.objectives import kl_divergence

K = 10
FATIGUE_OFF: dict = {"fatigue_filter_days": 0.0, "fatigue_recover_days": 0.0}
FATIGUE_ANY_DISLIKE: dict = {"fatigue_hide_confidence": 0.0}
"""The fatigue rule before the evidence: one dislike hides the creator for the filter period."""
OFF = ReRankConfig(fresh_boost=0.0, creator_cap=None, diversity="none", calibration_weight=0.0, min_fresh=0,
                   fair_min_share=0.0)
"""Re-ranking off: the hard rules only (creator fatigue is one of them), in final-score order."""


def _one(field: str, values: tuple) -> list[tuple[object, dict]]:
    return [(v, {field: v}) for v in values]


SWEEPS: dict[str, list[tuple[object, dict]]] = {  # each knob moved alone from the defaults: (value, change)
    "mmr": [(w, {"diversity": "mmr", "diversity_weight": w}) for w in (0.05, 0.1, 0.2, 0.3, 0.5)],
    "dpp": [(w, {"diversity": "dpp", "diversity_weight": w}) for w in (0.0, 0.02, 0.05, 0.1, 0.2, 0.3)],
    "fresh_boost": _one("fresh_boost", (0.0, 0.2, 0.5, 1.0, 2.0)),
    "fresh_half_life": _one("fresh_half_life_days", (1.0, 7.0, 28.0)),
    "min_fresh": _one("min_fresh", (0, 1, 2, 3)),
    "fair_min_share": _one("fair_min_share", (0.0, 0.2, 0.5)),
    "calibration": _one("calibration_weight", (0.0, 0.3, 0.8)),
    "creator_cap": _one("creator_cap", (None, 2, 3)),
    "fatigue": [("off", FATIGUE_OFF), ("7d/70d", {"fatigue_filter_days": 7.0, "fatigue_recover_days": 70.0}),
                ("14d/140d", {"fatigue_filter_days": 14.0, "fatigue_recover_days": 140.0}),
                ("14d/140d, any dislike hides", FATIGUE_ANY_DISLIKE),
                ("hide at 0.8 confidence", {"fatigue_hide_confidence": 0.8})],
}
ABLATION: dict[str, dict] = {  # what each default knob costs: drop it from the defaults, or add it alone to off
    "defaults - diversity": {"diversity": "none"},
    "defaults - min_fresh": {"min_fresh": 0},
    "defaults - fresh_boost": {"fresh_boost": 0.0},
    "defaults - creator_cap": {"creator_cap": None},
    "defaults - fatigue": FATIGUE_OFF,
    "defaults, fatigue: any dislike hides (before)": FATIGUE_ANY_DISLIKE,
}
ALONE: dict[str, tuple[str, ...]] = {"diversity": ("diversity", "diversity_weight"), "min_fresh": ("min_fresh",),
                                     "fresh_boost": ("fresh_boost",), "creator_cap": ("creator_cap",)}
COMBINED: dict[str, dict] = {  # candidate defaults, compared on the validation carve (wave 3)
    f"dpp{w} cap{c}": dict(diversity="dpp", diversity_weight=w, creator_cap=c, min_fresh=1, fresh_boost=0.2)
    for w in (0.03, 0.05, 0.07, 0.1) for c in (2, 3, None)
} | {
    "mmr0.1 cap3": dict(diversity="mmr", diversity_weight=0.1, creator_cap=3, min_fresh=1, fresh_boost=0.2),
    "mmr0.2 cap3": dict(diversity="mmr", diversity_weight=0.2, creator_cap=3, min_fresh=1, fresh_boost=0.2),
}
BUDGET: dict[str, dict] = {  # the greedy's pool bounds how far down the list diversity may reach
    f"pool{n} dpp{w} cap{c}": dict(greedy_pool=n, diversity="dpp", diversity_weight=w, creator_cap=c)
    for n, w, c in ((20, 0.05, 3), (20, 0.1, 3), (20, 0.2, 3), (30, 0.05, 3), (30, 0.1, 3), (30, 0.2, 3),
                    (20, 0.1, 2), (20, 0.1, 4), (20, 0.1, None), (15, 0.1, 3), (15, 0.2, 3), (100, 0.02, 3))
} | {"pool20 mmr0.1 cap3": dict(greedy_pool=20, diversity="mmr", diversity_weight=0.1, creator_cap=3),
     "pool20 mmr0.2 cap3": dict(greedy_pool=20, diversity="mmr", diversity_weight=0.2, creator_cap=3)}


@dataclass
class Stage3Inputs:
    """What stage 3 receives for the judged users, cached so every config re-ranks the same frame.

    Kept on disk (``--out``) so later runs re-rank the very same scored candidates even
    when the scoring code changes under them (``--rescore`` recomputes).
    """

    scored: pl.DataFrame
    state: pl.DataFrame
    videos: pl.DataFrame
    events: pl.DataFrame
    now: datetime
    ids: pl.Series  # video ids of the rows of ``matrix``
    matrix: np.ndarray | None  # (videos, d) retrieval two-tower video embeddings

    def video_vectors(self, videos: pl.Series) -> np.ndarray:
        """(n, d) embeddings of ``videos`` (zeros for a video without one)."""
        index = {v: i for i, v in enumerate(self.ids.to_list())}
        rows = videos.replace_strict(index, default=len(index), return_dtype=pl.Int64).to_numpy()
        padded = np.vstack([self.matrix, np.zeros((1, self.matrix.shape[1]), dtype=self.matrix.dtype)])
        return padded[rows]

    @classmethod
    def from_model(cls, rec: Recommender, users: list[str]) -> Stage3Inputs:
        """Candidates and scores exactly as the pipeline hands them to stage 3."""
        state = rec.user_state(users)
        _, scored = stage_frames(rec, users)
        ids, matrix = pl.Series("video_id", rec.catalogue.ids, dtype=pl.String), None
        by_row = rec.pipeline.video_vectors()  # the retrieval two-tower's video embeddings (what the pipeline passes)
        if by_row is not None:
            matrix = np.asarray(by_row(np.arange(len(ids))), dtype=np.float32)
        return cls(scored, state, rec.videos, training_events(rec), rec.now, ids, matrix)

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        for name in ("scored", "state", "videos", "events"):
            getattr(self, name).write_parquet(path / f"{name}.parquet")
        self.ids.to_frame("video_id").write_parquet(path / "ids.parquet")
        if self.matrix is not None:
            np.save(path / "vectors.npy", self.matrix)
        (path / "now.json").write_text(json.dumps({"now": self.now.isoformat()}))

    @classmethod
    def load(cls, path: Path) -> Stage3Inputs:
        frames = {name: pl.read_parquet(path / f"{name}.parquet") for name in ("scored", "state", "videos", "events")}
        now = datetime.fromisoformat(json.loads((path / "now.json").read_text())["now"])
        matrix = np.load(path / "vectors.npy", allow_pickle=False) if (path / "vectors.npy").exists() else None
        return cls(**frames, now=now, ids=pl.read_parquet(path / "ids.parquet")["video_id"], matrix=matrix)


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values (0 = equal exposure)."""
    v = np.sort(values)
    n = len(v)
    if n == 0 or v.sum() == 0:
        return 0.0
    return float((2 * np.arange(1, n + 1) - n - 1) @ v / (n * v.sum()))


def slate_metrics(out: pl.DataFrame, inputs: Stage3Inputs) -> dict:
    """Diversity, coverage, freshness, exposure Gini and calibration of the slates."""
    state, videos, now = inputs.state, inputs.videos, inputs.now
    info = videos.select("video_id", "creator_id", "category", "uploaded_at")
    slates = out.join(info, on="video_id", how="left")
    vec = inputs.video_vectors(slates["video_id"]).astype(np.float64)
    vec /= np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12)
    ild, ild_cat = [], []
    users = slates["user_id"].to_numpy()
    cats = slates["category"].to_numpy()
    bounds = np.flatnonzero(np.r_[True, users[1:] != users[:-1], True])
    for a, b in zip(bounds[:-1], bounds[1:]):
        n = b - a
        if n < 2:
            continue
        sim = vec[a:b] @ vec[a:b].T
        ild.append(1 - (sim.sum() - np.trace(sim)) / (n * (n - 1)))
        same = cats[a:b][:, None] == cats[a:b][None, :]
        ild_cat.append(1 - (same.sum() - n) / (n * (n - 1)))
    weight = 1 / np.log2(slates["rank"].to_numpy() + 1)
    exposure = slates.with_columns(w=pl.Series(weight)).group_by("creator_id").agg(pl.col("w").sum())
    creators = videos.select("creator_id").unique().join(exposure, on="creator_id", how="left")
    fresh = slates["uploaded_at"] > (now - timedelta(days=7))
    return {
        "ild_emb": float(np.mean(ild)),
        "ild_cat": float(np.mean(ild_cat)),
        "cats_per_slate": slates.group_by("user_id").agg(pl.col("category").n_unique())["category"].mean(),
        "fresh_share": float(fresh.mean()),
        "creator_gini": gini(creators["w"].fill_null(0.0).to_numpy()),
        "calib_kl": calibration_kl(slates, state, videos),
    }


def calibration_kl(slates: pl.DataFrame, state: pl.DataFrame, videos: pl.DataFrame) -> float:
    """Mean KL(p_history || 0.99 q_slate + 0.01 p_history) over users with a history."""
    cats = videos.select("video_id", "category")
    hist = state.select("user_id", pl.col("recent_completed").alias("video_id")).explode("video_id")
    hist = hist.join(cats, on="video_id", how="inner").group_by("user_id", "category").len()
    slate = slates.group_by("user_id", "category").len()
    both = hist.join(slate, on=["user_id", "category"], how="full", coalesce=True, suffix="_s").fill_null(0)
    both = both.filter(pl.col("user_id").is_in(hist["user_id"].implode()))
    both = both.with_columns(
        p=pl.col("len") / pl.col("len").sum().over("user_id"),
        q=pl.col("len_s") / pl.col("len_s").sum().over("user_id"),
    ).fill_nan(0.0)
    kls = [kl_divergence(g["p"].to_numpy(), g["q"].to_numpy(), 0.01) for g in both.partition_by("user_id")]
    return float(np.mean(kls))


Plan = list[tuple[str, str | None, object, ReRankConfig]]
"""(label, sweep knob or None, the knob's value, config) per row."""


def configs(defaults: ReRankConfig, plan: str) -> Plan:
    """Off, the defaults, and the plan's rows: knob sweeps, the ablation, or candidate defaults."""
    base: Plan = [("off", None, None, OFF), ("defaults", None, None, defaults),
                  ("no slate greedy", None, None, replace(defaults, diversity="none", calibration_weight=0.0,
                                                          min_fresh=0, fair_min_share=0.0))]
    if plan == "quick":
        return base
    if plan in ("combined", "budget"):
        grid = COMBINED if plan == "combined" else BUDGET
        return base + [(name, None, None, replace(defaults, **kw)) for name, kw in grid.items()]
    if plan == "ablation":
        rows = [(name, None, None, replace(defaults, **kw)) for name, kw in ABLATION.items()]
        for name, names in ALONE.items():
            rows.append((f"off + {name}", None, None, replace(OFF, **{f: getattr(defaults, f) for f in names})))
        rows.append(("off - fatigue (score order)", None, None, replace(OFF, **FATIGUE_OFF)))
        return base + rows
    rows = []
    for knob, values in SWEEPS.items():
        for value, change in values:
            label = f"{knob}: " + ", ".join(f"{k}={v}" for k, v in change.items())
            rows.append((label, knob, value, replace(defaults, **change)))
    return base + rows


def plot_tradeoffs(table: pl.DataFrame, plan: Plan, dataset: str, phase: str, path: Path | None) -> None:
    """Write the accuracy vs diversity / freshness figure of a sweep (skipped without matplotlib)."""
    import plots

    if not plots.available():
        print("matplotlib is not installed (pip install vidrec[plots]); figure skipped")
        return
    points = [plots.Point(label, knob, value, row["ndcg@10"], row["ild_emb"], row["fresh_share"])
              for (label, knob, value, _), row in zip(plan, table.iter_rows(named=True))]
    name = {"sim": "simulated platform", "ml100k": "MovieLens 100K"}[dataset]
    out = path or plots.FIGURES / f"reranking-tradeoffs-{dataset}-{phase}.png"
    plots.tradeoff_curves(points, f"Re-ranking trade-offs, {name} ({phase} split, k={K})", out)
    print(f"figure: {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=["ml100k", "sim"])
    parser.add_argument("--phase", choices=["val", "test"], default="test")
    parser.add_argument("--ml100k", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/ml-100k")
    parser.add_argument("--out", type=Path, default=None, help="keep the data and model here")
    parser.add_argument("--creators", type=int, default=None,
                        help="sim only: creators on the platform (default videos / 20; few = coarse creators)")
    parser.add_argument("--model", type=Path, default=None, help="a saved model trained on this phase's training data")
    parser.add_argument("--plan", nargs="+", choices=["sweep", "quick", "combined", "budget", "ablation"], default=["sweep"],
                        help="one or more of: each knob swept from the defaults (and the trade-off figure), off and "
                             "defaults only, candidate defaults (two grids), what each default knob costs")
    parser.add_argument("--defaults", type=str, default="{}",
                        help='JSON overrides of ReRankConfig() used as "defaults" (e.g. \'{"diversity_weight": 0.05}\')')
    parser.add_argument("--figure", type=Path, default=None,
                        help="where the sweep's figure goes (default docs/figures/reranking-tradeoffs-DATA-PHASE.png)")
    parser.add_argument("--rescore", action="store_true",
                        help="recompute the cached scored candidates (stage3-PHASE/ under --out) from the model")
    parser.add_argument("--no-plot", action="store_true", help="print the tables only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = args.out or Path(tempfile.mkdtemp(prefix=f"vidrec-rerank-{args.dataset}-"))
    split = root / "split"
    if not (split / "split.json").exists():
        write_split(read_dataset(prepare(args.dataset, root, args.ml100k, args.creators)), split, SplitConfig())
    if args.phase == "val":  # a carve of the training period only: the test split is never read
        if not (root / "val" / "split.json").exists():
            write_split(read_dataset(split / "train"), root / "val", SplitConfig())
        split = root / "val"
    data = EvaluationData.from_split(split)
    users = data.users.ids.gather(data.judged_users()).to_list()
    cache = root / f"stage3-{args.phase}"
    t0 = time.perf_counter()
    if (cache / "now.json").exists() and not args.rescore:
        inputs = Stage3Inputs.load(cache)
    else:
        if args.model is not None:
            rec = Recommender.load(args.model)
        else:
            rec = Recommender.train(read_dataset(split / "train"), log=lambda m: None)
            rec.save(root / f"model-{args.phase}")
        inputs = Stage3Inputs.from_model(rec, users)
        inputs.save(cache)
    print(f"scored candidates ready in {time.perf_counter() - t0:.0f} s ({cache})")
    defaults = replace(ReRankConfig(), **json.loads(args.defaults))
    print(f"defaults: {json.dumps(defaults.to_dict(), sort_keys=True)}")
    for name in args.plan:
        plan = configs(defaults, name)
        table = run_plan(plan, inputs, data, len(users))
        with pl.Config(tbl_rows=100, tbl_cols=20, tbl_width_chars=250, float_precision=4, tbl_formatting="MARKDOWN",
                       tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True, fmt_str_lengths=60):
            print(f"\nre-ranking on {args.dataset}, phase {args.phase}, plan {name}, {len(users)} judged users, k={K}")
            print(table, flush=True)
        table.write_csv(root / f"rerank-{args.dataset}-{args.phase}-{name}.csv")
        if name == "sweep" and not args.no_plot:
            plot_tradeoffs(table, plan, args.dataset, args.phase, args.figure)


def run_plan(plan: Plan, inputs: Stage3Inputs, data: EvaluationData, n_users: int) -> pl.DataFrame:
    """Re-rank the same scored frame with every config of ``plan``; one metrics row each."""
    vectors = inputs.video_vectors if inputs.matrix is not None else None
    rows = []
    for label, _, _, cfg in plan:
        t1 = time.perf_counter()
        out = DefaultReRanker(cfg).rerank(inputs.scored, inputs.state, inputs.videos, inputs.now, K,
                                          events=inputs.events, video_vectors=vectors)
        seconds = time.perf_counter() - t1
        ndcg = evaluate_recommendations(data, to_matrix(out, data, K), label, ks=(K,))["final_ndcg@10"].item()
        rows.append({"config": label, "ndcg@10": ndcg, **slate_metrics(out, inputs), "ms_per_user": seconds / n_users * 1e3})
    table = pl.DataFrame(rows)
    off = table["ndcg@10"][0]
    return table.with_columns((pl.col("ndcg@10") / off).alias("ndcg_vs_off")).select(
        "config", "ndcg@10", "ndcg_vs_off", pl.exclude("config", "ndcg@10", "ndcg_vs_off"))

if __name__ == "__main__":
    main()
