"""Candidate generators: the two-tower retriever behind a top-K index, and trending videos."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Self

import numpy as np
import polars as pl

from vidrec.candidates.base import CANDIDATE_SCHEMA, CandidateGenerator, check_k
from vidrec.candidates.catalogue import CatalogueKeys
from vidrec.candidates.index import Exclusions, IndexConfig, TopKIndex, build_index, load_index
from vidrec.candidates.two_tower.config import TwoTowerConfig
from vidrec.candidates.two_tower.inputs import join_demographics
from vidrec.candidates.two_tower.export import save_video_embeddings, user_embeddings, video_embeddings
from vidrec.candidates.two_tower.model import TwoTowerModel
from vidrec.candidates.two_tower.train import Logger, TrainReport, fit_two_tower
from vidrec.data.dataset import Dataset
from vidrec.data.schema import TIMESTAMP

DEMOGRAPHICS_FILE = "user_demographics.parquet"


def _ts(now: datetime) -> pl.Expr:
    return pl.lit(now).cast(TIMESTAMP)


def _excluded_lists(users: pl.DataFrame) -> pl.Series:
    """Per user, the union of ``seen`` and ``disliked`` (the videos never to return)."""
    return users.select(pl.concat_list("seen", "disliked").list.unique().alias("x"))["x"]


class TwoTowerGenerator(CandidateGenerator):
    """Retrieves by inner product of the user's current embedding with offline video embeddings.

    Index keys come from :class:`CatalogueKeys`: videos the model was trained on keep their
    vocabulary key, uploads added later (:meth:`add_videos`, embedded from their content)
    get keys after them and are searchable at once.
    """

    name = "two_tower"

    def __init__(
        self,
        config: TwoTowerConfig | None = None,
        index_config: IndexConfig | None = None,
        exact: bool = False,
        log: Logger = print,
    ) -> None:
        self.config = config or TwoTowerConfig()
        self.index_config = index_config or IndexConfig()
        self.exact = exact
        self.log = log
        self.model: TwoTowerModel | None = None
        self.index: TopKIndex | None = None
        self.report: TrainReport | None = None
        self.catalogue: CatalogueKeys | None = None
        self._uploaded = np.zeros(0, dtype=np.int64)  # upload time (us) by catalogue key
        self._demographics: pl.DataFrame | None = None  # user_id + demographic columns seen at fit

    def fit(self, train: Dataset, now: datetime) -> Self:
        events = train.events.filter(pl.col("ts") < _ts(now))
        self.model, self.report = fit_two_tower(events, train.videos, self.config, self.log, users=train.users)
        self._demographics = _demographic_table(self.model, train.users)
        self.catalogue = None
        self.index_videos(train.videos)
        return self

    def index_videos(self, videos: pl.DataFrame) -> None:
        """(Re)build the index from the model's embeddings of ``videos``; unavailable ones masked.

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
        self._uploaded = np.zeros(self._keys().max_key + 1, dtype=np.int64)
        self._uploaded[keys] = videos["uploaded_at"].dt.epoch("us").to_numpy()
        self._chunks = [(ids, vectors)]  # (ids, vectors) per index_videos / add_videos call

    def add_videos(self, videos: pl.DataFrame) -> None:
        """Embed new uploads from their content and add them to the index: searchable at once.

        Ids already in the index are refused (their vectors would be duplicated); unavailable
        rows are added masked.
        """
        model, index = self._require_model(), self._require_index()
        if videos.height == 0:
            return
        taken = videos["video_id"].filter(pl.Series(self._keys().keys(videos["video_id"]) > 0))
        if len(taken):
            raise ValueError(f"videos already indexed: {', '.join(taken.head(5).to_list())}; ids are never reused")
        ids, vectors = video_embeddings(model, videos)
        keys = self._keys().extend(ids)
        index.add(keys, vectors)
        index.remove(keys[~videos["available"].to_numpy()])
        needed = self._keys().max_key + 1
        if needed > len(self._uploaded):  # grow geometrically: a stream of uploads copies O(n) in all
            uploaded = np.zeros(max(needed, 2 * len(self._uploaded)), dtype=np.int64)  # unused keys: never blocked
            uploaded[: len(self._uploaded)] = self._uploaded
            self._uploaded = uploaded
        self._uploaded[keys] = videos["uploaded_at"].dt.epoch("us").to_numpy()
        self._chunks.append((ids, vectors))

    def remove_videos(self, video_ids: pl.Series | list[str]) -> None:
        """Never return these videos again (removed from the platform)."""
        keys = self._keys().keys(video_ids)
        self._require_index().remove(keys[keys > 0])

    def generate(self, users: pl.DataFrame, k: int, now: datetime) -> pl.DataFrame:
        check_k(k)
        model, index = self._require_model(), self.index
        if users.height == 0 or index is None:
            return pl.DataFrame(schema=CANDIDATE_SCHEMA)
        catalogue = self._keys()
        excl = Exclusions(*catalogue.key_lists(_excluded_lists(users)))
        now_us = int(pl.select(_ts(now).dt.epoch("us")).item())
        not_yet = np.flatnonzero(self._uploaded > now_us)
        queries = user_embeddings(model, self.serving_state(users), now=now)
        scores, keys = index.search(queries, k, excl, blocked=not_yet)
        n, kk = keys.shape
        flat = pl.DataFrame(
            {
                "user_id": users["user_id"].gather(np.repeat(np.arange(n), kk)),
                "v": keys.reshape(-1),
                "score": (scores.reshape(-1) / model.config.temperature).astype(np.float64),
                "rank": np.tile(np.arange(1, kk + 1, dtype=np.int64), n),
            }
        ).filter(pl.col("v") > 0)
        video_id = catalogue.to_ids(flat["v"].to_numpy())
        return flat.with_columns(video_id=video_id, source=pl.lit(self.name)).select(list(CANDIDATE_SCHEMA))

    def serving_state(self, users: pl.DataFrame) -> pl.DataFrame:
        """``users`` (user state) with the demographic columns the model was trained on.

        The user-state frame carries no demographics; they come from the users table seen
        at fit, as in training. Users not in it (or columns it lacked) stay unknown.
        """
        if self._demographics is None:
            return users
        return join_demographics(users, self._demographics, self._require_model().vocab.user_fields)

    def _require_model(self) -> TwoTowerModel:
        if self.model is None:
            raise RuntimeError("TwoTowerGenerator: call fit() or load() before generate()")
        return self.model

    def _require_index(self) -> TopKIndex:
        if self.index is None:
            raise RuntimeError("TwoTowerGenerator: call fit() or load() before adding or removing videos")
        return self.index

    def _keys(self) -> CatalogueKeys:
        if self.catalogue is None:
            self.catalogue = CatalogueKeys(self._require_model().vocab.videos)
        return self.catalogue

    def save(self, directory: str | Path) -> Path:
        root = Path(directory)
        self._require_model().save(root / "model")
        if self.index is None:
            raise RuntimeError("TwoTowerGenerator: nothing to save before fit()")
        self.index.save(root / "index")
        ids = pl.concat([c[0] for c in self._chunks])
        save_video_embeddings(root / "video_embeddings.parquet", ids, np.vstack([c[1] for c in self._chunks]))
        np.save(root / "uploaded_us.npy", self._uploaded)
        self._keys().save(root)
        if self._demographics is not None:
            self._demographics.write_parquet(root / DEMOGRAPHICS_FILE)
        meta = {"exact": self.exact, "index": asdict(self.index_config)}
        (root / "generator.json").write_text(json.dumps(meta))
        return root

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        """Read a generator written by :meth:`save` (also one saved before uploads existed)."""
        root = Path(directory)
        meta = json.loads((root / "generator.json").read_text())
        model = TwoTowerModel.load(root / "model")
        gen = cls(model.config, IndexConfig(**meta["index"]), meta["exact"])
        gen.model = model
        gen.index = load_index(root / "index")
        gen._uploaded = np.load(root / "uploaded_us.npy")
        gen.catalogue = CatalogueKeys.load(root, model.vocab.videos)
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

    def fit(self, train: Dataset, now: datetime) -> Self:
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
        return self

    def remove_videos(self, video_ids: pl.Series | list[str]) -> None:
        """Never nominate these videos again (removed from the platform).

        Uploads need no ``add_videos``: a video enters trending through watches at the next fit.
        """
        if self._scores is not None:
            gone = pl.Series("video_id", video_ids, dtype=pl.String).implode()
            self._scores = self._scores.filter(~pl.col("video_id").is_in(gone))

    def generate(self, users: pl.DataFrame, k: int, now: datetime) -> pl.DataFrame:
        check_k(k)
        if self._scores is None or self._fitted_at is None:
            raise RuntimeError("TrendingGenerator: call fit() or load() before generate()")
        excluded = users.select("user_id", x=pl.concat_list("seen", "disliked").list.unique())
        longest = int(excluded["x"].list.len().max() or 0)
        # Decay is multiplicative, so later requests only rescale scores fitted earlier.
        shift = (now - self._fitted_at).total_seconds() / 86400.0
        scale = math.exp(-math.log(2.0) * shift / self.config.half_life_days)
        pool = (
            self._scores.filter(pl.col("uploaded_at") <= _ts(now))
            .head(k + longest)
            .select("video_id", score=pl.col("score") * scale)
        )
        seen = excluded.explode("x").drop_nulls("x").rename({"x": "video_id"})
        out = (
            users.select("user_id")
            .join(pool, how="cross")
            .join(seen, on=["user_id", "video_id"], how="anti")
            .sort(["user_id", "score", "video_id"], descending=[False, True, False])
            .with_columns(rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("user_id"))
            .filter(pl.col("rank") <= k)
        )
        return out.with_columns(source=pl.lit(self.name)).select(
            pl.col(c).cast(t) for c, t in CANDIDATE_SCHEMA.items()
        )

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
