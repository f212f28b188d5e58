"""Online features equal offline ones: what a request reads from the live state is what training computes.

The oracle is the training-time path: point-in-time features from the whole log so far (as-of
joins over :class:`EventTables`) at the request's time, with the same history, similarity
and embedding features. The online path reads the user's counts from the store and the
platform's from the process's live counts. Both must agree on the training log, and after
new events (a user's own, other users', a brand-new user's) have been observed.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from tests.tiny_platform import SMALL_CONFIG
from vidrec.config import PipelineConfig
from vidrec.data.dataset import read_dataset
from vidrec.data.schema import TIMESTAMP
from vidrec.data.simulator import SimulatorConfig, simulate
from vidrec.features.point_in_time import EventTables, point_in_time_features
from vidrec.recommender import Recommender
from vidrec.scoring.features import feature_matrix


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """A small simulated platform (impressions, likes, dislikes, titles, languages) and a model of it."""
    root = tmp_path_factory.mktemp("online")
    simulate(SimulatorConfig(users=120, videos=90, days=6, seed=5), root / "data")
    data = read_dataset(root / "data")
    Recommender.train(data, PipelineConfig.from_dict(SMALL_CONFIG), log=lambda m: None).save(root / "model")
    return root / "model", data


def offline_matrix(rec: Recommender, events: pl.DataFrame, user: str, rows: np.ndarray) -> np.ndarray:
    """The model input of (user, rows) at the model's clock, computed as training does."""
    ranker = rec.pipeline.ranker
    videos = rec.videos
    tables = EventTables.build(events, videos, ranker.config.features)
    frame = pl.DataFrame({"user_id": user, "video_id": rec.catalogue.ids_of(rows)}).with_columns(
        ts=pl.lit(rec.now).cast(TIMESTAMP)
    )
    feats = point_in_time_features(frame, tables, videos, with_history=True)
    return feature_matrix(feats, ranker.embeddings, ranker.cooc, ranker.config.similarity_recent)


def compare(rec: Recommender, events: pl.DataFrame, users: list[str]) -> None:
    for user in users:
        request = rec.request(user)
        rows = rec.pipeline.run(request, "candidates").candidates.rows
        online = rec.pipeline.ranker.request_matrix(request, rows)
        np.testing.assert_allclose(online, offline_matrix(rec, events, user, rows), rtol=2e-5, atol=2e-6,
                                   err_msg=user)  # fmt: skip


@pytest.mark.parametrize("backend", ["memory", "sqlite", "redis"])
def test_online_features_equal_offline_ones_before_and_after_new_events(platform, backend, request, tmp_path):
    model_dir, data = platform
    store = {"memory": None, "sqlite": str(tmp_path / "s.db")}.get(backend) or request.getfixturevalue("redis_url")
    rec = Recommender.load(model_dir, store=store, log=tmp_path / "events.sqlite")
    if backend == "redis":  # the session's Redis is shared: start this version's namespace afresh
        rec.store.load(rec.version_state.deltas, rec.version_state.profiles, "fresh")
        rec._resync()
    users = data.users["user_id"].head(6).to_list()
    compare(rec, data.events, users)
    t = rec.now + timedelta(seconds=1)
    vids = rec.catalogue.ids[:4]
    new = pl.DataFrame(
        {"user_id": [users[0], users[0], users[1], "brand-new", "brand-new", users[2]],
         "video_id": [vids[0], vids[1], vids[0], vids[2], vids[3], vids[1]],
         "ts": [t, t + timedelta(seconds=1), t, t, t + timedelta(seconds=2), t],
         "event": ["impression", "watch", "watch", "watch", "dislike", "like"],
         "watch_seconds": [None, 3000.0, 10.0, 3000.0, None, None]},
        schema_overrides={"ts": TIMESTAMP, "watch_seconds": pl.Float64},
    )  # fmt: skip
    rec.observe(new)
    compare(rec, pl.concat([data.events, new]), [*users[:3], "brand-new"])
    rec.close()
