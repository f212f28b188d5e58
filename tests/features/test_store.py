"""Contract tests of the online store, run against every backend (SQLite and Redis).

The oracles are the batch definitions: after a load and any sequence of applied batches
the store must answer exactly what ``build_user_state``, ``video_stats`` and the
point-in-time tables compute from the whole log.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from tests.features.conftest import T0, TINY, VIDEOS, events
from vidrec.catalogue import Catalogue
from vidrec.data.dataset import read_dataset
from vidrec.data.simulator import SimulatorConfig, simulate
from vidrec.features import build_user_state, video_stats
from vidrec.features.point_in_time import EventTables
from vidrec.features.store import OnlineStore, SQLiteStore, StoreConfig, open_store
from vidrec.features.store.base import Applied, CountDeltas, StoreOutdated
from vidrec.features.store.deltas import compute_deltas

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


def deltas(ev: pl.DataFrame, videos: pl.DataFrame, config: StoreConfig):
    cat = Catalogue(videos)
    return compute_deltas(ev, cat.meta(cat.rows_of(ev["video_id"].unique()), config.title_words), config)


def load(store: OnlineStore, ev: pl.DataFrame, videos: pl.DataFrame = VIDEOS) -> None:
    store.load(deltas(ev, videos, store.config), pl.DataFrame({"user_id": []}, schema={"user_id": pl.String}), "g1")


def apply(store: OnlineStore, ev: pl.DataFrame, videos: pl.DataFrame = VIDEOS) -> None:
    d = deltas(ev, videos, store.config)
    store.apply(None, 0, 0, [Applied("counts", CountDeltas.of(d).to_json(), d)])


def state_of(store: OnlineStore, users: list[str], history_len: int) -> pl.DataFrame:
    """The store's video lists in ``build_user_state`` form."""
    rows = []
    for u in users:
        r, _, _ = store.read(u, store.FEED_START)
        ids = {k: [v for v, _ in r.lists[k]] for k in r.lists}
        rows.append({"user_id": u, "recent_completed": ids["completed"][-history_len:],
                     "recent_watched": ids["watched"][-history_len:], "seen": ids["seen"],
                     "disliked": ids["disliked"]})  # fmt: skip
    return pl.DataFrame(rows, schema={"user_id": pl.String, **{c: pl.List(pl.String) for c in
                                      ("recent_completed", "recent_watched", "seen", "disliked")}})  # fmt: skip


def assert_matches_batch(store: OnlineStore, ev: pl.DataFrame, videos: pl.DataFrame, history_len: int) -> None:
    """The store's user lists, per-user and platform counts equal the batch definitions on ``ev``."""
    expected = build_user_state(ev, videos, history_len=history_len)
    got = state_of(store, expected["user_id"].to_list(), history_len)
    assert got.sort("user_id").equals(expected.sort("user_id"))
    tables = EventTables.build(ev, videos).compact().tables
    users = tables["user"].select("user_id", "views", "completions", "impressions", "likes", "dislikes",
                                  "completion_sum")  # fmt: skip
    for row in users.iter_rows(named=True):
        record, _, _ = store.read(row["user_id"], store.FEED_START)
        for c in ("views", "completions", "impressions", "likes", "dislikes"):
            assert record.counts[c] == row[c], (row["user_id"], c)
        assert record.counts["completion_sum"] == pytest.approx(row["completion_sum"])
        cats = {k: (a, b) for k, a, b, _, _ in record.pairs["category"]}
        mine = tables["user_cat"].filter(pl.col("user_id") == row["user_id"])
        assert cats == {r["category"]: (r["views"], r["completions"]) for r in mine.iter_rows(named=True)}
        creators = {k: (a, b) for k, a, b, _, _ in record.pairs["creator"]}
        mine = tables["user_creator"].filter(pl.col("user_id") == row["user_id"])
        assert creators == {r["creator_id"]: (r["views"], r["dislikes"]) for r in mine.iter_rows(named=True)}
    snap = store.snapshot()
    stats = video_stats(ev, videos).filter(pl.col("views") + pl.col("impressions") + pl.col("likes")
                                           + pl.col("dislikes") > 0)  # fmt: skip
    got_counts = snap.video_counts.sort("video_id")
    assert got_counts.filter(pl.col("video_id").is_in(stats["video_id"].implode())).equals(
        stats.select(got_counts.columns).sort("video_id"))  # fmt: skip


