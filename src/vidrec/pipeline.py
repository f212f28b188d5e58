"""The orchestrator: candidate generation -> scoring -> re-ranking.

Each stage sits behind its interface (``CandidateGenerator``, ``Ranker``, ``ReRanker``);
the pipeline only composes them, so swapping an implementation never touches this file.
Every row that leaves carries its provenance: the generators that nominated it, its
retrieval score, the ranker's probability and the re-ranker's adjustments.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import polars as pl

from vidrec.candidates.base import CandidateGenerator
from vidrec.candidates.cowatch import CoWatchGenerator
from vidrec.candidates.creators import CreatorsGenerator
from vidrec.candidates.demographic import DemographicGenerator
from vidrec.candidates.fresh import FreshGenerator
from vidrec.candidates.generators import TrendingGenerator, TwoTowerGenerator
from vidrec.candidates.merge import merge_candidates
from vidrec.candidates.two_tower.config import TwoTowerConfig
from vidrec.candidates.two_tower.export import video_embeddings
from vidrec.candidates.two_tower.model import TwoTowerModel
from vidrec.candidates.two_tower.source import TwoTowerEmbeddings
from vidrec.candidates.two_tower.train import fit_two_tower
from vidrec.config import PipelineConfig
from vidrec.data.dataset import Dataset
from vidrec.reranking.base import ReRanker
from vidrec.reranking.config import ReRankConfig
from vidrec.reranking.reranker import DefaultReRanker
from vidrec.scoring.base import EmbeddingSource, Ranker
from vidrec.scoring.ranker import MLPRanker

Stage = Literal["candidates", "scored", "final"]
STAGES: tuple[str, ...] = ("candidates", "scored", "final")
Logger = Callable[[str], None]
GENERATOR_TYPES: dict[str, type[CandidateGenerator]] = {
    "two_tower": TwoTowerGenerator,
    "trending": TrendingGenerator,
    "cowatch": CoWatchGenerator,
    "fresh": FreshGenerator,
    "creators": CreatorsGenerator,
    "demographic": DemographicGenerator,
}
OUTPUT_LEAD = ["user_id", "rank", "video_id", "score", "source"]


def ranker_cut(events: pl.DataFrame, period: float) -> datetime:
    """The time from which the ranker learns: the last ``period`` of watches by time."""
    watches = events.filter(pl.col("event") == "watch")["ts"].sort()
    if watches.len() == 0:
        raise ValueError("the training data holds no watch event")
    return watches.gather(int((1.0 - period) * (watches.len() - 1))).item()


class Pipeline:
    """Composes the three stages; ``fit`` trains them all, ``run`` serves a batch of users."""

    def __init__(
        self,
        config: PipelineConfig,
        generators: list[CandidateGenerator],
        ranker: Ranker,
        reranker: ReRanker,
        feature_model: TwoTowerModel | None = None,
    ) -> None:
        self.config = config
        self.generators = generators
        self.ranker = ranker
        self.reranker = reranker
        self.feature_model = feature_model
        self._video_vectors: TwoTowerEmbeddings | WithUploads | None = None
        self.timings: dict[str, float] = {}
        self.unavailable = pl.Series("video_id", [], dtype=pl.String)  # never nominated, whatever a generator keeps

    @classmethod
    def fit(cls, train: Dataset, config: PipelineConfig | None = None, log: Logger = print) -> "Pipeline":
        """Train every stage on ``train``; the clock is the end of its events."""
        config = config or PipelineConfig()
        now = train.events["ts"].max() + timedelta(microseconds=1)
        timings: dict[str, float] = {}
        generators = []
        for name in config.candidates.generators:
            t0 = time.perf_counter()
            log(f"[candidates] training {name}")
            gen = _new_generator(name, config, log).fit(train, now)
            generators.append(gen)
            timings[f"candidates.{name}"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        cut = ranker_cut(train.events, config.ranker_period)
        log(f"[scoring] two-tower for ranking features on events before {cut:%Y-%m-%d %H:%M}")
        early = train.events.filter(pl.col("ts") < cut)
        feature_model, _ = fit_two_tower(early, train.videos, _feature_config(config, generators), log)
        embeddings = TwoTowerEmbeddings(feature_model, train.videos)
        log(f"[scoring] training the ranker on examples from {cut:%Y-%m-%d %H:%M}")
        ranker = MLPRanker(replace(config.ranker, examples_since=cut)).fit(train, embeddings)
        timings["scoring"] = time.perf_counter() - t0
        pipe = cls(config, generators, ranker, DefaultReRanker(config.rerank), feature_model)
        pipe.timings = timings
        pipe.unavailable = _unavailable(train.videos)
        return pipe

    def candidates(self, users: pl.DataFrame, now: datetime) -> pl.DataFrame:
        """Stage 1: every generator nominates, the merger deduplicates and attributes."""
        cc = self.config.candidates
        frames = [g.generate(users, cc.per_generator, now) for g in self.generators]
        if len(self.unavailable):  # removed videos never leave stage 1, even from a generator without a hook
            gone = self.unavailable.implode()
            frames = [f.filter(~pl.col("video_id").is_in(gone)) for f in frames]
        return merge_candidates(frames, quotas=cc.quotas, target=cc.target)

    def add_videos(self, videos: pl.DataFrame) -> None:
        """Make new uploads (validated catalogue rows) retrievable and scorable at once, no retraining.

        Generators with an ``add_videos`` hook take them (the two-tower embeds them from
        their content and adds them to its index; fresh and creators put them on their
        shelves); the ranker's and the diversity's embeddings are extended the same way.
        """
        if videos.height == 0:
            return
        for gen in self.generators:
            hook = getattr(gen, "add_videos", None)
            if hook is not None:
                hook(videos)
        source = getattr(self.ranker, "embeddings", None)
        if self.feature_model is not None and source is not None:
            self.ranker.embeddings = WithUploads.extend(source, self.feature_model, videos)  # type: ignore[attr-defined]
        if self._video_vectors is not None:
            self._video_vectors = WithUploads.extend(self._video_vectors, self._video_vectors.model, videos)
        self.unavailable = pl.concat([self.unavailable, _unavailable(videos)]).unique()  # uploaded unavailable

    def remove_videos(self, video_ids: pl.Series | list[str]) -> None:
        """Take videos off the platform: no stage returns them from the next request on."""
        ids = pl.Series("video_id", video_ids, dtype=pl.String)
        for gen in self.generators:
            hook = getattr(gen, "remove_videos", None)
            if hook is not None:
                hook(ids)
        self.unavailable = pl.concat([self.unavailable, ids]).unique()

    def run(
        self,
        users: pl.DataFrame,
        videos: pl.DataFrame,
        now: datetime,
        k: int = 10,
        stage: Stage = "final",
        debug: bool = False,
        events: pl.DataFrame | None = None,
    ) -> pl.DataFrame:
        """Recommendations for the users in ``users`` (their current state), up to ``stage``.

        ``events`` (the platform's log so far) lets re-ranking apply creator fatigue, the
        re-watch policy and creator fairness; without it those rules see no history.

        Returns ``user_id, rank, video_id, score, source`` and the per-stage columns
        (``sources``, ``retrieval_score``, ``p_complete``, ``final_score``, ``adjustments``).
        """
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        cands = self.candidates(users, now)
        if stage == "candidates":
            out = cands.filter(pl.col("rank") <= k).with_columns(
                score=pl.coalesce(pl.col("retrieval_score"), *_source_scores(cands))
            )
            return _finish(out)
        cands = cands.rename({"rank": "candidate_rank"})
        scored = self.ranker.score(cands, users, videos, now)
        if stage == "scored":
            out = scored.sort("user_id", "score", descending=[False, True]).with_columns(
                rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("user_id")
            )
            return _finish(out.filter(pl.col("rank") <= k))
        vectors = self.video_vectors(videos)
        final = self.reranker.rerank(
            scored, users, videos, now, k, debug=debug, events=events,
            video_vectors=None if vectors is None else vectors.video_vectors,
        )  # fmt: skip
        return _finish(final.with_columns(score=pl.col("final_score")))

    def video_vectors(self, videos: pl.DataFrame) -> TwoTowerEmbeddings | WithUploads | None:
        """The retrieval two-tower's video embeddings (for diversity), computed once."""
        if self._video_vectors is None:
            model = next((g.model for g in self.generators if isinstance(g, TwoTowerGenerator)), None)
            if model is not None:
                self._video_vectors = TwoTowerEmbeddings(model, videos)
        return self._video_vectors

    def save(self, directory: str | Path) -> Path:
        """Write every stage into ``directory`` (``candidates/``, ``scoring/``, ``reranking/``)."""
        root = Path(directory)
        for gen in self.generators:
            gen.save(_mkdir(root / "candidates" / gen.name))
        self.ranker.save(_mkdir(root / "scoring" / "ranker"))
        if self.feature_model is not None:
            self.feature_model.save(_mkdir(root / "scoring" / "two_tower_features"))
        self.config.rerank.save(_mkdir(root / "reranking") / "config.json")
        self.config.save(root / "config.json")
        (root / "timings.json").write_text(json.dumps(self.timings, indent=2))
        return root

    @classmethod
    def load(cls, directory: str | Path, videos: pl.DataFrame) -> "Pipeline":
        """Rebuild a pipeline written by :meth:`save`; ``videos`` is the catalogue."""
        root = Path(directory)
        config = PipelineConfig.from_dict(json.loads((root / "config.json").read_text()))
        generators = [
            GENERATOR_TYPES[name].load(root / "candidates" / name) for name in config.candidates.generators
        ]
        feature_dir = root / "scoring" / "two_tower_features"
        feature_model = TwoTowerModel.load(feature_dir) if feature_dir.exists() else None
        embeddings = TwoTowerEmbeddings(feature_model, videos) if feature_model else None
        ranker = MLPRanker.load(root / "scoring" / "ranker", embeddings, value=config.ranker.value)
        rerank_cfg = ReRankConfig.load(root / "reranking" / "config.json")
        pipe = cls(config, generators, ranker, DefaultReRanker(rerank_cfg), feature_model)
        pipe.unavailable = _unavailable(videos)
        return pipe


def _new_generator(name: str, config: PipelineConfig, log: Logger) -> CandidateGenerator:
    """A fresh generator of type ``name`` built from its config section (same name)."""
    if name == "two_tower":
        return TwoTowerGenerator(config.two_tower, config.index, log=log)
    return GENERATOR_TYPES[name](getattr(config, name))  # type: ignore[call-arg]


def _feature_config(config: PipelineConfig, generators: list[CandidateGenerator]) -> TwoTowerConfig:
    """The ranker's feature two-tower reuses the epoch count early stopping chose for retrieval."""
    for gen in generators:
        report = getattr(gen, "report", None)
        if isinstance(gen, TwoTowerGenerator) and report is not None and report.best_epoch:
            return replace(config.two_tower, val_fraction=0.0, epochs=report.best_epoch)
    return config.two_tower


class WithUploads:
    """An embedding source plus vectors of videos uploaded after it was built (same model).

    Implements ``scoring.base.EmbeddingSource``: uploads are embedded once, from their
    content, by the model that embedded the rest; everything else is the base's answer.
    """

    def __init__(self, base: EmbeddingSource, model: TwoTowerModel, ids: pl.Series, vectors: np.ndarray) -> None:
        self.base, self.model = base, model
        self._lookup = pl.DataFrame({"video_id": pl.Series(ids, dtype=pl.String), "row": np.arange(len(ids))})
        self._latest = self._lookup.unique("video_id", keep="last")  # later rows win; deduplicated once
        self._vectors = vectors  # (n_uploads, d)

    @classmethod
    def extend(cls, source: EmbeddingSource, model: TwoTowerModel, videos: pl.DataFrame) -> "WithUploads":
        """``source`` with ``videos`` embedded by ``model`` (later rows win over earlier ones)."""
        ids, vectors = video_embeddings(model, videos)
        if isinstance(source, WithUploads):
            ids = pl.concat([source._lookup["video_id"], ids])
            vectors = np.vstack([source._vectors, vectors])
            source = source.base
        return cls(source, model, ids, vectors)

    @property
    def dim(self) -> int:
        return int(self.base.dim)

    def video_vectors(self, video_ids: pl.Series) -> np.ndarray:
        """float32 (n, d): uploads' own vectors, the base's for the rest."""
        out = np.asarray(self.base.video_vectors(video_ids), dtype=np.float32).copy()
        rows = (
            pl.DataFrame({"video_id": pl.Series(video_ids, dtype=pl.String)})
            .join(self._latest, on="video_id", how="left", maintain_order="left")["row"]
            .fill_null(-1)
            .to_numpy()
        )
        hit = rows >= 0
        out[hit] = self._vectors[rows[hit]]
        return out

    def user_vectors(self, user_ids: pl.Series, histories: pl.Series, **context: Any) -> np.ndarray:
        """The base's user tower (uploads change no user)."""
        return self.base.user_vectors(user_ids, histories, **context)


def _unavailable(videos: pl.DataFrame) -> pl.Series:
    """Ids of the catalogue's unavailable (removed) videos."""
    return videos.filter(~pl.col("available"))["video_id"].rename("video_id")


def _source_scores(cands: pl.DataFrame) -> list[pl.Expr]:
    return [pl.col(c) for c in cands.columns if c.startswith("score_")]


def _finish(frame: pl.DataFrame) -> pl.DataFrame:
    """Put the common output columns first and the source as a readable string."""
    out = frame.with_columns(source=pl.col("sources").list.join("+"))
    rest = [c for c in out.columns if c not in OUTPUT_LEAD]
    return out.select(OUTPUT_LEAD + rest).sort("user_id", "rank", nulls_last=True)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
