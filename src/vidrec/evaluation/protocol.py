"""The offline protocol: temporal splits, full-ranking evaluation, one table for all models.

Rules (see docs/REFERENCES.md, "Protocol"):
- nothing from the future in training: splits cut each user's history by time;
- full ranking over the whole training catalogue, never sampled metrics;
- whatever a user interacted with in training is never recommended and never counted;
- candidate metrics judge against every test video the user interacted with (watch or
  like); final metrics against the test videos the user *completed*;
- users without training history are cold: no baseline here can rank for them, so they
  are skipped and counted, never silently dropped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import polars as pl
from scipy.sparse import csr_matrix

from vidrec.data.dataset import Dataset, conform_table, read_dataset, read_table
from vidrec.data.ids import IdMap
from vidrec.data.schema import COMPLETION_THRESHOLD, with_derived
from vidrec.evaluation.baselines import EASE, IALS, Baseline, MostPopular
from vidrec.evaluation.matrix import interaction_matrix, nonempty_rows, subtract
from vidrec.evaluation.metrics import NO_ITEM, hits_matrix, ranking_metrics
from vidrec.evaluation.tuning import expand_grid
from vidrec.evaluation.tuning import tune as tune_baseline
from vidrec.progress import bar

DEFAULT_KS: tuple[int, ...] = (10, 50, 100, 200)

LABELLED_COLUMNS: tuple[str, ...] = (
    "user_id", "video_id", "ts", "event", "interacted", "completed"
)
"""An event frame the protocol can judge: canonical events plus the derived labels."""


def temporal_holdout(events: pl.DataFrame, fraction: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split each user's events by time into (train, holdout).

    The user's last ``fraction`` of watch events (rounded, at least one) define a cut
    timestamp, the time of the first held-out watch; every event of the user at or after
    the cut goes to the holdout, whatever its kind. Users with fewer than two watches, or
    whose cut would leave no watch in training (all watches at one instant), stay wholly
    in train. Ties at the cut go to the holdout, so the holdout can exceed ``fraction``.
    Row order and columns are kept.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"holdout fraction must lie strictly between 0 and 1, got {fraction}")
    missing = {"user_id", "ts", "event"} - set(events.columns)
    if missing:
        raise ValueError(f"events need columns user_id, ts and event; missing {sorted(missing)}")
    watches = (
        events.filter(pl.col("event") == "watch")
        .select("user_id", "ts")
        .sort("user_id", "ts")
        .with_columns(
            pos=pl.int_range(pl.len()).over("user_id"),
            n=pl.len().over("user_id"),
            first=pl.col("ts").min().over("user_id"),
        )
    )
    n_hold = (pl.col("n") * fraction).round().clip(1, None).cast(pl.Int64)
    cuts = watches.filter(
        (pl.col("n") >= 2) & (pl.col("pos") == pl.col("n") - n_hold.clip(None, pl.col("n") - 1))
    ).filter(pl.col("ts") > pl.col("first")).select("user_id", cut=pl.col("ts"))
    flagged = events.join(cuts, on="user_id", how="left", maintain_order="left")
    held = (pl.col("ts") >= pl.col("cut")).fill_null(False)
    train = flagged.filter(~held).drop("cut")
    holdout = flagged.filter(held).drop("cut")
    return train, holdout


def label_events(
    events: pl.DataFrame, videos: pl.DataFrame, threshold: float = COMPLETION_THRESHOLD
) -> pl.DataFrame:
    """Canonical events -> the labelled frame (``LABELLED_COLUMNS``) the protocol judges."""
    return with_derived(events, videos, threshold).select(LABELLED_COLUMNS)


@dataclass(frozen=True)
class EvaluationData:
    """Everything needed to judge any model on one train/test split, in dense indices.

    Rows of every matrix follow ``users`` (users with training history), columns follow
    ``videos`` (the training catalogue). ``train`` doubles as the exclusion matrix.
    """

    users: IdMap
    videos: IdMap
    train: csr_matrix  # (n_users, n_videos) interacted in training; also the exclusions
    candidate_relevance: csr_matrix  # test interacted (watch or like), not in training
    final_relevance: csr_matrix  # test completed, not in training
    train_events: pl.DataFrame  # labelled training events, for validation carves
    coverage: dict[str, int] = field(default_factory=dict)  # what the split could not judge

    @property
    def exclude(self) -> csr_matrix:
        """What is never recommended nor counted: everything interacted with in training."""
        return self.train

    @classmethod
    def from_split(
        cls, split_dir: str | Path, threshold: float = COMPLETION_THRESHOLD
    ) -> EvaluationData:
        """Read ``SPLITDIR/train/`` (a data directory) and ``SPLITDIR/test/events.parquet``."""
        root = Path(split_dir)
        train = read_dataset(root / "train").conform()
        test_path = root / "test" / "events.parquet"
        test_events = conform_table(read_table(test_path, "events"), "events")
        return cls.from_frames(train, test_events, threshold)

    @classmethod
    def from_frames(
        cls, train: Dataset, test_events: pl.DataFrame, threshold: float = COMPLETION_THRESHOLD
    ) -> EvaluationData:
        """Build from a training Dataset and the test-period events (canonical schema).

        Test completion is measured against the training catalogue's durations; test
        videos outside that catalogue cannot be ranked by any model here and are counted
        in ``coverage["unknown_video_pairs"]``.
        """
        return cls.from_labelled(
            label_events(train.events, train.videos, threshold),
            label_events(test_events, train.videos, threshold),
            catalogue=train.videos["video_id"],
        )

    @classmethod
    def from_labelled(
        cls,
        train_events: pl.DataFrame,
        test_events: pl.DataFrame,
        catalogue: pl.Series | None = None,
    ) -> EvaluationData:
        """Build from labelled event frames (``LABELLED_COLUMNS``), e.g. from an adapter.

        ``catalogue`` lists the videos that can be recommended; videos seen in training
        events are always added to it.
        """
        for name, frame in (("train", train_events), ("test", test_events)):
            missing = set(LABELLED_COLUMNS) - set(frame.columns)
            if missing:
                raise ValueError(f"{name} events lack columns {sorted(missing)}; see label_events")
        train_pairs = _pairs(train_events, "interacted")
        users = IdMap(train_pairs["user_id"].unique().sort())
        seen = train_pairs["video_id"].unique().sort()
        known = pl.Series("video_id", [] if catalogue is None else catalogue, dtype=pl.String)
        known = known.drop_nulls().unique(maintain_order=True)
        videos = IdMap(pl.concat([known, seen.filter(~seen.is_in(known.implode()))]))
        X = interaction_matrix(train_pairs, users, videos)
        test_pairs = _pairs(test_events, "interacted")
        cand = subtract(interaction_matrix(test_pairs, users, videos), X)
        final = subtract(
            interaction_matrix(_pairs(test_events, "completed"), users, videos), X
        )
        return cls(
            users=users,
            videos=videos,
            train=X,
            candidate_relevance=cand,
            final_relevance=final,
            train_events=train_events.select(LABELLED_COLUMNS),
            coverage=_coverage(test_pairs, users, videos, cand),
        )

    def judged_users(self) -> np.ndarray:
        """Users with at least one relevant test video (the only ones worth ranking for)."""
        return nonempty_rows(self.candidate_relevance, self.final_relevance)

    def validation_matrices(self, fraction: float = 0.15) -> tuple[csr_matrix, csr_matrix]:
        """Carve (X_fit, X_valid) from the TRAINING period only, for tuning.

        Each user's last ``fraction`` of training watches becomes validation relevance
        (minus what stays in X_fit); the test split is never touched.
        """
        fit_events, valid_events = temporal_holdout(self.train_events, fraction)
        X_fit = interaction_matrix(_pairs(fit_events, "interacted"), self.users, self.videos)
        valid = interaction_matrix(_pairs(valid_events, "interacted"), self.users, self.videos)
        return X_fit, subtract(valid, X_fit)

    def summary(self) -> dict[str, int]:
        """Sizes and coverage counts, for reports."""
        return {
            "users": len(self.users),
            "videos": len(self.videos),
            "train_pairs": int(self.train.nnz),
            "candidate_pairs": int(self.candidate_relevance.nnz),
            "final_pairs": int(self.final_relevance.nnz),
            "candidate_users": int(nonempty_rows(self.candidate_relevance).size),
            "final_users": int(nonempty_rows(self.final_relevance).size),
            **self.coverage,
        }


def _pairs(events: pl.DataFrame, label: str) -> pl.DataFrame:
    """Distinct (user_id, video_id) pairs of events where ``label`` holds."""
    return events.filter(pl.col(label)).select("user_id", "video_id").unique()


def _coverage(
    test_pairs: pl.DataFrame, users: IdMap, videos: IdMap, cand: csr_matrix
) -> dict[str, int]:
    """Count what the test holds that the protocol cannot judge, so nothing vanishes."""
    u = users.to_index(test_pairs["user_id"])
    v = videos.to_index(test_pairs["video_id"])
    cold = u < 0
    return {
        "cold_test_users": int(test_pairs.filter(pl.Series(cold))["user_id"].n_unique()),
        "cold_test_pairs": int(cold.sum()),
        "unknown_video_pairs": int(((~cold) & (v < 0)).sum()),
        "repeat_pairs": int(((~cold) & (v >= 0)).sum()) - int(cand.nnz),
    }


@dataclass(frozen=True)
class BaselineSpec:
    """How to build, tune and name one baseline in the comparison table."""

    name: str
    factory: Callable[..., Baseline]
    grid: Mapping[str, Sequence[object]]  # searched on the validation carve when tuning
    defaults: Mapping[str, object]  # used when tuning is off


def default_baselines(seed: int = 0) -> list[BaselineSpec]:
    """Most-popular, EASE and iALS with small grids (about a minute on ML-100K)."""
    return [
        BaselineSpec("most-popular", MostPopular, {}, {}),
        BaselineSpec(
            "EASE", EASE, {"lambda_": [50.0, 100.0, 200.0, 500.0, 1000.0]}, {"lambda_": 200.0}
        ),
        BaselineSpec(
            "iALS",
            partial(IALS, random_state=seed),
            {"factors": [64, 128], "regularization": [0.01, 0.1, 1.0], "alpha": [1.0, 10.0, 40.0]},
            {"factors": 64, "regularization": 0.1, "alpha": 10.0},
        ),
    ]


def evaluate_baselines(
    data: EvaluationData,
    ks: Sequence[int] = DEFAULT_KS,
    tune: bool = True,
    final_k: int = 10,
    baselines: Sequence[BaselineSpec] | None = None,
    valid_fraction: float = 0.15,
    metric: str = "ndcg@10",
    tuning_tables: dict[str, pl.DataFrame] | None = None,
    recommendations: dict[str, np.ndarray] | None = None,
) -> pl.DataFrame:
    """Tune (on a training-period carve), refit on all training data, and judge each baseline.

    Returns one row per model with candidate recall@ks, final NDCG/recall/precision at
    ``final_k``, the chosen parameters, fit and tuning times. Pass a dict as
    ``tuning_tables`` to receive each model's grid results, and one as ``recommendations``
    to receive each model's judged ``(n_users, depth)`` index matrix (for reports).
    """
    specs = default_baselines() if baselines is None else list(baselines)
    depth = max(max(ks), final_k)
    users = data.judged_users()
    carve = data.validation_matrices(valid_fraction) if tune else None
    rows = []
    for spec in bar(specs, len(specs), "tuning and judging baselines", unit="model"):
        params, tune_seconds = dict(spec.defaults), 0.0
        if carve is not None and expand_grid(spec.grid) != [{}]:
            start = time.perf_counter()
            params, table = tune_baseline(spec.factory, spec.grid, *carve, metric=metric)
            tune_seconds = time.perf_counter() - start
            if tuning_tables is not None:
                tuning_tables[spec.name] = table
        start = time.perf_counter()
        model = spec.factory(**params).fit(data.train)
        fit_seconds = time.perf_counter() - start
        recs = np.full((len(data.users), depth), NO_ITEM, dtype=np.int64)
        recs[users] = model.recommend(users, depth, exclude=data.exclude)
        if recommendations is not None:
            recommendations[spec.name] = recs
        row = evaluate_recommendations(
            data, recs, spec.name, ks=ks, final_k=final_k, fit_seconds=fit_seconds, params=params
        )
        rows.append(row.with_columns(tune_seconds=pl.lit(tune_seconds)))
    return pl.concat(rows, how="vertical")


def evaluate_recommendations(
    data: EvaluationData,
    recs: np.ndarray,
    name: str,
    ks: Sequence[int] = DEFAULT_KS,
    final_k: int = 10,
    fit_seconds: float | None = None,
    params: Mapping[str, object] | None = None,
) -> pl.DataFrame:
    """Judge any model's ranked lists in the same table as the baselines.

    Args:
        recs: ``(len(data.users), K)`` item indices into ``data.videos``, best first,
            rows in ``data.users`` order, ``NO_ITEM`` (-1) for empty slots; K >= max(ks).
            Training items must be filtered out (pass ``exclude=data.exclude``).

    Returns:
        One row: ``model, params, cand_recall@k..., final_ndcg@final_k,
        final_recall@final_k, final_precision@final_k, n_cand_users, n_final_users,
        fit_seconds``.
    """
    recs = np.asarray(recs)
    if recs.ndim == 2 and recs.shape[0] == len(data.users):
        leaked = hits_matrix(recs, data.exclude)
        if leaked.any():
            raise ValueError(
                f"{name}: {int(leaked.sum())} recommended items were interacted with in "
                "training; the protocol never recommends them (filter with data.exclude)"
            )
    cand = ranking_metrics(recs, data.candidate_relevance, ks=ks)
    final = ranking_metrics(recs, data.final_relevance, ks=(final_k,))
    row: dict[str, object] = {"model": name, "params": json.dumps(dict(params or {}))}
    row.update({f"cand_recall@{k}": cand.mean[f"recall@{k}"] for k in sorted(set(ks))})
    for metric in ("ndcg", "recall", "precision"):
        row[f"final_{metric}@{final_k}"] = final.mean[f"{metric}@{final_k}"]
    row.update(n_cand_users=cand.n_judged, n_final_users=final.n_judged, fit_seconds=fit_seconds)
    return pl.DataFrame([row], schema_overrides={"fit_seconds": pl.Float64})