def test_tiny_log_exact_state_and_counts(make_store: MakeStore):
    store = make_store()
    assert store.generation() is None
    load(store, TINY)
    assert store.generation() == "g1"
    r, feed, gen = store.read("u1", store.FEED_START)
    assert [v for v, _ in r.lists["completed"]] == ["a", "b"] and [v for v, _ in r.lists["watched"]] == ["a", "b"]
    assert [v for v, _ in r.lists["seen"]] == ["a", "b", "d"] and [v for v, _ in r.lists["disliked"]] == ["d"]
    assert dict(r.lists["last_watched"])["b"] == dict(r.lists["watched"])["b"] + 3 * 3600 * 10**6  # last of two
    assert r.counts["views"] == 3 and r.counts["dislikes"] == 1 and r.counts["impressions"] == 1
    assert r.counts["completion_sum"] == pytest.approx(0.9 + 0.1 + 0.85)
    assert {k: (a, b) for k, a, b, _, _ in r.pairs["category"]} == {"k": (3, 2)}
    ((creator, views, dislikes, _, last),) = r.pairs["creator"]
    assert (creator, views, dislikes) == ("x", 3, 1) and last == int((T0.timestamp() + 4 * 3600) * 1e6)
    u2, _, _ = store.read("u2", store.FEED_START)
    assert [v for v, _ in u2.lists["seen"]] == ["c", "a"]  # c liked; impressions do not count
    assert [v for v, _ in u2.lists["liked"]] == ["c"] and [v for v, _ in r.lists["liked"]] == []
    nobody, _, _ = store.read("nobody", store.FEED_START)
    assert not nobody.known and nobody.counts["views"] == 0 and feed == [] and gen == "g1"
    assert_matches_batch(store, TINY, VIDEOS, history_len=50)


