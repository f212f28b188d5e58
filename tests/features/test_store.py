"""Contract tests of the online feature store, run against every backend (SQLite and Redis).

The oracles are the batch definitions: after ``bulk_load`` and any sequence of
``apply_events`` the store must answer exactly what ``build_user_state``,
``video_stats`` and the point-in-time affinity tables compute from the whole log.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from tests.features.conftest import T0, TINY, VIDEOS, events
from vidrec.data.simulator import SimulatorConfig, simulate
from vidrec.data.dataset import read_dataset
from vidrec.features import build_user_state, video_stats
from vidrec.features.point_in_time import EventTables
from vidrec.features.store import OnlineStore, SQLiteStore, StoreConfig, open_store
from vidrec.features.user_state import STATE_SCHEMA

MakeStore = Callable[..., OnlineStore]


@pytest.fixture(params=["sqlite", "redis"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> MakeStore:
    """A factory of stores of one backend; every call without ``name`` opens a fresh, empty store."""
    opened: list[OnlineStore] = []
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None

    def make(config: StoreConfig | None = None, name: str | None = None) -> OnlineStore:
        name = name or uuid.uuid4().hex
        if url is not None:
            store: OnlineStore = open_store(url, config, prefix=f"test-{name}:")
        else:
            store = open_store(tmp_path / f"{name}.db", config)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def _state_only(df: pl.DataFrame) -> pl.DataFrame:
    return df.select(list(STATE_SCHEMA))


def _expected_affinities(ev: pl.DataFrame, videos: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Final per-user category and creator counts from the point-in-time tables (the oracle)."""
    tables = EventTables.build(ev, videos).compact().tables
    cat = tables["user_cat"].select("user_id", "category", "views", "completions")
    cre = tables["user_creator"].select("user_id", "creator_id", "views", "dislikes")
    return cat.sort("user_id", "category"), cre.sort("user_id", "creator_id")


def _assert_matches_batch(store: OnlineStore, ev: pl.DataFrame, videos: pl.DataFrame, history_len: int) -> None:
    """The store's user state, affinities and video stats equal the batch definitions on ``ev``."""
    expected = build_user_state(ev, videos, history_len=history_len)
    got = store.get_user_state(expected["user_id"].to_list())
    assert_frame_equal(_state_only(got), expected)
    cat, cre = _expected_affinities(ev, videos)
    got_cat = got.select("user_id", "category_affinity").explode("category_affinity").unnest("category_affinity")
    got_cre = got.select("user_id", "creator_affinity").explode("creator_affinity").unnest("creator_affinity")
    assert_frame_equal(got_cat.drop_nulls().sort("user_id", "category"), cat, check_dtypes=False)
    assert_frame_equal(got_cre.drop_nulls().sort("user_id", "creator_id"), cre, check_dtypes=False)
    stats = video_stats(ev, videos)
    assert_frame_equal(store.get_video_stats(videos["video_id"].to_list()), stats, check_exact=False, rel_tol=1e-12)


def test_tiny_log_exact_state_and_stats(make_store: MakeStore):
    store = make_store()
    store.bulk_load(TINY, VIDEOS)
    got = store.get_user_state(["u2", "nobody", "u1"])
    assert got["user_id"].to_list() == ["u2", "nobody", "u1"]
    assert got["recent_completed"].to_list() == [["a"], [], ["a", "b"]]
    assert got["recent_watched"].to_list() == [["a"], [], ["a", "b"]]
    assert got["seen"].to_list() == [["c", "a"], [], ["a", "b", "d"]]  # c: liked; impressions do not count
    assert got["disliked"].to_list() == [[], [], ["d"]]
    u1 = got.row(2, named=True)
    assert u1["category_affinity"] == [{"category": "k", "views": 3, "completions": 2}]
    assert u1["creator_affinity"] == [{"creator_id": "x", "views": 3, "dislikes": 1}]
    stats = store.get_video_stats(["a", "d"])
    assert stats["views"].to_list() == [2, 0]
    assert stats["dislikes"].to_list() == [0, 1]
    assert stats["age_days"].to_list() == [0.25, 0.25]  # last event 6 h after the uploads
    _assert_matches_batch(store, TINY, VIDEOS, history_len=50)


