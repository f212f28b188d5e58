"""A trained vidrec model as one object: load it, ask for recommendations, feed it events.

A model directory holds versioned artifact folders (``v<UTC time>``) and a ``LATEST``
file naming the current one. Each version holds the resolved config, the trained stages,
the data they were trained on, a manifest, and the online feature store (``features.db``,
SQLite) that serves user state and the candidates' video statistics and takes new events
incrementally; a ``redis://`` URL can replace it so that several service replicas share
one store.
"""

from __future__ import annotations

import json
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import polars as pl

from vidrec import __version__
from vidrec.config import PipelineConfig
from vidrec.data.dataset import Dataset, read_dataset, write_dataset
from vidrec.data.schema import TIMESTAMP
from vidrec.errors import DataError, VidrecError
from vidrec.features.store import OnlineStore, StoreConfig, open_store
from vidrec.features.user_state import STATE_SCHEMA
from vidrec.pipeline import Pipeline, Stage
from vidrec.uploads import upload_error, validate_uploads

LATEST = "LATEST"
FEATURES_DB = "features.db"


def resolve_version(model_dir: str | Path) -> Path:
    """The artifact folder to load: ``model_dir`` itself or the version named in ``LATEST``."""
    root = Path(model_dir)
    if (root / "manifest.json").exists():
        return root
    if (root / LATEST).exists():
        return root / (root / LATEST).read_text().strip()
    raise VidrecError(
        f"{root}: no trained model here (no {LATEST} file or manifest.json)",
        "train one with `vidrec train DATA_DIR --out MODEL_DIR`",
    )


