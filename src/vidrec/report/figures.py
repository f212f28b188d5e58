"""The numbers behind the report's figures, computed from one evaluation pass (no plotting here).

Every function reads what :func:`vidrec.evaluation.system.evaluate_all` already produced (the
table, the per-stage pass, the judged index matrices) or the model itself; none re-implements a
metric the evaluation defines.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np
import polars as pl
from scipy.sparse import diags

from vidrec.data.simulator import GroundTruth
from vidrec.errors import DataError
from vidrec.evaluation.metrics import NO_ITEM, hits_matrix, relevant_counts
from vidrec.evaluation.oracle import oracle_ratio
from vidrec.evaluation.protocol import EvaluationData, evaluate_recommendations
from vidrec.evaluation.system import STAGE_NAMES, StageRun
from vidrec.recommender import Recommender
from vidrec.reranking import DefaultReRanker, ReRankConfig
from vidrec.scoring.calibration import expected_calibration_error
from vidrec.scoring.examples import ExampleConfig, build_examples

log = logging.getLogger(__name__)

US_PER_DAY = 86_400 * 1_000_000


@dataclass(frozen=True)
class Bars:
    """Grouped bars: ``series[name][i]`` is the bar of ``name`` in group ``groups[i]``."""

    groups: list[str]
    series: dict[str, list[float]]


@dataclass(frozen=True)
class Lines:
    """Curves: ``series[name] = (x, y)``; ``log_x`` when x spans orders of magnitude."""

    series: dict[str, tuple[np.ndarray, np.ndarray]]
    log_x: bool = False
    steps: bool = False  # draw as empirical distribution functions (steps), not joined points


@dataclass(frozen=True)
class Reliability:
    """Equal-width bins of predicted probability: mean predicted, observed rate and count per bin."""

    predicted: np.ndarray  # (bins,) NaN where a bin is empty
    observed: np.ndarray  # (bins,)
    counts: np.ndarray  # (bins,) examples per bin
    bins: int
    ece: float  # over the same bins
    positive_rate: float


@dataclass(frozen=True)
class TradeoffPoint:
    """One re-ranking config judged on the same scored candidates."""

    sweep: str | None  # the knob moved from the model's settings; None for "off" and "model's settings"
    label: str
    ndcg: float
    diversity: float  # intra-list diversity, 1 - mean pairwise cosine (0 identical, 1 orthogonal)
    fresh: float  # share of slots holding a fresh upload


@dataclass(frozen=True)
class Tradeoffs:
    """Every re-ranking config's point, and what they were measured on."""

    points: list[TradeoffPoint]
    users: int
    diversity_by: str  # what the similarity is measured on
    fresh_days: float  # a video uploaded less than this long before the clock is fresh


# ---- each stage beside the baselines ----------------------------------------------------------


def final_metric_bars(table: pl.DataFrame, final_k: int = 10) -> Bars:
    """NDCG, recall and precision of every model's final list (the evaluation table's columns)."""
    metrics = [f"final_{m}@{final_k}" for m in ("ndcg", "recall", "precision")]
    groups = [m.removeprefix("final_") for m in metrics]
    series = {row["model"]: [float(row[m] or 0.0) for m in metrics] for row in table.iter_rows(named=True)}
    return Bars(groups, series)


def candidate_recall_lines(table: pl.DataFrame) -> Lines:
    """Recall@k of every model that ranks deep enough to have it (vidrec's candidates and the baselines)."""
    columns = sorted((c for c in table.columns if c.startswith("cand_recall@")), key=lambda c: int(c.split("@")[1]))
    ks = np.array([int(c.split("@")[1]) for c in columns])
    series = {}
    for row in table.iter_rows(named=True):
        values = np.array([np.nan if row[c] is None else row[c] for c in columns], dtype=np.float64)
        if np.isfinite(values).sum() > 1:  # one point says nothing about depth
            series[row["model"]] = (ks, values)
    return Lines(series, log_x=True)


# ---- the funnel -------------------------------------------------------------------------------


def candidate_matrix(rec: Recommender, run: StageRun, data: EvaluationData) -> np.ndarray:
    """Every judged user's whole merged candidate list as an (n_users, longest list) index matrix (-1 pads)."""
    lengths = np.array([len(r.candidates) for r in run.results], dtype=np.int64)
    out = np.full((len(data.users), max(int(lengths.max(initial=0)), 1)), NO_ITEM, dtype=np.int64)
    if not lengths.sum():
        return out
    to_data = data.videos.to_index(rec.catalogue.ids)  # catalogue row -> evaluation column
    users = np.repeat(data.users.to_index([r.request.user_id for r in run.results]), lengths)
    slots = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)  # position in its list
    out[users, slots] = to_data[np.concatenate([r.candidates.rows for r in run.results])]
    return out