def test_new_events_count_and_reach_the_feed(make_store: MakeStore):
    store = make_store()
    load(store, TINY)
    start = store.snapshot().position
    new = events([("u2", "d", 7, "watch", 95.0), ("u2", "b", 8, "dislike", None), ("u3", "c", 9, "impression", None)])
    apply(store, new)
    r, feed, _ = store.read("u2", start)
    assert [v for v, _ in r.lists["completed"]] == ["a", "d"] and [v for v, _ in r.lists["disliked"]] == ["b"]
    assert [v for v, _ in r.lists["seen"]] == ["c", "a", "d", "b"]
    assert [e.kind for e in feed] == ["counts"]
    counts = feed[0].counts()
    assert dict(zip(counts.videos["video_id"], counts.videos["views"])) == {"d": 1, "b": 0, "c": 0}
    assert store.read("u2", feed[0].position)[1] == []  # read since the last entry: nothing new
    assert_matches_batch(store, pl.concat([TINY, new]), VIDEOS, history_len=50)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A small simulated platform (events, videos) with uploads during the run."""
    root = tmp_path_factory.mktemp("sim")
    simulate(SimulatorConfig(users=80, videos=60, days=4, seed=3), root)
    data = read_dataset(root)
    return data.events, data.videos


def test_load_then_batches_equal_batch_features(make_store: MakeStore, simulated):
    ev, videos = simulated
    cut = ev["ts"].min() + (ev["ts"].max() - ev["ts"].min()) * 0.7
    first, later = ev.filter(pl.col("ts") < cut), ev.filter(pl.col("ts") >= cut)
    store = make_store(StoreConfig(history_len=5))
    load(store, first, videos)
    assert_matches_batch(store, first, videos, history_len=5)
    for chunk in later.sort("ts").iter_slices(max(later.height // 3, 1)):
        apply(store, chunk, videos)
    assert_matches_batch(store, ev, videos, history_len=5)


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
    """Load a prefix, then apply the rest in batches (out of time order): same as one load of all."""
    ev = events([(u, v, h, e, w if e == "watch" else None) for u, v, h, e, w in rows])
    store = make_store(StoreConfig(history_len=2))
    load(store, ev.head(split))
    rest = ev.slice(split)
    bounds = sorted({0, rest.height, *(c for c in cuts if c < rest.height)})
    for lo, hi in zip(bounds, bounds[1:]):
        apply(store, rest.slice(lo, hi - lo))
    assert_matches_batch(store, ev, VIDEOS, history_len=2)


def test_a_batch_is_applied_once_per_log_cursor(make_store: MakeStore):
    store = make_store()
    load(store, TINY)
    d = deltas(events([("u9", "a", 9, "watch", 99.0)]), VIDEOS, store.config)
    batch = [Applied("counts", CountDeltas.of(d).to_json(), d)]
    store.apply("log-1", 0, 1, batch)
    assert store.cursor("log-1") == 1 and store.cursor("log-2") == 0
    with pytest.raises(StoreOutdated):  # a second writer that read cursor 0 is refused, nothing changes
        store.apply("log-1", 0, 1, batch)
    record, _, _ = store.read("u9", store.FEED_START)
    assert record.counts["views"] == 1


def test_reload_replaces_everything_and_restarts_the_cursors(make_store: MakeStore):
    store = make_store()
    load(store, TINY)
    store.apply("log", 0, 3, [])
    load(store, TINY)
    assert store.cursor("log") == 0 and store.snapshot().video_counts.filter(pl.col("video_id") == "a")["views"][0] == 2


def test_events_of_unknown_videos_are_refused():
    with pytest.raises(ValueError, match="not in the catalogue"):
        deltas(events([("u1", "zzz", 1, "watch", 5.0)]), VIDEOS, StoreConfig())


def test_replicas_share_one_store_and_its_config(make_store: MakeStore):
    writer = make_store(name="shared")
    reader = make_store(name="shared")
    load(writer, TINY)
    apply(writer, events([("u2", "b", 9, "watch", 99.0)]))
    record, _, _ = reader.read("u2", reader.FEED_START)
    assert [v for v, _ in record.lists["completed"]] == ["a", "b"]
    with pytest.raises(ValueError, match="completion threshold"):
        make_store(StoreConfig(threshold=0.5), name="shared")


def test_factory_and_config_validation(tmp_path: Path):
    assert isinstance(open_store(tmp_path / "x.db"), SQLiteStore)
    assert isinstance(open_store(":memory:"), SQLiteStore)
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


def test_streaming_engine_gives_the_same_deltas(simulated, monkeypatch: pytest.MonkeyPatch):
    """A large log's aggregations run on Polars' streaming engine: the same deltas as in memory."""
    from vidrec.features.store import deltas as module

    ev, videos = simulated
    config = StoreConfig(history_len=20)
    in_memory = deltas(ev, videos, config)
    monkeypatch.setattr(module, "STREAMING_FROM", 0)
    streamed = deltas(ev, videos, config)

    def same(a: pl.DataFrame, b: pl.DataFrame) -> None:
        assert a.columns == b.columns and a.height == b.height > 0
        keys = [c for c, t in a.schema.items() if not t.is_float()]  # float sums may differ in the last bit
        assert_frame_equal(a.sort(keys, nulls_last=True), b.sort(keys, nulls_last=True), check_exact=False)

    same(in_memory.firsts, streamed.firsts)
    same(in_memory.user_counts, streamed.user_counts)
    same(in_memory.video_counts, streamed.video_counts)
    same(in_memory.attributes, streamed.attributes)
    for name in in_memory.pairs:
        same(in_memory.pairs[name], streamed.pairs[name])
    assert in_memory.totals == pytest.approx(streamed.totals) and in_memory.last_event_us == streamed.last_event_us