class Recommender:
    """Serves a trained :class:`Pipeline` over the training data plus events observed since."""

    def __init__(
        self,
        pipeline: Pipeline,
        data: Dataset,
        trained_until: datetime,
        path: Path | None = None,
        store: OnlineStore | None = None,
    ):
        self.pipeline = pipeline
        self.videos = data.videos
        self.users = data.users
        self.events = data.events
        self._last_event = data.events["ts"].max()  # kept current by observe(): no log scan per request
        self.trained_until = trained_until
        self.path = path
        self._video_ids = set(self.videos["video_id"].to_list())
        self._last_upload: datetime | None = None  # latest upload added since training (moves the clock)
        self.store = store
        self.store_is_new = store is None
        if store is not None:
            self._serve_video_stats_from(store)

    def _store_config(self) -> StoreConfig:
        cfg = self.pipeline.config
        features = cfg.ranker.features
        return StoreConfig(history_len=cfg.history_len, prior_weight=features.prior_weight, threshold=features.threshold)

    def _serve_video_stats_from(self, store: OnlineStore) -> None:
        """Let the ranker read candidates' video statistics from ``store``, current to the last observed event.

        Only when the store counts completions at the ranker's threshold and smooths with
        its prior, i.e. when its statistics are the ranker's training features; otherwise the
        ranker keeps the event tables stored with it (current as of training or ``refresh``).
        """
        use = getattr(self.pipeline.ranker, "use_video_stats", None)
        features = getattr(getattr(self.pipeline.ranker, "config", None), "features", None)
        if use is None or features is None:
            return
        same = store.config.threshold == features.threshold and store.config.prior_weight == features.prior_weight
        if not same:
            warnings.warn(
                f"the feature store counts completions at {store.config.threshold} with prior weight "
                f"{store.config.prior_weight}, the ranker at {features.threshold} / {features.prior_weight}: "
                "the ranker keeps the video statistics frozen at training; rebuild the store "
                "(attach_store(..., rebuild=True)) to serve live statistics",
                stacklevel=2,
            )
        use(store if same else None)

    def attach_store(self, location: str | Path, rebuild: bool = False) -> OnlineStore:
        """Serve user state from the store at ``location``, bulk-loading it when empty or asked.

        Redis keys are namespaced by the model version, so replicas of one version share
        state and two versions never mix.
        """
        loc = str(location)
        options = {}
        if loc.startswith(("redis://", "rediss://", "unix://")):
            options["prefix"] = f"vidrec:{self.path.name if self.path else 'unsaved'}:"
        self.store = open_store(loc, self._store_config(), **options)
        fresh = rebuild or self._store_is_empty()
        if fresh:
            self.store.bulk_load(self.events, self.videos)
        self.store_is_new = fresh
        self._serve_video_stats_from(self.store)
        return self.store

    def _store_is_empty(self) -> bool:
        """True when the store has never been loaded (it does not know the catalogue)."""
        if self.store is None or self.videos.height == 0:
            return True
        probe = self.store.get_video_stats([self.videos["video_id"][0]])
        return bool(probe["age_days"].is_null().all())

    @classmethod
    def train(
        cls, train: Dataset, config: PipelineConfig | None = None, log: Callable[[str], None] = print
    ) -> "Recommender":
        """Train all stages on ``train`` (already validated)."""
        pipeline = Pipeline.fit(train, config, log)
        until = train.events["ts"].max() + timedelta(microseconds=1)
        return cls(pipeline, train, until)

    def save(self, model_dir: str | Path) -> Path:
        """Write a new version folder under ``model_dir`` and point ``LATEST`` at it."""
        root = Path(model_dir)
        version = "v" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        path = root / version
        self.pipeline.save(path)
        write_dataset(Dataset(self.events, self.videos, self.users), path / "data")
        self.path = path
        self.attach_store(path / FEATURES_DB, rebuild=True)
        manifest = {
            "version": version,
            "vidrec": __version__,
            "created_at": datetime.now(timezone.utc).isoformat(),
            "trained_until": self.trained_until.isoformat(),
            "last_upload": None if self._last_upload is None else self._last_upload.isoformat(),
            "events": self.events.height,
            "videos": self.videos.height,
            "users": self.users.height,
            "timings_seconds": self.pipeline.timings,
        }
        (path / "manifest.json").write_text(json.dumps(manifest, indent=2))
        (root / LATEST).write_text(version + "\n")
        return path

    @classmethod
    def load(cls, model_dir: str | Path, store: str | None = None) -> "Recommender":
        """Load the latest version in ``model_dir`` (or the version folder given).

        ``store`` is the online feature store: a ``redis://`` URL shared by replicas, or a
        SQLite path; by default the version's own ``features.db``. A Redis store is
        bulk-loaded only when it holds nothing yet.
        """
        path = resolve_version(model_dir)
        manifest = json.loads((path / "manifest.json").read_text())
        data = read_dataset(path / "data")
        pipeline = Pipeline.load(path, data.videos)
        rec = cls(pipeline, data, datetime.fromisoformat(manifest["trained_until"]), path)
        if manifest.get("last_upload"):  # uploads added after training keep the clock they moved
            rec._last_upload = datetime.fromisoformat(manifest["last_upload"])
        rec.attach_store(store or path / FEATURES_DB)
        return rec

    @property
    def now(self) -> datetime:
        """The model's clock: the latest of the training end, the last event observed and the
        last upload added (an upload is recommendable the moment it is added)."""
        last = self._last_event
        clock = max(self.trained_until, last + timedelta(microseconds=1)) if last else self.trained_until
        return max(clock, self._last_upload + timedelta(microseconds=1)) if self._last_upload else clock

    def user_state(self, user_ids: list[str]) -> pl.DataFrame:
        """Current state of the given users (history, seen, disliked); unknown users are empty."""
        ids = pl.Series("user_id", user_ids, dtype=pl.String).unique(maintain_order=True)
        if self.store is None:
            from vidrec.features.user_state import build_user_state, empty_user_state

            mine = self.events.filter(pl.col("user_id").is_in(ids.implode()))
            state = build_user_state(mine, self.videos, history_len=self.pipeline.config.history_len)
            missing = ids.filter(~ids.is_in(state["user_id"].implode()))
            return pl.concat([state, empty_user_state(missing)], how="diagonal_relaxed")
        return self.store.get_user_state(ids.to_list()).select(list(STATE_SCHEMA))

    def recommend_batch(
        self,
        user_ids: list[str],
        k: int = 10,
        stage: Stage = "final",
        now: datetime | None = None,
        debug: bool = False,
    ) -> pl.DataFrame:
        """Recommendations for many users at once (one vectorised pass per stage)."""
        if not user_ids:
            raise ValueError("no user ids given")
        state = self.user_state(user_ids)
        return self.pipeline.run(state, self.videos, now or self.now, k, stage, debug, events=self.events)

    def recommend(self, user_id: str, k: int = 10, now: datetime | None = None, stage: Stage = "final") -> pl.DataFrame:
        """The top ``k`` videos for one user, with provenance."""
        return self.recommend_batch([user_id], k, stage, now)

    def observe(self, events: pl.DataFrame, update_store: bool = True) -> None:
        """Add new (validated) events; the next request of those users reflects them.

        ``update_store=False`` only appends them to the in-memory log, for events the
        feature store already holds (a service restarting on its own store).
        """
        cols = self.events.columns
        new = events.with_columns(pl.col("ts").cast(TIMESTAMP))
        for c in cols:
            if c not in new.columns:
                new = new.with_columns(pl.lit(None, dtype=self.events.schema[c]).alias(c))
        new = new.select(cols)
        if self.store is not None and update_store:
            self.store.apply_events(new, self.videos)
        # appended as a new chunk: no copy of the whole log per event
        self.events = pl.concat([self.events, new], how="vertical_relaxed", rechunk=False)
        latest = new["ts"].max()
        if latest is not None and (self._last_event is None or latest > self._last_event):
            self._last_event = latest

    def known_video(self, video_id: str) -> bool:
        """Whether ``video_id`` is in the catalogue."""
        return video_id in self._video_ids

    def add_videos(self, videos: pl.DataFrame, strict: bool = False) -> pl.DataFrame:
        """Add new uploads to the running system, no retraining: searchable from the next request.

        Rows are validated as ingestion validates the videos table (and refused when the id
        is already in the catalogue). Valid rows join the catalogue (saved by :meth:`save`),
        are embedded from their content by the two-tower and added to its index, join the
        fresh and creators generators' shelves, and become known to the feature store.
        Returns the quarantined rows (``QUARANTINE_SCHEMA``, empty when all were valid);
        ``strict=True`` adds nothing and raises :class:`DataError` if any row is invalid.
        """
        clean, bad = validate_uploads(videos, self.videos)
        if strict and bad.height:
            raise upload_error(bad, videos.height)
        if clean.height == 0:
            return bad
        # The stages first: if one refuses, the catalogue has not changed yet.
        self.pipeline.add_videos(clean)
        if self.store is not None:
            self.store.put_videos(clean)
        self.videos = pl.concat([self.videos, clean], how="vertical")
        self._video_ids.update(clean["video_id"].to_list())
        # The clock follows uploads (so one is recommendable at once) but never past the wall
        # clock: a video dated in the future stays blocked until its time.
        latest = min(clean["uploaded_at"].max(), datetime.now(timezone.utc))
        self._last_upload = latest if self._last_upload is None else max(self._last_upload, latest)
        return bad

    def remove_videos(self, video_ids: list[str] | pl.Series) -> int:
        """Take videos off the platform: marked unavailable in the catalogue, returned by no stage.

        Raises :class:`DataError` (and changes nothing) if an id is not in the catalogue.
        Returns how many videos were available before.
        """
        ids = pl.Series("video_id", video_ids, dtype=pl.String).unique(maintain_order=True)
        unknown = [v for v in ids.to_list() if v not in self._video_ids]
        if unknown:
            raise DataError(
                f"cannot remove videos not in the catalogue: {', '.join(map(repr, unknown[:5]))}",
                "check the ids",
            )
        gone = pl.col("video_id").is_in(ids.implode())
        was = int(self.videos.select((gone & pl.col("available")).sum()).item())
        self.videos = self.videos.with_columns(available=pl.col("available") & ~gone)
        self.pipeline.remove_videos(ids)
        return was