def funnel(candidates: np.ndarray, recs: Mapping[str, np.ndarray], data: EvaluationData, k: int = 10) -> Bars:
    """Share of the held-out videos found in the whole candidate list, the scored top k and the final k.

    ``recs`` are the evaluation's judged lists (:func:`evaluate_stages`'s ``recommendations``).
    """
    stages = {
        f"candidates (all, up to {candidates.shape[1]})": candidates,
        f"scored top {k}": recs[STAGE_NAMES["scored"]][:, :k],
        f"final {k}": recs[STAGE_NAMES["final"]][:, :k],
    }
    kinds = {"interacted in test": data.candidate_relevance, "completed in test": data.final_relevance}
    series = {}
    for kind, relevance in kinds.items():
        total = max(int(relevant_counts(relevance).sum()), 1)
        series[kind] = [float(hits_matrix(m, relevance).sum()) / total for m in stages.values()]
    return Bars(list(stages), series)


# ---- calibration ------------------------------------------------------------------------------


def reliability(
    rec: Recommender, data: EvaluationData, test_events: pl.DataFrame, bins: int = 15,
    max_examples: int = 200_000, batch: int = 256, seed: int = 0,
) -> Reliability:  # fmt: skip
    """p_complete against observed completion on held-out examples built as the ranker's training ones.

    The examples are the test period's (shown, did they complete?) pairs, built by the ranker's own
    :func:`build_examples` (no retrieved hard negatives: they need the two-tower at each time); each
    is scored as the model serves it at the end of training, through the request path.
    """
    config = getattr(rec.pipeline.ranker.config, "examples", ExampleConfig())
    examples = build_examples(test_events, rec.videos, replace(config, hard_negatives_per_watch=0))
    examples = examples.filter(pl.col("user_id").is_in(data.users.ids.implode()))
    examples = examples.with_columns(row=pl.Series(rec.catalogue.rows_of(examples["video_id"]))).filter(
        pl.col("row") >= 0
    )
    if examples.height > max_examples:
        examples = examples.sample(max_examples, seed=seed)
    examples = examples.sort("user_id", maintain_order=True)
    users, starts = np.unique(examples["user_id"].to_numpy(), return_index=True)
    bounds = [*starts.tolist(), examples.height]
    rows, p = examples["row"].to_numpy(), []
    for lo in range(0, len(users), batch):  # a loop over batches of users, each one network pass
        hi = min(lo + batch, len(users))
        requests = rec.requests([(str(u), 10) for u in users[lo:hi]])
        parts = [rows[bounds[i] : bounds[i + 1]] for i in range(lo, hi)]
        p += [s["p_complete"] for s in rec.pipeline.ranker.score_requests(requests, parts)]
    predicted = np.concatenate(p) if p else np.zeros(0)
    labels = examples["label"].to_numpy().astype(np.float64)
    return reliability_bins(predicted, labels, bins)


