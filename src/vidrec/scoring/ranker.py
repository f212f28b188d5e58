"""``MLPRanker``: the first scoring model, a calibrated MLP on point-in-time features.

Fitting: labelled examples from the log (:mod:`vidrec.scoring.examples`), features
from events strictly before each example (:mod:`vidrec.features.point_in_time`),
an MLP trained on all but the latest ``val_fraction`` of examples, and a calibrator
fitted on that latest slice. In a log without impressions the examples add, per watch,
negatives the two-tower retrieves for the user at that time
(:mod:`vidrec.scoring.hard_negatives`): the kind of candidate the ranker re-sorts at
serving. Serving: the same feature code as of ``now`` against event tables compacted
at the end of training (:meth:`MLPRanker.refresh` updates them).

Leakage note: two-tower video vectors trained on the same period have seen every
training example's interaction. Train the two-tower on events before a cutoff and
set ``RankerConfig.examples_since`` to that cutoff, so the ranker learns how much to
trust the embeddings on interactions they never saw, as at serving. The co-occurrence
table of the similarity features is counted on the same pre-cut events for the same reason.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import numpy as np
import polars as pl
import torch

from vidrec.data.dataset import Dataset
from vidrec.data.schema import TIMESTAMP
from vidrec.errors import VidrecError
from vidrec.features.point_in_time import EventTables, point_in_time_features
from vidrec.scoring.base import EmbeddingSource, Ranker
from vidrec.scoring.calibration import Calibrator, cross_fitted, expected_calibration_error, log_loss, roc_auc
from vidrec.scoring.config import RankerConfig
from vidrec.scoring.examples import build_examples, example_mode, watch_examples
from vidrec.scoring.features import Standardizer, dense_names, feature_matrix
from vidrec.scoring.hard_negatives import retrieved_negatives
from vidrec.scoring.similarity import CoOccurrence
from vidrec.scoring.model import CompletionMLP
from vidrec.scoring.train import time_split, train_classifier


TIE_BREAK = 1e-4
"""``score = p_complete + TIE_BREAK * p_raw``. Isotonic calibration maps whole ranges of raw
scores to one value, so many candidates share a ``p_complete``; the raw output orders
them. Calibrators are non-decreasing, so a larger ``p_complete`` always has a raw
output at least as large, and ``score`` can never reverse two distinct calibrated
values: sorting by ``score`` is sorting by ``p_complete``, ties broken by ``p_raw``.
``score`` stays within ``TIE_BREAK`` of the probability the value model adds up."""


class MLPRanker(Ranker):
    """Calibrated P(completion >= threshold) from an MLP; ``score`` is ``p_complete`` with ties broken by ``p_raw``."""

    def __init__(self, config: RankerConfig | None = None) -> None:
        self.config = config or RankerConfig()
        self.model: CompletionMLP | None = None
        self.scaler = Standardizer()
        self.calibrator = Calibrator(self.config.calibration)
        self.tables: EventTables | None = None
        self.embeddings: EmbeddingSource | None = None
        self.embedding_dim = 0
        self.cooc: CoOccurrence | None = None
        self.report: dict[str, Any] = {}

    def fit(self, train: Dataset, embeddings: EmbeddingSource | None = None) -> Self:
        """Build examples and features from ``train``, train, calibrate and report validation metrics."""
        threads = torch.get_num_threads()
        if self.config.threads is not None:
            torch.set_num_threads(self.config.threads)
        try:
            return self._fit(train, embeddings)
        finally:
            torch.set_num_threads(threads)

    def _fit(self, train: Dataset, embeddings: EmbeddingSource | None) -> Self:
        cfg = self.config
        tables = EventTables.build(train.events, train.videos, cfg.features)
        examples = self._examples(train, tables, embeddings)
        self.cooc = self._cooccurrence(train) if cfg.similarity else None
        feats = point_in_time_features(examples, tables, train.videos, with_history=self._needs_history(embeddings))
        x = feature_matrix(feats, embeddings, self.cooc, cfg.similarity_recent)  # (n, f)
        y = examples["label"].to_numpy().astype(np.float32)
        cut = time_split(examples["ts"].to_numpy(), cfg.val_fraction)
        self.scaler = Standardizer().fit(x[:cut])
        xs = self.scaler(x)
        result = train_classifier(xs[:cut], y[:cut], xs[cut:], y[cut:], cfg)
        self.model = result.model
        raw = self.model.predict_proba(torch.from_numpy(xs[cut:])).numpy()
        self.calibrator = Calibrator(cfg.calibration).fit(raw, y[cut:])
        yv, cal = y[cut:], cross_fitted(raw, y[cut:], cfg.calibration)  # out-of-sample for the report
        self.embeddings, self.embedding_dim = embeddings, 0 if embeddings is None else int(embeddings.dim)
        self.tables = tables.compact()
        self.report = {
            "examples": len(y), "train_examples": cut, "validation_examples": len(y) - cut,
            "positive_rate": float(y.mean()), "best_epoch": result.best_epoch,
            "train_loss": result.train_loss, "val_loss": result.val_loss,
            "val_auc": roc_auc(raw, yv), "val_log_loss_raw": log_loss(raw, yv), "val_log_loss": log_loss(cal, yv),
            "val_ece_raw": expected_calibration_error(raw, yv, cfg.ece_bins),
            "val_ece": expected_calibration_error(cal, yv, cfg.ece_bins),
        }  # fmt: skip
        return self

    def _needs_history(self, embeddings: EmbeddingSource | None) -> bool:
        return embeddings is not None or self.cooc is not None

    def _cooccurrence(self, train: Dataset) -> CoOccurrence:
        """Co-occurrence of completions before ``examples_since`` (empty without it: no pre-period)."""
        cfg = self.config
        return CoOccurrence.build(
            train.events, train.videos, cfg.examples_since, cfg.examples.threshold, cfg.cooc_min_count
        )

    def _examples(self, train: Dataset, tables: EventTables, embeddings: EmbeddingSource | None) -> pl.DataFrame:
        cfg = self.config
        examples = self._since(build_examples(train.events, train.videos, cfg.examples))
        ex = cfg.examples
        if ex.hard_negatives_per_watch and embeddings is not None and example_mode(train.events, ex) == "watches":
            watches = self._since(watch_examples(train.events, train.videos, replace(ex, negatives_per_watch=0)))
            hard = retrieved_negatives(
                watches, train.events, train.videos, tables, embeddings,
                ex.hard_negatives_per_watch, ex.hard_pool, ex.seed + 1,
            )  # fmt: skip
            examples = pl.concat([examples, hard]).sort("ts", "user_id", "video_id")
        if cfg.max_examples is not None:
            examples = examples.tail(cfg.max_examples)
        if examples.height < 10 or examples["label"].n_unique() < 2:
            raise VidrecError(
                f"cannot train the ranker: {examples.height} examples, labels {examples['label'].unique().to_list()}",
                "the training log needs watches with both completed and abandoned outcomes",
            )
        return examples

    def _since(self, examples: pl.DataFrame) -> pl.DataFrame:
        since = self.config.examples_since
        return examples if since is None else examples.filter(pl.col("ts") >= pl.lit(since).cast(TIMESTAMP))

    def refresh(self, events: pl.DataFrame, videos: pl.DataFrame) -> Self:
        """Recompute the serving statistics from a newer event log (model and co-occurrence are unchanged)."""
        self.tables = EventTables.build(events, videos, self.config.features).compact()
        return self

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        """Calibrated probabilities for a frame of point-in-time features (+ ``history`` with embeddings or similarity)."""
        return self.calibrator(self.predict_raw(frame))

    def predict_raw(self, frame: pl.DataFrame) -> np.ndarray:
        """The model's uncalibrated probabilities (same input as :meth:`predict`)."""
        if self.model is None:
            raise VidrecError("the ranker is not fitted", "call fit() or MLPRanker.load() first")
        x = self.scaler(feature_matrix(frame, self.embeddings, self.cooc, self.config.similarity_recent))
        return self.model.predict_proba(torch.from_numpy(x)).numpy()

    def score(self, candidates: pl.DataFrame, users: pl.DataFrame, videos: pl.DataFrame, now: datetime) -> pl.DataFrame:
        """``candidates`` with ``p_complete`` and ``score`` (see :meth:`Ranker.score`)."""
        if self.model is None or self.tables is None:
            raise VidrecError("the ranker is not fitted", "call fit() or MLPRanker.load() first")
        if self.embedding_dim and self.embeddings is None:
            raise VidrecError(
                f"this ranker was trained with {self.embedding_dim}-d two-tower embeddings but has none",
                "pass the two-tower embedding source: MLPRanker.load(directory, embeddings=...)",
            )
        if candidates.is_empty():
            none = pl.lit(None, pl.Float64)
            return candidates.with_columns(p_complete=none, p_raw=none, score=none)
        rows = candidates.select("user_id", "video_id").with_columns(ts=pl.lit(now).cast(TIMESTAMP))
        history = self._needs_history(self.embeddings)
        feats = point_in_time_features(rows, self.tables, videos, with_history=history)
        if history:
            feats = _history_from_state(feats, users, self.config.features.history_len)
        raw = self.predict_raw(feats)
        return candidates.with_columns(
            p_complete=pl.Series(self.calibrator(raw), dtype=pl.Float64), p_raw=pl.Series(raw, dtype=pl.Float64)
        ).with_columns(score=pl.col("p_complete") + TIE_BREAK * pl.col("p_raw"))

    def save(self, directory: str | Path) -> Path:
        """Write ``ranker.json`` (config, scaler, calibrator, report), ``model.pt`` and ``tables/``."""
        if self.model is None or self.tables is None:
            raise VidrecError("cannot save an unfitted ranker", "call fit() first")
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        meta = {
            "config": self.config.to_dict(), "embedding_dim": self.embedding_dim,
            "features": dense_names(self.embedding_dim, self.cooc is not None), "scaler": self.scaler.to_dict(),
            "calibrator": self.calibrator.to_dict(), "report": self.report,
        }  # fmt: skip
        (root / "ranker.json").write_text(json.dumps(meta, indent=2))
        torch.save(self.model.state_dict(), root / "model.pt")
        self.tables.save(root / "tables")
        if self.cooc is not None:
            self.cooc.save(root / "similarity")
        return root

    @classmethod
    def load(cls, directory: str | Path, embeddings: EmbeddingSource | None = None) -> Self:
        """Read a ranker written by :meth:`save`; ``embeddings`` must match the trained dimension."""
        root = Path(directory)
        if not (root / "ranker.json").exists():
            raise VidrecError(f"{root}: no ranker.json here", "pass the directory written by MLPRanker.save")
        meta = json.loads((root / "ranker.json").read_text())
        ranker = cls(RankerConfig.from_dict(meta["config"]))
        dim = int(meta["embedding_dim"])
        if embeddings is not None and int(embeddings.dim) != dim:
            raise VidrecError(
                f"{root}: the ranker was trained with {dim}-d embeddings, the source given has {embeddings.dim}",
                "load it with the two-tower model it was trained with (or none if it was trained without)",
            )
        ranker.embeddings = embeddings if dim else None
        ranker.embedding_dim = dim
        ranker.scaler = Standardizer.from_dict(meta["scaler"])
        ranker.calibrator = Calibrator.from_dict(meta["calibrator"])
        ranker.report = meta["report"]
        model = CompletionMLP(len(meta["features"]), ranker.config.hidden, ranker.config.dropout)
        model.load_state_dict(torch.load(root / "model.pt", weights_only=True))
        ranker.model = model.eval()
        ranker.tables = EventTables.load(root / "tables")
        if (root / "similarity").exists():
            ranker.cooc = CoOccurrence.load(root / "similarity")
        return ranker


def _history_from_state(feats: pl.DataFrame, users: pl.DataFrame, history_len: int) -> pl.DataFrame:
    """Use the request's user state (``recent_completed``) as history where the user has one.

    It is defined like the feature tables' history (completions before now, most recent
    last) but may be fresher than the tables stored with the model.
    """
    if "recent_completed" not in users.columns:
        return feats
    state = users.select("user_id", _state=pl.col("recent_completed").list.tail(history_len))
    out = feats.join(state, on="user_id", how="left", maintain_order="left")
    return out.with_columns(history=pl.coalesce("_state", "history")).drop("_state")
