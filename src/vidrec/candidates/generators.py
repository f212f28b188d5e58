"""Candidate generators: the two-tower retriever behind a top-K index, and trending videos."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Self

import numpy as np
import polars as pl

from vidrec.candidates.base import CandidateGenerator, Nominations, check_k
from vidrec.candidates.catalogue import CatalogueKeys
from vidrec.candidates.common import first_eligible
from vidrec.candidates.index import IndexConfig, TopKIndex, build_index, load_index
from vidrec.candidates.two_tower.config import TwoTowerConfig
from vidrec.candidates.two_tower.distributed import REPORT_FILE, read_report
from vidrec.candidates.two_tower.export import RequestInputs, save_video_embeddings, video_embeddings
from vidrec.candidates.two_tower.inputs import join_demographics
from vidrec.candidates.two_tower.model import TwoTowerModel
from vidrec.candidates.two_tower.train import Logger, TrainReport, fit_two_tower
from vidrec.catalogue import Catalogue
from vidrec.data.dataset import Dataset
from vidrec.data.schema import TIMESTAMP, epoch_us
from vidrec.request import Request

DEMOGRAPHICS_FILE = "user_demographics.parquet"

_log = logging.getLogger(__name__)


def _ts(now: datetime) -> pl.Expr:
    return pl.lit(now).cast(TIMESTAMP)


class TwoTowerGenerator(CandidateGenerator):
    """Retrieves by inner product of the user's current embedding with offline video embeddings.

    Index keys come from :class:`CatalogueKeys`: videos the model was trained on keep their
    vocabulary key, uploads added later (embedded from their content) get keys after them.
    Bound to a catalogue, the index's positions are the catalogue's rows: a request's
    exclusions go to FAISS as rows, and an upload is embedded and searchable at once.
    """

    name = "two_tower"

    def __init__(
        self,
        config: TwoTowerConfig | None = None,
        index_config: IndexConfig | None = None,
        exact: bool = False,
        log: Logger = _log.info,
    ) -> None:
        self.config = config or TwoTowerConfig()
        self.index_config = index_config or IndexConfig()
        self.exact = exact
        self.log = log
        self.model: TwoTowerModel | None = None
        self.index: TopKIndex | None = None
        self.report: TrainReport | None = None
        self.catalogue_keys: CatalogueKeys | None = None
        self.catalogue = None
        self._inputs: RequestInputs | None = None
        self._demographics: pl.DataFrame | None = None  # user_id + demographic columns seen at fit
        self.pretrained: Path | None = None  # a trained model's folder: fit indexes it instead of training one

    def fit(self, train: Dataset, now: datetime, catalogue: Catalogue | None = None) -> Self:
        if self.pretrained is not None:  # trained elsewhere (train-two-tower, several processes or a GPU)
            self.model = TwoTowerModel.load(self.pretrained)
            self.config = self.model.config
            report_file = Path(self.pretrained) / REPORT_FILE
            self.report = read_report(Path(self.pretrained)) if report_file.exists() else None
            self.log(f"[candidates] two-tower from {self.pretrained} (not trained here)")
        else:
            events = train.events.filter(pl.col("ts") < _ts(now))
            self.model, self.report = fit_two_tower(
                events, train.videos, self.config, self.log, users=train.users, checkpoints=self.checkpoints
            )
            self.config = self.model.config  # with the values a hyperparameter search chose
        self._demographics = _demographic_table(self.model, train.users)
        self.catalogue_keys = None
        self.index_videos(train.videos)
        return self.bind(catalogue or Catalogue(train.videos))

    def index_videos(self, videos: pl.DataFrame) -> None:
        """(Re)build the index from the model's embeddings of ``videos`` (in order); unavailable ones masked.

        Videos outside the model's vocabulary are embedded from their content and keyed
        after it; keys already given never change.
        """
        model = self._require_model()
        ids, vectors = video_embeddings(model, videos)
        keys = self._keys().extend(ids)
        # Structure chosen by corpus size; approximate search tuned to the config's target recall.
        self.index = build_index(model.config.embedding_dim, self.index_config, self.exact, ids=keys, vectors=vectors)
        if getattr(self.index, "tuning", None) is not None:
            self.log(f"two-tower index: {self.index.tuning.summary()}")  # type: ignore[attr-defined]
        self.index.remove(keys[~videos["available"].to_numpy()])
        self._chunks = [(ids, vectors)]  # (ids, vectors) per index_videos / upload

    def bind(self, catalogue: Catalogue) -> Self:
        """Serve from ``catalogue``: index positions must be its rows (re-indexed in its order if not)."""
        model, index = self._require_model(), self._require_index()
        model.eval()
        keys = self._keys()
        n = len(catalogue)
        in_order = len(index) == n and keys.to_ids(index.ids).to_list() == catalogue.ids
        if not in_order:
            self.log(f"two-tower: re-indexing {n:,} videos in catalogue order")
            self.index_videos(catalogue.frame)
        self._inputs = RequestInputs(model, model.vocab.video_index(pl.Series(catalogue.ids, dtype=pl.String)))
        self.catalogue = catalogue
        catalogue.subscribe(self._on_upload)
        catalogue.on_remove(self._on_remove)
        return self

    def _on_upload(self, rows: np.ndarray, videos: pl.DataFrame) -> None:
        """Embed new uploads from their content and add them to the index: searchable at once."""
        model, index = self._require_model(), self._require_index()
        if len(index) != rows[0]:
            raise RuntimeError(f"two-tower index holds {len(index)} videos, the upload starts at row {rows[0]}")
        ids, vectors = video_embeddings(model, videos)
        keys = self._keys().extend(ids)
        index.add(keys, vectors)
        index.remove(keys[~videos["available"].to_numpy()])
        assert self._inputs is not None
        self._inputs.extend(int(rows[-1]) + 1, model.vocab.video_index(ids))
        self._chunks.append((ids, vectors))

    def _on_remove(self, rows: np.ndarray) -> None:
        index = self._require_index()
        index.remove(index.ids[rows[rows < len(index)]])

    def nominate(self, request: Request, k: int) -> Nominations:
        return self.nominate_many([request], k)[0]

    def nominate_many(self, requests: list[Request], k: int) -> list[Nominations]:
        """The user tower once for all the requests, then one filtered index search each."""
        check_k(k)
        model, index, catalogue = self._require_model(), self._require_index(), self.require_catalogue()
        assert self._inputs is not None
        queries = self._inputs.vectors(requests)  # (requests, d)
        out = []
        for request, query in zip(requests, queries):
            exclude = np.union1d(request.excluded, catalogue.not_yet_uploaded(request.now_us))
            scores, rows = index.search_positions(query, k, exclude)
            out.append(Nominations(rows, scores.astype(np.float64) / model.config.temperature))
        return out

    def serving_state(self, users: pl.DataFrame) -> pl.DataFrame:
        """``users`` (user state) with the demographic columns the model was trained on (offline use)."""
        if self._demographics is None:
            return users
        return join_demographics(users, self._demographics, self._require_model().vocab.user_fields)

    def generate(self, users: pl.DataFrame, k: int, now: datetime) -> pl.DataFrame:
        """As :meth:`CandidateGenerator.generate`, with the demographics seen at fit as profiles."""
        return super().generate(self.serving_state(users), k, now)

    def _require_model(self) -> TwoTowerModel:
        if self.model is None:
            raise RuntimeError("TwoTowerGenerator: call fit() or load() before generate()")
        return self.model

    def _require_index(self) -> TopKIndex:
        if self.index is None:
            raise RuntimeError("TwoTowerGenerator: call fit() or load() before adding or removing videos")
        return self.index

    def _keys(self) -> CatalogueKeys:
        if self.catalogue_keys is None:
            self.catalogue_keys = CatalogueKeys(self._require_model().vocab.videos)
        return self.catalogue_keys

    def save(self, directory: str | Path) -> Path:
        root = Path(directory)
        self._require_model().save(root / "model")
        if self.index is None:
            raise RuntimeError("TwoTowerGenerator: nothing to save before fit()")
        self.index.save(root / "index")
        ids = pl.concat([c[0] for c in self._chunks])
        save_video_embeddings(root / "video_embeddings.parquet", ids, np.vstack([c[1] for c in self._chunks]))
        self._keys().save(root)
        if self._demographics is not None:
            self._demographics.write_parquet(root / DEMOGRAPHICS_FILE)
        meta: dict = {"exact": self.exact, "index": asdict(self.index_config)}
        if self.report is not None:  # what validation chose: the epochs and any hyperparameter search's trials
            meta["training"] = {"best_epoch": self.report.best_epoch, "best_recall": self.report.best_recall,
                                "search": self.report.search}  # fmt: skip
        (root / "generator.json").write_text(json.dumps(meta))
        return root

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        """Read a generator written by :meth:`save` (bind it to a catalogue before nominating)."""
        root = Path(directory)
        meta = json.loads((root / "generator.json").read_text())
        model = TwoTowerModel.load(root / "model")
        gen = cls(model.config, IndexConfig(**meta["index"]), meta["exact"])
        gen.model = model
        gen.index = load_index(root / "index")
        gen.catalogue_keys = CatalogueKeys.load(root, model.vocab.videos)
        frame = pl.read_parquet(root / "video_embeddings.parquet")
        gen._chunks = [(frame["video_id"], frame["embedding"].to_numpy())]
        if (root / DEMOGRAPHICS_FILE).exists():
            gen._demographics = pl.read_parquet(root / DEMOGRAPHICS_FILE)
        return gen


def _demographic_table(model: TwoTowerModel, users: pl.DataFrame | None) -> pl.DataFrame | None:
    """The users table's demographic columns the model reads (None when it reads none)."""
    fields = model.vocab.user_fields
    if not model.config.user_demographics or not fields or users is None:
        return None
    cols = [c for c in fields if c in users.columns]
    return users.select("user_id", *cols) if cols else None


