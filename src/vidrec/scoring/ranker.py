"""``MultiTaskRanker``: calibrated per-task probabilities on point-in-time features, one value score.

Fitting: labelled examples from the log (:mod:`vidrec.scoring.examples`: completed,
interacted, liked, disliked), features from events strictly before each example
(:mod:`vidrec.features.point_in_time`), a multi-task network (:mod:`vidrec.scoring.model`;
MMoE over DCN-v2 cross layers by default) trained on all but the latest ``val_fraction``
of examples with a weighted sum of per-task BCE, and one calibrator per head fitted on
that latest slice. In a log without impressions the examples add, per watch, negatives
the two-tower retrieves for the user at that time (:mod:`vidrec.scoring.hard_negatives`):
the kind of candidate the ranker re-sorts at serving. Serving (:meth:`score_requests`):
the same derived features (:mod:`vidrec.features.derive`) computed from the hydrated
request and the live counts the event feed keeps current (:mod:`vidrec.features.online`),
so a watch observed a moment ago counts; ``score`` is the value model
(:mod:`vidrec.scoring.value`) of the heads' strictly increasing calibrations
(:meth:`Calibrator.ranking`: isotonic steps would tie candidates the network tells apart),
beside the calibrated probabilities of the heads that are trained. :meth:`score` is the frame view of the same
model over the training-time event tables, for offline analysis.

Leakage note: two-tower video vectors trained on the same period have seen every
training example's interaction. Train the two-tower on events before a cutoff and
set ``RankerConfig.examples_since`` to that cutoff, so the ranker learns how much to
trust the embeddings on interactions they never saw, as at serving. The co-occurrence
table of the similarity features is counted on the same pre-cut events for the same reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import numpy as np
import polars as pl
import torch

from vidrec.candidates.two_tower.source import TwoTowerEmbeddings
from vidrec.catalogue import Catalogue
from vidrec.data.dataset import Dataset
from vidrec.data.schema import TIMESTAMP, from_epoch_us
from vidrec.errors import VidrecError
from vidrec.features.live import LiveCounts
from vidrec.features.online import request_features
from vidrec.features.point_in_time import EventTables, point_in_time_features
from vidrec.request import Request
from vidrec.scoring.base import EmbeddingSource, Ranker
from vidrec.scoring.calibration import Calibrator, cross_fitted, expected_calibration_error, log_loss, roc_auc
from vidrec.scoring.config import RankerConfig
from vidrec.scoring.examples import LABELS, build_examples, example_mode, watch_examples
from vidrec.scoring.features import Standardizer, dense_names, feature_matrix, point_matrix
from vidrec.scoring.hard_negatives import retrieved_negatives
from vidrec.scoring.model import Ensemble, MultiTaskNet, traced_split
from vidrec.scoring.similarity import CoOccurrence, request_similarity
from vidrec.scoring.train import build_model, member_configs, time_split, train_classifier
from vidrec.scoring.value import PROBABILITY_COLUMNS, ValueModel


@dataclass
class RequestInputs:
    """The ranker's input for candidates of requests served together, in blocks (before standardisation).

    Row i of the model input is ``own[i]`` with ``users[seg[i]]`` and ``videos[which[i]]`` inserted
    where the embeddings go: a user's vector is shared by its candidates, a video's by the
    requests that have it.
    """

    own: np.ndarray  # (n, f - 2d) per-candidate columns: point-in-time, similarity, then the dot product
    users: np.ndarray | None  # (requests, d) user vectors, None without embeddings
    seg: np.ndarray  # (n,) each candidate's request
    videos: np.ndarray | None  # (distinct videos, d)
    which: np.ndarray | None  # (n,) each candidate's row in ``videos``

    def matrix(self, start: int) -> np.ndarray:
        """The full (n, f) input; the embeddings start at column ``start``."""
        if self.users is None or self.videos is None or self.which is None:
            return self.own
        return np.concatenate([self.own[:, :start], self.users[self.seg], self.videos[self.which],
                               self.own[:, start:]], axis=1)  # fmt: skip

    def standardised(self, scaler: Standardizer, start: int) -> tuple[torch.Tensor, ...]:
        """The blocks standardised with the training columns' means and deviations, as tensors."""
        assert self.users is not None and self.videos is not None and self.which is not None
        mean, std = np.asarray(scaler.mean, np.float32), np.asarray(scaler.std, np.float32)
        d = self.users.shape[1]
        user, video = slice(start, start + d), slice(start + d, start + 2 * d)
        own = np.r_[0:start, start + 2 * d : len(mean)]
        return (torch.from_numpy(((self.own - mean[own]) / std[own]).astype(np.float32)),
                torch.from_numpy(((self.users - mean[user]) / std[user]).astype(np.float32)),
                torch.from_numpy(self.seg.astype(np.int64)),
                torch.from_numpy(((self.videos - mean[video]) / std[video]).astype(np.float32)),
                torch.from_numpy(self.which.astype(np.int64)))  # fmt: skip