def test_history_is_capped_most_recent_last(make_store: MakeStore):
    store = make_store(StoreConfig(history_len=1))
    store.bulk_load(TINY, VIDEOS)
    assert store.get_user_state(["u1"])["recent_completed"].to_list() == [["b"]]


def test_a_new_watch_and_dislike_count_without_rebuild(make_store: MakeStore):
    store = make_store()
    store.bulk_load(TINY, VIDEOS)
    new = events([("u2", "d", 7, "watch", 95.0), ("u2", "b", 8, "dislike", None), ("u3", "c", 9, "impression", None)])
    store.apply_events(new, VIDEOS)
    u2 = store.get_user_state(["u2"]).row(0, named=True)
    assert u2["recent_completed"] == ["a", "d"]
    assert u2["disliked"] == ["b"]
    assert u2["seen"] == ["c", "a", "d", "b"]
    assert store.get_video_stats(["d"])["views"].to_list() == [1]
    _assert_matches_batch(store, pl.concat([TINY, new]), VIDEOS, history_len=50)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A small simulated platform (events, videos) with uploads during the run."""
    root = tmp_path_factory.mktemp("sim")
    simulate(SimulatorConfig(users=80, videos=60, days=4, seed=3), root)
    data = read_dataset(root)
    return data.events, data.videos


def test_bulk_load_then_events_equal_batch_features(make_store: MakeStore, simulated):
    ev, videos = simulated
    cut = ev["ts"].min() + (ev["ts"].max() - ev["ts"].min()) * 0.7
    first, later = ev.filter(pl.col("ts") < cut), ev.filter(pl.col("ts") >= cut)
    store = make_store(StoreConfig(history_len=5))
    store.bulk_load(first, videos)
    _assert_matches_batch(store, first, videos, history_len=5)
    for chunk in later.sort("ts").iter_slices(max(later.height // 3, 1)):
        store.apply_events(chunk, videos)
    _assert_matches_batch(store, ev, videos, history_len=5)


_rows = st.lists(
    st.tuples(
        st.sampled_from(["u1", "u2", "u3"]),
        st.sampled_from(["a", "b", "c", "d"]),
        st.integers(0, 6),  # hours: many ties on purpose
        st.sampled_from(["impression", "watch", "like", "dislike"]),
        st.sampled_from([10.0, 79.0, 80.0, 150.0]),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=_rows, split=st.integers(0, 30), cuts=st.lists(st.integers(0, 30), max_size=3))
def test_any_order_of_batches_gives_the_batch_answer(make_store: MakeStore, rows, split, cuts):
    """Bulk load a prefix, then apply the rest in batches (out of time order): same as one rebuild."""
    ev = events([(u, v, h, e, w if e == "watch" else None) for u, v, h, e, w in rows])
    store = make_store(StoreConfig(history_len=2))
    store.bulk_load(ev.head(split), VIDEOS)
    rest = ev.slice(split)
    bounds = sorted({0, rest.height, *(c for c in cuts if c < rest.height)})
    for lo, hi in zip(bounds, bounds[1:]):
        store.apply_events(rest.slice(lo, hi - lo), VIDEOS)
    _assert_matches_batch(store, ev, VIDEOS, history_len=2)


def test_bulk_load_replaces_features_and_keeps_embeddings(make_store: MakeStore):
    store = make_store()
    store.put_video_embeddings(["a"], np.ones((1, 3), dtype=np.float32))
    store.bulk_load(TINY, VIDEOS)
    store.bulk_load(TINY, VIDEOS)
    assert store.get_video_stats(["a"])["views"].to_list() == [2]
    assert store.get_video_embeddings(["a"])[1].tolist() == [True]


def test_embeddings_round_trip_with_mask(make_store: MakeStore):
    store = make_store()
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(3, 8)).astype(np.float32)
    store.put_video_embeddings(["a", "b", "c"], vecs)
    store.put_video_embeddings(["b"], np.full((1, 8), 2.0))  # replace
    got, found = store.get_video_embeddings(["c", "zz", "b", "a", "c"])
    assert got.dtype == np.float32 and got.shape == (5, 8)
    assert found.tolist() == [True, False, True, True, True]
    np.testing.assert_array_equal(got[[0, 3, 4]], vecs[[2, 0, 2]])
    np.testing.assert_array_equal(got[1], np.zeros(8))
    np.testing.assert_array_equal(got[2], np.full(8, 2.0))
    with pytest.raises(ValueError, match="8-dimensional"):
        store.put_video_embeddings(["d"], np.zeros((1, 4)))
    with pytest.raises(ValueError, match="finite"):
        store.put_video_embeddings(["d"], np.full((1, 8), np.nan))
    with pytest.raises(ValueError, match="matrix"):
        store.put_video_embeddings(["d", "e"], np.zeros((1, 8)))


def test_empty_store_answers_cold(make_store: MakeStore):
    store = make_store()
    assert store.get_user_state(["u1"])["seen"].to_list() == [[]]
    vecs, found = store.get_video_embeddings(["a"])
    assert vecs.shape[0] == 1 and not found.any()
    assert store.get_video_stats([]).height == 0


def test_video_stats_keep_request_order_and_age_at_now(make_store: MakeStore):
    store = make_store()
    store.bulk_load(TINY, VIDEOS)
    store.put_videos(VIDEOS.head(1).with_columns(video_id=pl.lit("new"), uploaded_at=pl.lit(T0 + timedelta(days=1))))
    got = store.get_video_stats(["b", "unknown", "new", "b"], now=T0 + timedelta(days=2))
    assert got["video_id"].to_list() == ["b", "unknown", "new", "b"]
    assert got["age_days"].to_list() == [2.0, None, 1.0, 2.0]
    assert got["views"].to_list() == [2, 0, 0, 2]


def test_events_of_unknown_videos_are_refused(make_store: MakeStore):
    store = make_store()
    with pytest.raises(ValueError, match="not in the videos table"):
        store.apply_events(events([("u1", "zzz", 1, "watch", 5.0)]), VIDEOS)


def test_replicas_share_one_store_and_its_config(make_store: MakeStore):
    writer = make_store(name="shared")
    reader = make_store(name="shared")
    writer.bulk_load(TINY, VIDEOS)
    writer.apply_events(events([("u2", "b", 9, "watch", 99.0)]), VIDEOS)
    assert reader.get_user_state(["u2"])["recent_completed"].to_list() == [["a", "b"]]
    with pytest.raises(ValueError, match="completion threshold"):
        make_store(StoreConfig(threshold=0.5), name="shared")


def test_factory_and_config_validation(tmp_path: Path):
    assert isinstance(open_store(tmp_path / "x.db"), SQLiteStore)
    with pytest.raises(ValueError, match="redis://"):
        open_store("http://example.org/store")
    with pytest.raises(ValueError, match="history_len"):
        StoreConfig(history_len=0)
    with pytest.raises(ValueError, match="threshold"):
        StoreConfig(threshold=0.0)


def test_missing_redis_binary_fails_under_ci_and_skips_elsewhere(monkeypatch, tmp_path: Path):
    from tests import redis_server

    monkeypatch.setattr(redis_server.shutil, "which", lambda _: None)
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y redis-server"):
        redis_server.redis_server_or_skip(tmp_path)
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        redis_server.redis_server_or_skip(tmp_path)
