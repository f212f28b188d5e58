"""The orchestrator: candidate generation -> scoring -> re-ranking, one pass per request.

Each stage sits behind its interface (``CandidateGenerator``, ``Ranker``, ``ReRanker``);
the pipeline only composes them, so swapping an implementation never touches this file.
Stages are built from the config (generators from :mod:`vidrec.candidates.registry`),
bound to one :class:`~vidrec.catalogue.Catalogue` and one
:class:`~vidrec.features.live.LiveCounts`, and read one hydrated
:class:`~vidrec.request.Request`. :meth:`Pipeline.run` returns every stage's output
(:class:`~vidrec.result.Result`); the candidates, scored and final views are views of it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal, cast

import polars as pl

from vidrec.candidates.base import CandidateGenerator
from vidrec.candidates.generators import TwoTowerGenerator
from vidrec.candidates.merge import merge_many
from vidrec.candidates.registry import GENERATORS
from vidrec.candidates.two_tower.config import TwoTowerConfig
from vidrec.candidates.two_tower.model import TwoTowerModel
from vidrec.candidates.two_tower.source import TwoTowerEmbeddings
from vidrec.candidates.two_tower.train import fit_two_tower
from vidrec.catalogue import Catalogue
from vidrec.config import PipelineConfig
from vidrec.data.dataset import Dataset
from vidrec.errors import DataError
from vidrec.features.live import LiveCounts
from vidrec.progress import peak_memory_gib
from vidrec.request import Request
from vidrec.reranking.config import ReRankConfig
from vidrec.reranking.reranker import DefaultReRanker
from vidrec.result import Result
from vidrec.scoring.ranker import MultiTaskRanker

Stage = Literal["candidates", "scored", "final"]
STAGES: tuple[str, ...] = ("candidates", "scored", "final")
Logger = Callable[[str], None]
RANKERS = {"multitask": MultiTaskRanker}
RERANKERS = {"default": DefaultReRanker}
log = logging.getLogger(__name__)


def ranker_cut(events: pl.DataFrame, period: float) -> datetime:
    """The time from which the ranker learns: the last ``period`` of watches by time."""
    watches = events.filter(pl.col("event") == "watch")["ts"].sort()
    if watches.len() == 0:
        raise ValueError("the training data holds no watch event")
    return watches.gather(int((1.0 - period) * (watches.len() - 1))).item()


class Pipeline:
    """Composes the three stages; ``fit`` trains them all, ``run`` answers one request in one pass."""

    def __init__(
        self,
        config: PipelineConfig,
        generators: list[CandidateGenerator],
        ranker: MultiTaskRanker,
        reranker: DefaultReRanker,
        feature_model: TwoTowerModel | None = None,
    ) -> None:
        self.config = config
        self.generators = generators
        self.ranker = ranker
        self.reranker = reranker
        self.feature_model = feature_model
        self.timings: dict[str, float] = {}
        self.peaks: dict[str, float] = {}  # peak resident GiB of the training process after each stage
        self.budget: dict = {}  # what the re-ranking budget measured at training (rerank_budget.py)
        self.catalogue: Catalogue | None = None
        self.live: LiveCounts | None = None

    @classmethod
    def fit(cls, train: Dataset, config: PipelineConfig | None = None, log: Logger = log.info,
            checkpoints: str | Path | None = None, two_tower: str | Path | None = None) -> Pipeline:  # fmt: skip
        """Train every stage on ``train``; the clock is the end of its events.

        ``checkpoints``: a directory where the training loops keep their checkpoints, one
        folder per stage; fitting again with the same data and config resumes from them.
        ``two_tower``: the folder of a retrieval two-tower trained separately (``vidrec
        train-two-tower``, for example on several machines or a GPU): indexed, not trained."""
        stage_dir = (lambda name: None) if checkpoints is None else (lambda name: Path(checkpoints) / name)
        config = config or PipelineConfig()
        if train.events.height == 0:
            raise DataError("no events to train on", "train on a dataset with watch or like events "
                            "(`vidrec ingest` says which rows were set aside and why)")  # fmt: skip
        now = cast(datetime, train.events["ts"].max()) + timedelta(microseconds=1)
        catalogue = Catalogue(train.videos)
        timings: dict[str, float] = {}
        peaks = {"data": peak_memory_gib()}
        generators = []
        for name in config.candidates.generators:
            t0 = time.perf_counter()
            log(f"[candidates] training {name}")
            entry = GENERATORS[name]
            gen = entry.build(getattr(config, name), config.index, log)
            gen.checkpoints = stage_dir(f"candidates.{name}")
            if name == "two_tower" and two_tower is not None:
                cast(TwoTowerGenerator, gen).pretrained = Path(two_tower)
            gen.fit(train, now, catalogue)
            if name == "two_tower" and two_tower is None:  # the settings its search chose are the pipeline's now
                config = replace(config, sections={**config.sections, name: cast(TwoTowerGenerator, gen).config})
            generators.append(gen)
            timings[f"candidates.{name}"] = time.perf_counter() - t0
            peaks[f"candidates.{name}"] = peak_memory_gib()
        t0 = time.perf_counter()
        cut = ranker_cut(train.events, config.ranker_period)
        log(f"[scoring] two-tower for ranking features on events before {cut:%Y-%m-%d %H:%M}")
        early = train.events.filter(pl.col("ts") < cut)
        feature_config, length = _feature_config(config, generators)
        feature_model, _ = fit_two_tower(
            early, train.videos, feature_config, log, checkpoints=stage_dir("scoring.two_tower_features"), epochs=length
        )
        timings["scoring.two_tower_features"] = time.perf_counter() - t0
        peaks["scoring.two_tower_features"] = peak_memory_gib()
        embeddings = TwoTowerEmbeddings(feature_model, catalogue)
        log(f"[scoring] training the ranker on examples from {cut:%Y-%m-%d %H:%M}")
        ranker = RANKERS[config.ranker_kind](replace(config.ranker, examples_since=cut)).fit(
            train, embeddings, checkpoints=stage_dir("scoring.ranker"), log=log
        )
        timings["scoring"] = time.perf_counter() - t0
        timings["scoring.ranker"] = timings["scoring"] - timings["scoring.two_tower_features"]
        peaks["scoring.ranker"] = peak_memory_gib()
        pipe = cls(config, generators, ranker, RERANKERS[config.reranker_kind](config.rerank), feature_model)
        pipe.timings, pipe.peaks = timings, peaks
        pipe.catalogue = catalogue
        return pipe

    def bind(self, catalogue: Catalogue, live: LiveCounts) -> Pipeline:
        """Serve requests over ``catalogue`` and the live counts: every stage reads these two."""
        self.catalogue, self.live = catalogue, live
        for gen in self.generators:
            if gen.catalogue is not catalogue:
                gen.bind(catalogue)
        embeddings = self.ranker.embeddings
        stale = not isinstance(embeddings, TwoTowerEmbeddings) or embeddings.catalogue is not catalogue
        if self.feature_model is not None and self.ranker.embedding_dim and stale:
            self.ranker.embeddings = TwoTowerEmbeddings(self.feature_model, catalogue)
        self.ranker.bind(catalogue, live)
        self.reranker.bind(catalogue, live, self.video_vectors())
        return self

    def video_vectors(self) -> Callable | None:
        """Retrieval embeddings by catalogue row (the re-ranker's diversity), from the two-tower index."""
        tower = next((g for g in self.generators if g.name == "two_tower"), None)
        index = getattr(tower, "index", None)
        if index is None:
            return None
        return lambda rows: index.vectors_for_search()[rows]

    def run(self, request: Request, until: Stage = "final") -> Result:
        """One pass over the stages for ``request``, up to ``until``: every stage's output."""
        return self.run_many([request], until)[0]

    def run_many(self, requests: list[Request], until: Stage = "final") -> list[Result]:
        """:meth:`run` for requests that arrived together: each stage takes them all at once (the
        user towers, the feature pass and the ranker's network run once for all of them)."""
        if until not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {until!r}")
        if any(r.k < 1 for r in requests):
            raise ValueError(f"k must be at least 1, got {min(r.k for r in requests)}")
        cc = self.config.candidates
        share = 1.0 / max(len(requests), 1)
        t0 = time.perf_counter()
        named: list[list] = [[] for _ in requests]
        for gen in self.generators:
            for mine, nominations in zip(named, gen.nominate_many(requests, cc.per_generator)):
                mine.append((gen.name, nominations))
        merged = merge_many(named, quotas=cc.quotas, target=cc.target)
        results = [Result(r, c) for r, c in zip(requests, merged)]
        t1 = time.perf_counter()
        for r in results:
            r.times["candidates"] = (t1 - t0) * share
        if until == "candidates":
            return results
        scored = self.ranker.score_requests(requests, [r.candidates.rows for r in results])
        t2 = time.perf_counter()
        for r, s in zip(results, scored):
            r.scored, r.times["scoring"] = s, (t2 - t1) * share
        if until == "scored":
            return results
        slates = self.reranker.rerank_requests(
            requests, [r.candidates.rows for r in results], [s["score"] for s in scored], [q.k for q in requests]
        )
        for r, slate in zip(results, slates):
            r.slate = slate
        t3 = time.perf_counter()
        for r in results:
            r.times["reranking"] = (t3 - t2) * share
        return results

    def save(self, directory: str | Path) -> Path:
        """Write every stage into ``directory`` (``candidates/``, ``scoring/``, ``reranking/``)."""
        root = Path(directory)
        for gen in self.generators:
            gen.save(_mkdir(root / "candidates" / gen.name))
        self.ranker.save(_mkdir(root / "scoring" / "ranker"))
        if self.feature_model is not None:
            self.feature_model.save(_mkdir(root / "scoring" / "two_tower_features"))
        self.config.rerank.save(_mkdir(root / "reranking") / "config.json")
        if self.budget:
            (root / "reranking" / "budget.json").write_text(json.dumps(self.budget, indent=2, default=str))
        self.config.save(root / "config.json")
        (root / "timings.json").write_text(json.dumps(self.timings, indent=2))
        if self.peaks:
            (root / "memory.json").write_text(json.dumps({"peak_gib_after": self.peaks}, indent=2))
        return root

    @classmethod
    def load(cls, directory: str | Path) -> Pipeline:
        """Rebuild a pipeline written by :meth:`save` (unbound: :meth:`bind` it to a catalogue)."""
        root = Path(directory)
        config = PipelineConfig.from_dict(json.loads((root / "config.json").read_text()))
        generators = [GENERATORS[name].kind.load(root / "candidates" / name) for name in config.candidates.generators]
        feature_dir = root / "scoring" / "two_tower_features"
        feature_model = TwoTowerModel.load(feature_dir) if feature_dir.exists() else None
        ranker = RANKERS[config.ranker_kind].load(root / "scoring" / "ranker", None, value=config.ranker.value)
        rerank_cfg = ReRankConfig.load(root / "reranking" / "config.json")
        return cls(config, generators, ranker, RERANKERS[config.reranker_kind](rerank_cfg), feature_model)


def _feature_config(
    config: PipelineConfig, generators: list[CandidateGenerator]
) -> tuple[TwoTowerConfig, float | None]:
    """The ranker's feature two-tower trains with the settings (``config.two_tower``, as the
    retrieval model's search chose them) and as long as its validation chose (None: the
    retrieval model did not validate, so the configured epochs)."""
    for gen in generators:
        report = getattr(gen, "report", None)
        if gen.name == "two_tower" and report is not None and report.best_epoch:
            return config.two_tower, float(report.best_epoch)
    return config.two_tower, None


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