@dataclass(frozen=True)
class TrendingConfig:
    """Time-decayed popularity: each watch counts ``2^(-age / half_life)``."""

    half_life_days: float = 3.0
    window_days: float = 30.0  # events older than this are ignored
    watch_weight: float = 1.0
    completion_weight: float = 1.0  # extra weight of a completed watch

    def __post_init__(self) -> None:
        if not (self.half_life_days > 0 and self.window_days > 0):
            raise ValueError("TrendingConfig: half_life_days and window_days must be positive")
        if self.watch_weight < 0 or self.completion_weight < 0:
            raise ValueError("TrendingConfig: weights must be non-negative")


class TrendingGenerator(CandidateGenerator):
    """What many people watched and completed recently; answers cold users too."""

    name = "trending"

    def __init__(self, config: TrendingConfig | None = None) -> None:
        self.config = config or TrendingConfig()
        self._scores: pl.DataFrame | None = None  # video_id, score, uploaded_at; best first
        self._fitted_at: datetime | None = None

    def fit(self, train: Dataset, now: datetime, catalogue: Catalogue | None = None) -> Self:
        from vidrec.data.schema import with_derived

        cfg = self.config
        ev = train.events.filter(
            (pl.col("event") == "watch")
            & (pl.col("ts") < _ts(now))
            & (pl.col("ts") >= _ts(now) - pl.duration(seconds=cfg.window_days * 86400))
        )
        ev = with_derived(ev, train.videos)
        age_days = (_ts(now) - pl.col("ts")).dt.total_seconds() / 86400.0
        weight = cfg.watch_weight + cfg.completion_weight * pl.col("completed").cast(pl.Float64)
        decay = (-math.log(2.0) * age_days / cfg.half_life_days).exp()
        scores = ev.group_by("video_id").agg(score=(weight * decay).sum())
        self._scores = (
            train.videos.filter(pl.col("available"))
            .select("video_id", "uploaded_at")
            .join(scores, on="video_id", how="inner")
            .filter(pl.col("score") > 0)
            .sort(["score", "video_id"], descending=[True, False])
        )
        self._fitted_at = now
        return self.bind(catalogue or Catalogue(train.videos))

    def bind(self, catalogue: Catalogue) -> Self:
        """Serve from ``catalogue``: the fitted ranking as rows (videos it does not hold are dropped).

        Uploads need no hook: a video enters trending through watches at the next fit.
        """
        if self._scores is None:
            raise RuntimeError("TrendingGenerator: call fit() or load() before bind()")
        rows = catalogue.rows_of(self._scores["video_id"])
        keep = rows >= 0
        self._rows, self._values = rows[keep], self._scores["score"].to_numpy()[keep].astype(np.float64)
        self.catalogue = catalogue
        return self

    def nominate(self, request: Request, k: int) -> Nominations:
        check_k(k)
        catalogue = self.require_catalogue()
        if self._fitted_at is None:
            raise RuntimeError("TrendingGenerator: call fit() or load() before generate()")
        # Decay is multiplicative, so later requests only rescale scores fitted earlier.
        shift = (request.now_us - epoch_us(self._fitted_at)) / 86_400e6
        scale = math.exp(-math.log(2.0) * shift / self.config.half_life_days)
        pos = first_eligible(self._rows, request, catalogue, k)
        return Nominations(self._rows[pos], self._values[pos] * scale)

    def save(self, directory: str | Path) -> Path:
        if self._scores is None or self._fitted_at is None:
            raise RuntimeError("TrendingGenerator: nothing to save before fit()")
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        self._scores.write_parquet(root / "trending.parquet")
        meta = {"config": asdict(self.config), "fitted_at": self._fitted_at.isoformat()}
        (root / "trending.json").write_text(json.dumps(meta))
        return root

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        root = Path(directory)
        meta = json.loads((root / "trending.json").read_text())
        gen = cls(TrendingConfig(**meta["config"]))
        gen._scores = pl.read_parquet(root / "trending.parquet")
        gen._fitted_at = datetime.fromisoformat(meta["fitted_at"])
        return gen