@dataclass
class TrainingData:
    """The ranker's training set before standardisation: what :meth:`MultiTaskRanker.fit_arrays` takes."""

    x: np.ndarray  # (n, f) float32 dense features (features.dense_names order)
    y: np.ndarray  # (n, len(LABELS)) float32 0/1 labels
    ts: np.ndarray  # (n,) example times, sorted
    examples: pl.DataFrame  # user_id, video_id, ts, *LABELS


class MultiTaskRanker(Ranker):
    """Calibrated P(completed) and, where their heads are trained, P(interacted), P(liked), P(disliked);
    ``score`` from the value model."""

    def __init__(self, config: RankerConfig | None = None) -> None:
        self.config = config or RankerConfig()
        self.model: MultiTaskNet | Ensemble | None = None
        self.scaler = Standardizer()
        self.calibrators: dict[str, Calibrator] = {}  # per task with a head
        self.base_rates: dict[str, float] = {}  # per task without a head: its validation positive rate
        self._tables: EventTables | None = None
        self.embeddings: EmbeddingSource | None = None
        self.embedding_dim = 0
        self.cooc: CoOccurrence | None = None
        self.report: dict[str, Any] = {}
        self.n_categories = 1  # the training catalogue's categories (a constant of the features)
        self.catalogue: Catalogue | None = None
        self.live: LiveCounts | None = None
        self._tables_dir: Path | None = None
        self._split: tuple[int, Any] | None = None  # the traced forward of score_request

    @property
    def tables(self) -> EventTables | None:
        """The training log's feature tables, compacted: the offline :meth:`score` reads them
        (loaded on first use; request scoring never does)."""
        if self._tables is None and self._tables_dir is not None:
            self._tables = EventTables.load(self._tables_dir)
        return self._tables

    @tables.setter
    def tables(self, value: EventTables | None) -> None:
        self._tables = value

    @property
    def value(self) -> ValueModel:
        """The value model ``score`` uses (``config.value``)."""
        return self.config.value

    def with_value(self, value: ValueModel) -> Self:
        """Score with other value weights from now on; the model is unchanged."""
        self.config = replace(self.config, value=value)
        return self

    def fit(self, train: Dataset, embeddings: EmbeddingSource | None = None,
            checkpoints: str | Path | None = None, log: Callable[[str], None] | None = None) -> Self:  # fmt: skip
        """Build examples and features from ``train``, train, calibrate and report validation metrics.

        ``checkpoints``: a directory for each network's training checkpoints (a rerun resumes);
        ``log`` gets one line per epoch."""
        with _threads(self.config.threads):
            data, tables = self.prepare(train, embeddings)
            self.tables = tables.compact()  # the full tables are not needed for training: freed first
            self.n_categories = tables.n_categories
            del tables
            n_examples, x, y, ts = data.examples.height, data.x, data.y, data.ts
            del data
            self.fit_arrays(x, y, ts, checkpoints, log, overwrite=True)
        self.report["examples"] = n_examples
        return self

    def prepare(self, train: Dataset, embeddings: EmbeddingSource | None = None) -> tuple[TrainingData, EventTables]:
        """Examples and their feature matrix (sets the embedding source and co-occurrence table)."""
        cfg = self.config
        tables = EventTables.build(train.events, train.videos, cfg.features, since=cfg.examples_since)
        examples = self._examples(train, tables, embeddings)
        self.embeddings, self.embedding_dim = embeddings, 0 if embeddings is None else int(embeddings.dim)
        self.cooc = self._cooccurrence(train) if cfg.similarity else None
        x = self._feature_blocks(examples, tables, train.videos, embeddings)  # (n, f)
        y = examples.select(LABELS).to_numpy().astype(np.float32)  # (n, labels)
        return TrainingData(x, y, examples["ts"].to_numpy(), examples), tables

    def _feature_blocks(self, examples: pl.DataFrame, tables: EventTables, videos: pl.DataFrame,
                        embeddings: EmbeddingSource | None) -> np.ndarray:  # fmt: skip
        """The examples' feature matrix, built for about ``feature_block`` examples at a time:
        the examples of one share of the users (by a hash of the id), against the per-user
        tables cut to those users, so the as-of joins' working memory grows with the block and
        not with the log (the largest table, user x tag, is joined a share at a time)."""
        history = self._needs_history(embeddings)
        parts = -(-examples.height // self.config.feature_block)
        share = (examples["user_id"].hash(seed=0) % parts).to_numpy() if parts > 1 else np.zeros(examples.height)
        x: np.ndarray | None = None
        for part in range(parts):
            rows = np.flatnonzero(share == part)  # still in time order
            if not len(rows):
                continue
            block = examples[rows]
            cut = tables.for_users(block["user_id"].unique()) if parts > 1 else tables
            feats = point_in_time_features(block, cut, videos, with_history=history)
            values = feature_matrix(feats, embeddings, self.cooc, self.config.similarity_recent)
            del feats, cut
            if x is None:
                x = np.empty((examples.height, values.shape[1]), dtype=np.float32)
            x[rows] = values
        assert x is not None, "examples are checked non-empty"
        return x

    def fit_arrays(self, x: np.ndarray, y: np.ndarray, ts: np.ndarray, checkpoints: str | Path | None = None,
                   log: Callable[[str], None] | None = None, overwrite: bool = False) -> Self:  # fmt: skip
        """Standardise, train on all but the latest ``val_fraction``, calibrate each head on the rest.
        ``overwrite``: standardise a float32 ``x`` in place (no second copy of a large matrix)."""
        cfg = self.config
        cut = time_split(ts, cfg.val_fraction)
        self.scaler = Standardizer().fit(x[:cut])
        xs = self.scaler(x, out=x if overwrite and x.dtype == np.float32 else None)
        heads = [LABELS.index(t) for t in cfg.tasks]
        if cfg.processes > 1:
            from vidrec.scoring.distributed import train_processes

            arrays = {"x_train": xs[:cut], "y_train": y[:cut, heads], "x_val": xs[cut:], "y_val": y[cut:, heads]}
            results = train_processes(arrays, cfg, cfg.processes, None if checkpoints is None else Path(checkpoints),
                                      log)  # fmt: skip
        else:
            where = (lambda i: None) if checkpoints is None else (lambda i: Path(checkpoints) / f"member{i}.pt")
            results = [train_classifier(xs[:cut], y[:cut, heads], xs[cut:], y[cut:, heads], c, where(i), log)
                       for i, c in enumerate(member_configs(cfg))]  # fmt: skip
        result = results[0]
        self.model = result.model if len(results) == 1 else Ensemble([r.model for r in results])
        raw = self.model.predict_proba(torch.from_numpy(xs[cut:])).numpy()  # (n_val, tasks)
        self.calibrators, self.base_rates = {}, {}
        self.report = {
            "train_examples": cut, "validation_examples": len(y) - cut, "architecture": cfg.architecture,
            "best_epoch": result.best_epoch, "train_loss": result.train_loss, "val_loss": result.val_loss,
            "ensemble": len(results), "member_best_epochs": [r.best_epoch for r in results],
            "validation_since": _iso(ts[cut]),  # where the rows the network never saw begin
        }  # fmt: skip
        for j, task in enumerate(LABELS):
            yv = y[cut:, j]
            self.report[f"positive_rate_{task}"] = float(y[:, j].mean())
            if task not in cfg.tasks:
                self.base_rates[task] = float(yv.mean())
                continue
            p = raw[:, cfg.tasks.index(task)]
            self.calibrators[task] = Calibrator(cfg.calibration).fit(p, yv)
            cal = cross_fitted(p, yv, cfg.calibration)  # out-of-sample for the report
            suffix = "" if task == "label" else f"_{task}"
            self.report |= {
                f"val_auc{suffix}": roc_auc(p, yv), f"val_log_loss_raw{suffix}": log_loss(p, yv),
                f"val_log_loss{suffix}": log_loss(cal, yv),
                f"val_ece_raw{suffix}": expected_calibration_error(p, yv, cfg.ece_bins),
                f"val_ece{suffix}": expected_calibration_error(cal, yv, cfg.ece_bins),
            }  # fmt: skip
        self.report["positive_rate"] = self.report["positive_rate_label"]
        return self

    @property
    def probability_columns(self) -> tuple[str, ...]:
        """The ``PROBABILITY_COLUMNS`` this ranker reports: those of the tasks it has a head for."""
        return tuple(c for t, c in PROBABILITY_COLUMNS.items() if t in self.config.tasks)

    @property
    def output_columns(self) -> tuple[str, ...]:
        """What scoring adds per candidate: the trained heads' probabilities, ``p_raw`` and ``score``."""
        return (*self.probability_columns, "p_raw", "score")

    def predict_matrix(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """:meth:`calibrate` of the network's output on unstandardised ``x``."""
        if self.model is None:
            raise VidrecError("the ranker is not fitted", "call fit() or MultiTaskRanker.load() first")
        return self.calibrate(self.model.predict_proba(torch.from_numpy(self.scaler(x))).numpy())

    def calibrate(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        """The network's probabilities (n, tasks) as :attr:`output_columns`.

        Each trained head's calibrated probability is reported; ``score`` is the value model of
        their strictly increasing calibrations (:meth:`Calibrator.ranking`), so two candidates
        the network tells apart never tie, and an order by ``score`` under the default value
        model is the order of ``p_raw``. Tasks without a head enter the value model at their
        validation base rate and are not reported: a constant says nothing about a video.
        """
        tasks = self.config.tasks
        out: dict[str, np.ndarray] = {}
        ranking: dict[str, np.ndarray] = {}
        for task, column in PROBABILITY_COLUMNS.items():
            if task in tasks:
                p = raw[:, tasks.index(task)]
                out[column], ranking[column] = self.calibrators[task](p), self.calibrators[task].ranking(p)
            else:
                ranking[column] = np.full(len(raw), self.base_rates[task], dtype=np.float64)
        out["p_raw"] = raw[:, 0].astype(np.float64)
        out["score"] = self.value.score(ranking)
        return out

    def _needs_history(self, embeddings: EmbeddingSource | None) -> bool:
        return embeddings is not None or self.cooc is not None

    def _cooccurrence(self, train: Dataset) -> CoOccurrence:
        """Co-occurrence of completions before ``examples_since`` (empty without it: no pre-period)."""
        cfg = self.config
        return CoOccurrence.build(
            train.events, train.videos, cfg.examples_since, cfg.examples.threshold, cfg.cooc_min_count,
            cfg.ease_videos, cfg.ease_lambda,
        )

    def _examples(self, train: Dataset, tables: EventTables, embeddings: EmbeddingSource | None) -> pl.DataFrame:
        cfg = self.config
        ex = replace(cfg.examples, mode=example_mode(train.events, cfg.examples))  # decided (and logged) once
        examples = self._since(build_examples(train.events, train.videos, ex))
        if ex.hard_negatives_per_watch and embeddings is not None and ex.mode == "watches":
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

    def bind(self, catalogue: Catalogue, live: LiveCounts) -> Self:
        """Score requests from ``catalogue`` and the live counts (see :meth:`score_request`)."""
        self.catalogue, self.live = catalogue, live
        self._cooc_rows = np.full(len(catalogue), -1, dtype=np.int64)
        if self.cooc is not None:
            rows = catalogue.rows_of(self.cooc.video_ids)
            known = rows >= 0
            self._cooc_rows[rows[known]] = np.flatnonzero(known)
        catalogue.subscribe(self._on_upload)
        return self

    def _on_upload(self, rows: np.ndarray, videos: pl.DataFrame) -> None:
        """Uploads were never co-completed: no row in the co-occurrence table."""
        self._cooc_rows = np.concatenate([self._cooc_rows, np.full(int(rows[-1]) + 1 - len(self._cooc_rows), -1)])

    def request_parts(self, requests: list[Request], rows: list[np.ndarray]) -> RequestInputs:
        """The model input of each request's ``rows`` (hydrated requests served together), in blocks:
        the per-candidate columns, the users' vectors and the candidate videos' vectors, each once
        (:class:`RequestInputs`). These are the features a training example of that user at its
        ``now`` has."""
        if self.catalogue is None or self.live is None:
            raise VidrecError("the ranker is not bound to a catalogue", "call bind(catalogue, live) first")
        cfg = self.config
        seg = np.repeat(np.arange(len(requests)), [len(r) for r in rows])
        feats = request_features(requests, rows, self.catalogue, self.live, cfg.features, self.n_categories)
        parts = [point_matrix(feats)]
        n = cfg.features.history_len
        histories = [r.recent_completed[len(r.recent_completed) - min(n, len(r.recent_completed)) :] for r in requests]
        emb = self.embeddings
        if self.cooc is not None:
            unit = emb.unit if isinstance(emb, TwoTowerEmbeddings) else None
            parts.append(request_similarity(rows, histories, unit, self.cooc, self._cooc_rows, cfg.similarity_recent))
        if emb is None:
            return RequestInputs(np.concatenate(parts, axis=1), None, seg, None, None)
        if not isinstance(emb, TwoTowerEmbeddings):
            raise VidrecError("request scoring needs the two-tower embeddings by catalogue row",
                              "load the ranker with TwoTowerEmbeddings(model, catalogue)")  # fmt: skip
        users = emb.request_vectors(requests, histories).astype(np.float32)  # (requests, d)
        unique, which = np.unique(np.concatenate(rows), return_inverse=True)
        videos = emb.row_vectors(unique).astype(np.float32)  # (distinct candidates, d)
        dot = np.einsum("nd,nd->n", videos[which], users[seg])[:, None]
        return RequestInputs(np.concatenate([*parts, dot], axis=1).astype(np.float32), users, seg, videos, which)

    def request_matrix(self, request: Request, rows: np.ndarray) -> np.ndarray:
        """The full model input (n, f) of ``rows`` for one request (before standardisation)."""
        return self.request_parts([request], [rows]).matrix(self._user_start())

    def _user_start(self) -> int:
        """Column where the user vector starts in the model input (see ``features.dense_names``)."""
        return len(dense_names(0, self.cooc is not None))

    def score_request(self, request: Request, rows: np.ndarray) -> dict[str, np.ndarray]:
        """:attr:`output_columns` (trained heads' probabilities, ``p_raw``, ``score``) of ``rows``."""
        return self.score_requests([request], [rows])[0]

    def score_requests(self, requests: list[Request], rows: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """:meth:`score_request` of requests served together: one feature pass and one network pass."""
        if self.model is None:
            raise VidrecError("the ranker is not fitted", "call fit() or MultiTaskRanker.load() first")
        sizes = [len(r) for r in rows]
        if not sum(sizes):
            return [{c: np.zeros(0) for c in self.output_columns} for _ in rows]
        inputs = self.request_parts(requests, rows)
        start = self._user_start()
        if inputs.users is not None and self.model.splits_input():  # shared columns multiplied once
            blocks = inputs.standardised(self.scaler, start)
            if self._split is None or self._split[0] != start:
                self._split = (start, traced_split(self.model, start, *blocks))
            with torch.no_grad():
                probs = self.calibrate(self._split[1](*blocks).numpy())
        else:
            with torch.no_grad():
                probs = self.predict_matrix(inputs.matrix(start))
        bounds = np.cumsum([0, *sizes])
        return [{c: v[a:b] for c, v in probs.items()} for a, b in zip(bounds[:-1], bounds[1:])]

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        """Calibrated P(completed) for a frame of point-in-time features (+ ``history`` with embeddings
        or similarity)."""
        return self.predict_matrix(self._matrix(frame))["p_complete"]

    def _matrix(self, frame: pl.DataFrame) -> np.ndarray:
        return feature_matrix(frame, self.embeddings, self.cooc, self.config.similarity_recent)

    def score(self, candidates: pl.DataFrame, users: pl.DataFrame, videos: pl.DataFrame, now: datetime) -> pl.DataFrame:
        """``candidates`` with :attr:`output_columns` (trained heads' probabilities, ``p_raw``, ``score``)."""
        if self.model is None or self.tables is None:
            raise VidrecError("the ranker is not fitted", "call fit() or MultiTaskRanker.load() first")
        if self.embedding_dim and self.embeddings is None:
            raise VidrecError(
                f"this ranker was trained with {self.embedding_dim}-d two-tower embeddings but has none",
                "pass the two-tower embedding source: MultiTaskRanker.load(directory, embeddings=...)",
            )
        columns = self.output_columns
        if candidates.is_empty():
            return candidates.with_columns(*(pl.lit(None, pl.Float64).alias(c) for c in columns))
        rows = candidates.select("user_id", "video_id").with_columns(ts=pl.lit(now).cast(TIMESTAMP))
        history = self._needs_history(self.embeddings)
        feats = point_in_time_features(rows, self.tables, videos, with_history=history)
        if history:
            feats = _history_from_state(feats, users, self.config.features.history_len)
        probs = self.predict_matrix(self._matrix(feats))
        return candidates.with_columns(*(pl.Series(c, probs[c], dtype=pl.Float64) for c in columns))

    def save(self, directory: str | Path) -> Path:
        """Write ``ranker.json`` (config, scaler, calibrators, report), ``model.pt`` and ``tables/``."""
        if self.model is None or self.tables is None:
            raise VidrecError("cannot save an unfitted ranker", "call fit() first")
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        meta = {
            "config": self.config.to_dict(), "embedding_dim": self.embedding_dim,
            "features": dense_names(self.embedding_dim, self.cooc is not None), "scaler": self.scaler.to_dict(),
            "calibrators": {t: c.to_dict() for t, c in self.calibrators.items()}, "base_rates": self.base_rates,
            "report": self.report, "n_categories": self.n_categories,
        }  # fmt: skip
        (root / "ranker.json").write_text(json.dumps(meta, indent=2))
        torch.save(self.model.state_dict(), root / "model.pt")
        self.tables.save(root / "tables")
        if self.cooc is not None:
            self.cooc.save(root / "similarity")
        return root

    @classmethod
    def load(
        cls, directory: str | Path, embeddings: EmbeddingSource | None = None, value: ValueModel | None = None
    ) -> Self:
        """Read a ranker written by :meth:`save`; ``embeddings`` must match the trained dimension.

        ``value`` overrides the saved value model (re-weighting needs no retraining).
        """
        root = Path(directory)
        if not (root / "ranker.json").exists():
            raise VidrecError(f"{root}: no ranker.json here", "pass the directory written by MultiTaskRanker.save")
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
        similarity = (root / "similarity").exists()
        if "calibrators" not in meta or meta.get("features") != dense_names(dim, similarity):
            raise VidrecError(
                f"{root}: a ranker saved by an older vidrec (its features differ from this version's)",
                "retrain it (vidrec train)",
            )
        ranker.calibrators = {t: Calibrator.from_dict(c) for t, c in meta["calibrators"].items()}
        ranker.base_rates = {t: float(r) for t, r in meta["base_rates"].items()}
        ranker.report = meta["report"]
        if value is not None:
            ranker.with_value(value)
        model = build_model(len(meta["features"]), ranker.config)
        model.load_state_dict(torch.load(root / "model.pt", weights_only=True))
        ranker.model = model.eval()
        ranker.n_categories = int(meta["n_categories"])
        ranker._tables_dir = root / "tables"  # read on first offline use only (score, refresh)
        if (root / "similarity").exists():
            ranker.cooc = CoOccurrence.load(root / "similarity")
        return ranker


MLPRanker = MultiTaskRanker
"""The name the pipeline knows the ranker by (``architecture="mlp"`` gives the first ranker's network)."""


class _threads:
    """Torch threads set for a block and restored after (None: leave them)."""

    def __init__(self, n: int | None) -> None:
        self.n, self.before = n, torch.get_num_threads()

    def __enter__(self) -> None:
        if self.n is not None:
            torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.before)


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



def _iso(ts: np.generic) -> str | None:
    """A numpy timestamp (UTC, as Polars exports it) as an ISO string with its zone; None if not a time."""
    if not np.issubdtype(np.asarray(ts).dtype, np.datetime64):
        return None
    return from_epoch_us(int(np.asarray(ts).astype("datetime64[us]").astype(np.int64))).isoformat()
