"""Serving state outside the model: replicas that agree, a store rebuilt when it comes back
empty, writers that lose nothing, and version folders that serving never changes."""

from __future__ import annotations

import hashlib
import threading
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient

from tests.tiny_platform import small_config, two_audiences
from vidrec.data.schema import TIMESTAMP
from vidrec.recommender import Recommender
from vidrec.serving.runtime import load_service

EVEN = [f"u{i}" for i in range(0, 40, 2)]
MUSIC = {"video_id": "up-music", "creator_id": "c0", "category": "music", "tags": ["even"], "duration_seconds": 120}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("replicated")
    Recommender.train(two_audiences(), small_config(), log=lambda m: None).save(root)
    return root


@pytest.fixture
def redis_db(redis_url: str, request: pytest.FixtureRequest):
    """A Redis database of its own (flushed), so replicas here share nothing with other tests."""
    import redis

    url = redis_url.rsplit("/", 1)[0] + "/3"
    client = redis.Redis.from_url(url)
    client.flushdb()
    request.addfinalizer(client.flushdb)
    return url, client


def slate(rec: Recommender, user: str, k: int = 10) -> list[str]:
    return [item["video_id"] for item in rec.slate(user, k)]


def event(rec: Recommender, user: str, video: str, kind: str, seconds: float | None = None) -> pl.DataFrame:
    return pl.DataFrame(
        {"user_id": [user], "video_id": [video], "ts": [rec.now + timedelta(seconds=1)], "event": [kind],
         "watch_seconds": [seconds]}, schema_overrides={"ts": TIMESTAMP, "watch_seconds": pl.Float64},
    )  # fmt: skip


def test_two_replicas_see_each_others_upload_removal_and_dislike(model_dir, redis_db, tmp_path):
    url, _ = redis_db
    a = Recommender.load(model_dir, store=url, log=tmp_path / "a.sqlite")
    b = Recommender.load(model_dir, store=url, log=tmp_path / "b.sqlite")  # its own log: another machine
    upload = pl.DataFrame([{**MUSIC, "uploaded_at": a.now, "available": True}]).with_columns(
        pl.col("uploaded_at").cast(TIMESTAMP), pl.col("duration_seconds").cast(pl.Float64)
    )
    assert a.add_videos(upload).is_empty()
    candidates = b.recommend("u0", k=30, stage="candidates")  # b's next request applies the feed
    assert b.known_video("up-music") and "up-music" in candidates["video_id"].to_list()
    top = slate(b, "u2")[0]
    b.observe(event(b, "u2", top, "dislike"))
    assert top not in slate(a, "u2") and top not in slate(b, "u2")
    gone = slate(a, "u4")[0]
    a.remove_videos([gone])
    for rec in (a, b):
        for user in EVEN[:6]:
            assert gone not in rec.recommend(user, k=30, stage="candidates")["video_id"].to_list()
    late = Recommender.load(model_dir, store=url, log=tmp_path / "c.sqlite")  # starts after all of it
    assert late.known_video("up-music") and gone not in slate(late, "u4") and top not in slate(late, "u2")


def test_replicas_agree_through_the_http_service(model_dir, redis_db, tmp_path):
    url, _ = redis_db
    one = load_service(model_dir, tmp_path / "one.sqlite", url)
    two = load_service(model_dir, tmp_path / "two.sqlite", url)
    with TestClient(one) as c1, TestClient(two) as c2:
        assert c1.post("/videos", json=MUSIC).status_code == 200
        assert (
            c2.post(
                "/events", json={"user_id": "u0", "video_id": "up-music", "event": "watch", "watch_seconds": 110.0}
            ).status_code
            == 200
        )  # known on two at once
        first = c2.get("/users/u6/recommendations", params={"k": 5}).json()["items"][0]["video_id"]
        assert c2.post("/events", json={"user_id": "u6", "video_id": first, "event": "dislike"}).status_code == 200
        assert first not in [i["video_id"] for i in c1.get("/users/u6/recommendations").json()["items"]]
        assert c1.delete(f"/videos/{first}").json() == {"removed": 1}
        items = c2.get("/users/u8/recommendations", params={"k": 30}).json()["items"]
        assert first not in [i["video_id"] for i in items]
        assert c1.get("/ready").json()["status"] == "ready"


def test_an_empty_redis_is_rebuilt_from_the_version_and_the_logs(model_dir, redis_db, tmp_path):
    url, client = redis_db
    a = Recommender.load(model_dir, store=url, log=tmp_path / "a.sqlite")
    b = Recommender.load(model_dir, store=url, log=tmp_path / "b.sqlite")
    top_a, top_b = slate(a, "u0")[0], slate(b, "u1")[0]
    a.observe(event(a, "u0", top_a, "dislike"))
    b.observe(event(b, "u1", top_b, "watch", 90.0))
    expected = (slate(a, "u0"), slate(a, "u1"))
    client.flushdb()  # Redis restarted without its data
    assert a.ready()["store"] != "ok"
    assert top_a not in slate(a, "u0")  # a reloads the version and replays its log ...
    assert top_b not in slate(b, "u1")  # ... b replays its own into the rebuilt store
    assert (slate(a, "u0"), slate(a, "u1")) == expected and a.ready()["store"] == "ok"
    assert a.store.cursor(a.log.id) == a.log.last() and a.store.cursor(b.log.id) == b.log.last()


def test_concurrent_readers_and_writers_lose_nothing(model_dir, tmp_path):
    rec = Recommender.load(model_dir, store=str(tmp_path / "state.sqlite"), log=tmp_path / "events.sqlite")
    videos = rec.catalogue.ids[:20]
    before = rec.live.total("impressions")
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            for j in range(50):
                rec.observe(event(rec, f"w{i}", videos[j % 20], "impression"))
                if j % 10 == 0:
                    rec.slate(f"u{(i + j) % 40}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert rec.log.count() == 800 and rec.store.cursor(rec.log.id) == rec.log.last()
    rec.slate("u0")  # one more request applies whatever the feed still holds
    assert rec.live.total("impressions") == before + 800
    again = Recommender.load(model_dir, store=str(tmp_path / "state.sqlite"), log=tmp_path / "events.sqlite")
    assert again.live.total("impressions") == before + 800
    for i in range(16):
        record, _, _ = again.store.read(f"w{i}", again.store.FEED_START)
        assert record.counts["impressions"] == 50


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def test_serving_never_changes_a_version(model_dir, tmp_path):
    import shutil

    own = tmp_path / "model"
    shutil.copytree(model_dir, own)
    version = next(p for p in own.iterdir() if p.name.startswith("v"))
    files = _digest(version)
    offline = Recommender.load(own).recommend_batch(EVEN, k=10)
    app = load_service(own)
    with TestClient(app) as client:
        assert client.post("/videos", json=MUSIC).status_code == 200
        for user in EVEN:
            first = client.get(f"/users/{user}/recommendations").json()["items"][0]["video_id"]
            assert (
                client.post("/events", json={"user_id": user, "video_id": first, "event": "dislike"}).status_code == 200
            )
        assert client.delete("/videos/v0").status_code == 200
    restarted = load_service(own)
    with TestClient(restarted) as client:
        assert client.get("/users/u0/recommendations").status_code == 200
    assert _digest(version) == files
    assert Recommender.load(own).recommend_batch(EVEN, k=10).equals(offline)  # the version alone: as before