def reliability_bins(p: np.ndarray, y: np.ndarray, bins: int = 15) -> Reliability:
    """Equal-width bins over [0, 1], the binning :func:`expected_calibration_error` uses."""
    idx = np.minimum((p * bins).astype(np.int64), bins - 1)
    counts = np.bincount(idx, minlength=bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        predicted = np.bincount(idx, weights=p, minlength=bins) / counts
        observed = np.bincount(idx, weights=y, minlength=bins) / counts
    rate = float(y.mean()) if y.size else float("nan")
    return Reliability(predicted, observed, counts, bins, expected_calibration_error(p, y, bins), rate)


# ---- re-ranking trade-offs --------------------------------------------------------------------


def tradeoff_configs(base: ReRankConfig) -> list[tuple[str | None, str, ReRankConfig]]:
    """Off, the model's settings, and each main knob moved alone from the model's settings."""
    off = replace(base, fresh_boost=0.0, min_fresh=0, diversity="none", creator_cap=None, calibration_weight=0.0,
                  fair_min_share=0.0)  # fmt: skip
    rows: list[tuple[str | None, str, ReRankConfig]] = [(None, "off", off), (None, "model's settings", base)]
    for w in (0.0, 0.05, 0.1, 0.2, 0.4):
        rows.append(("DPP diversity weight", f"{w:g}", replace(base, diversity="dpp" if w else "none",
                                                                 diversity_weight=w)))  # fmt: skip
    for b in (0.0, 0.5, 1.0, 2.0):
        rows.append(("fresh boost", f"{b:g}", replace(base, fresh_boost=b)))
    for n in (0, 2, 3):
        rows.append(("fresh minimum", f"{n}", replace(base, min_fresh=n)))
    return rows


def tradeoffs(rec: Recommender, run: StageRun, data: EvaluationData, max_users: int = 1000, seed: int = 0) -> Tradeoffs:
    """Re-rank the same scored candidates under each of :func:`tradeoff_configs`, judged as the final stage."""
    results = run.results
    if len(results) > max_users:  # every config re-ranks the same users
        pick = np.sort(np.random.default_rng(seed).choice(len(results), max_users, replace=False))
        results = [results[i] for i in pick.tolist()]
    requests = [r.request for r in results]
    cand_rows = [r.candidates.rows for r in results]
    scores = [r.scored["score"] if r.scored is not None else np.zeros(len(r.candidates)) for r in results]
    vectors = rec.pipeline.video_vectors()
    base = getattr(rec.pipeline.reranker, "config", rec.pipeline.config.rerank)
    user_index = data.users.to_index([r.user_id for r in requests])
    judged = only_users(data, user_index)  # the users left out are not judged (they would count as misses)
    to_data = data.videos.to_index(rec.catalogue.ids)  # catalogue row -> evaluation column
    k = run.final_k
    points = []
    for sweep, label, config in tradeoff_configs(base):
        reranker = DefaultReRanker(config).bind(rec.catalogue, rec.live, vectors)
        slates = reranker.rerank_requests(requests, cand_rows, scores, [k] * len(requests))
        rows = np.full((len(requests), k), NO_ITEM, dtype=np.int64)  # (users, k) catalogue rows
        for i, (slate, cands) in enumerate(zip(slates, cand_rows)):
            rows[i, : len(slate.order)] = cands[slate.order[:k]]
        matrix = np.full((len(data.users), k), NO_ITEM, dtype=np.int64)
        matrix[user_index] = np.where(rows >= 0, to_data[np.maximum(rows, 0)], NO_ITEM)
        ndcg = evaluate_recommendations(judged, matrix, label, ks=(k,), final_k=k)[f"final_ndcg@{k}"].item()
        fresh = fresh_share(rows, rec.catalogue.uploaded_us, requests[0].now_us if requests else 0,
                            config.fresh_days)  # fmt: skip
        points.append(TradeoffPoint(sweep, label, float(ndcg), intra_list_diversity(rows, rec, vectors), fresh))
    by = "two-tower video embeddings" if vectors is not None else "categories (no embeddings)"
    return Tradeoffs(points, len(requests), by, base.fresh_days)


def only_users(data: EvaluationData, users: np.ndarray) -> EvaluationData:
    """``data`` with the test relevance of every other user removed, so only ``users`` are judged."""
    keep = np.zeros(len(data.users))
    keep[users] = 1.0
    mask = diags(keep)
    return replace(data, candidate_relevance=(mask @ data.candidate_relevance).tocsr(),
                   final_relevance=(mask @ data.final_relevance).tocsr())  # fmt: skip


def fresh_share(rows: np.ndarray, uploaded_us: np.ndarray, now_us: int, fresh_days: float) -> float:
    """Share of filled slots holding a video uploaded less than ``fresh_days`` before ``now``."""
    filled = rows >= 0
    if not filled.any():
        return float("nan")
    fresh = uploaded_us[rows[filled]] > now_us - fresh_days * US_PER_DAY
    return float(fresh.mean())


def intra_list_diversity(rows: np.ndarray, rec: Recommender, vectors: Callable[[np.ndarray], np.ndarray] | None
                         ) -> float:  # fmt: skip
    """Mean over slates of 1 - mean pairwise cosine similarity (categories: 1 - share of same-category pairs)."""
    filled = rows >= 0
    safe = np.maximum(rows, 0)
    if vectors is not None:
        v = np.asarray(vectors(safe.ravel()), dtype=np.float64).reshape(*rows.shape, -1)  # (users, k, d)
        v /= np.maximum(np.linalg.norm(v, axis=2, keepdims=True), 1e-12)
        sim = np.einsum("ukd,ujd->ukj", v, v)  # (users, k, k)
    else:
        cats = rec.catalogue.category[safe]  # (users, k)
        sim = (cats[:, :, None] == cats[:, None, :]).astype(np.float64)
    pair = filled[:, :, None] & filled[:, None, :] & ~np.eye(rows.shape[1], dtype=bool)[None]
    n_pairs = pair.sum(axis=(1, 2))
    ok = n_pairs > 0
    if not ok.any():
        return float("nan")
    return float(np.mean(1.0 - (sim * pair).sum(axis=(1, 2))[ok] / n_pairs[ok]))


# ---- coverage and popularity ------------------------------------------------------------------


def _judged(recs: Mapping[str, np.ndarray], data: EvaluationData, k: int) -> dict[str, np.ndarray]:
    """Each model's top ``k`` for the judged users (the rows every model was asked for), baselines first."""
    users = data.judged_users()
    names = sorted(recs, key=lambda name: name.startswith("vidrec"))  # stable: each group keeps its order
    return {name: recs[name][users, :k] for name in names if name != STAGE_NAMES["candidates"]}


def coverage(recs: Mapping[str, np.ndarray], data: EvaluationData, k: int = 10) -> Bars:
    """Catalogue coverage: share of the catalogue's videos in at least one judged user's top ``k``."""
    n = max(len(data.videos), 1)
    names, values = [], []
    for name, m in _judged(recs, data, k).items():
        names.append(name)
        values.append(np.unique(m[m != NO_ITEM]).size / n)
    held = np.unique(data.candidate_relevance.indices).size / n
    return Bars([*names, "held out (test)"], {"catalogue coverage": [*values, held]})


def training_popularity(data: EvaluationData) -> np.ndarray:
    """Training interactions per video (users who watched or liked it), by evaluation column."""
    return np.asarray(data.train.astype(bool).sum(axis=0)).ravel()


def popularity(recs: Mapping[str, np.ndarray], data: EvaluationData, k: int = 10) -> tuple[Lines, dict[str, float]]:
    """Distribution of the training popularity of what each model recommends, beside the held-out videos.

    Returns the empirical distribution functions over ``1 + training interactions`` (log-scaled
    axis, so that unseen videos have a place) and each series' median.
    """
    pop = training_popularity(data).astype(np.float64) + 1.0
    samples = {"held out (test interactions)": pop[data.candidate_relevance.indices]}
    for name, m in _judged(recs, data, k).items():
        samples[name] = pop[m[m != NO_ITEM]]
    series, medians = {}, {}
    for name, values in samples.items():
        if values.size == 0:
            continue
        x = np.sort(values)
        series[name] = (x, np.arange(1, x.size + 1) / x.size)
        medians[name] = float(np.median(values) - 1.0)
    return Lines(series, log_x=True, steps=True), medians


# ---- the simulator's oracle -------------------------------------------------------------------


def oracle_breakdown(
    rec: Recommender, run: StageRun, data: EvaluationData, candidates: np.ndarray, recs: Mapping[str, np.ndarray],
    truth: GroundTruth, k: int = 10,
) -> pl.DataFrame:  # fmt: skip
    """Share of the oracle's expected completions reached by each stage's ten (``oracle_ratio``).

    Rows: the best ten within the merged candidates by the true probability (the ceiling of the
    later stages), the merged candidate order, the scoring stage and the final slate, then every
    other model in ``recs`` (the baselines), judged the same way.
    """
    users = data.users.to_index([r.request.user_id for r in run.results])
    seen = pl.DataFrame({"user_id": data.users.ids.gather(users),
                         "seen": [rec.catalogue.ids_of(r.request.seen) for r in run.results]},
                        schema={"user_id": pl.String, "seen": pl.List(pl.String)})  # fmt: skip
    pool = candidates[users]  # (judged, longest) evaluation columns
    valid = pool != NO_ITEM
    ids = data.users.ids.gather(np.repeat(users, valid.sum(axis=1))).to_list()
    try:
        true_p = truth.p_complete(ids, data.videos.ids.gather(pool[valid]).to_list(), rec.now)
    except KeyError as err:
        raise DataError(f"the ground truth does not describe this model's data ({err.args[0]})",
                        "pass --data the simulated platform the split was made from") from None  # fmt: skip
    p = np.full(pool.shape, -np.inf)
    p[valid] = true_p
    best = np.take_along_axis(pool, np.argsort(-p, axis=1, kind="stable")[:, :k], axis=1)
    ceiling = np.full((len(data.users), k), NO_ITEM, dtype=np.int64)
    ceiling[users] = best
    slates = {
        "best ten within the candidates (ceiling)": ceiling,
        "merged candidate order": candidates[:, :k],
        "scoring stage": recs[STAGE_NAMES["scored"]][:, :k],
        "final slate": recs[STAGE_NAMES["final"]][:, :k],
    } | {name: matrix[:, :k] for name, matrix in recs.items() if name not in STAGE_NAMES.values()}
    rows = []
    for name, matrix in slates.items():
        r = oracle_ratio(truth, _ranked(matrix[users], users, data), seen, rec.now, k=k)
        rows.append({"ten per user from": name, "share of the oracle": r["ratio_of_totals"],
                     "expected completions per slate": r["expected_completions_per_slate"],
                     "oracle's per slate": r["oracle_completions_per_slate"]})  # fmt: skip
    return pl.DataFrame(rows)


def _ranked(matrix: np.ndarray, users: np.ndarray, data: EvaluationData) -> pl.DataFrame:
    """``user_id, rank, video_id`` of an index matrix whose rows are ``users`` (-1 slots left out)."""
    filled = matrix != NO_ITEM
    rows, slots = np.nonzero(filled)
    return pl.DataFrame({"user_id": data.users.ids.gather(users[rows]), "rank": slots + 1,
                         "video_id": data.videos.ids.gather(matrix[filled])})  # fmt: skip
