"""POST /videos and DELETE /videos/{id} on a real trained model, across a restart."""

from __future__ import annotations

import polars as pl
import pytest
from fastapi.testclient import TestClient

from tests.serving.serving_fakes import CatalogueRecommender
from tests.tiny_platform import small_config, two_audiences
from vidrec.features.store import EventLog
from vidrec.recommender import Recommender
from vidrec.serving.app import create_app
from vidrec.serving.runtime import load_service

EVEN = [f"u{i}" for i in range(0, 40, 2)]
MUSIC = {"video_id": "up-music", "creator_id": "c0", "category": "music", "tags": ["even"], "duration_seconds": 120}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("served-videos")
    Recommender.train(two_audiences(), small_config(), log=lambda m: None).save(root)
    return root


def two_tower_users(app, video_id: str) -> set[str]:
    """Users whose two-tower candidates hold ``video_id`` (the service's recommender, stage 1)."""
    rec = app.state.recommender
    gen = next(g for g in rec.pipeline.generators if g.name == "two_tower")
    out = gen.generate(rec.user_state(EVEN), 9, rec.now)  # each even user's 8 unseen music videos + 1
    return set(out.filter(pl.col("video_id") == video_id)["user_id"].to_list())


def test_upload_is_served_at_once_and_survives_a_restart(model_dir, tmp_path):
    db = tmp_path / "events.sqlite"
    app = load_service(model_dir, db)
    with TestClient(app) as client:
        assert two_tower_users(app, "up-music") == set()
        r = client.post("/videos", json=[MUSIC, {**MUSIC, "video_id": "up-news", "category": "news",
                                                 "tags": ["odd"], "creator_id": "c1"}])  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json() == {"accepted": 2}
        assert len(two_tower_users(app, "up-music")) >= 0.9 * len(EVEN)
        cands = app.state.recommender.recommend("u0", k=30, stage="candidates")  # a view of one pass
        assert "up-music" in cands["video_id"].to_list()
        ok = client.post("/events", json={"user_id": "u0", "video_id": "up-news", "event": "dislike"})
        assert ok.status_code == 200, ok.text  # events about an upload are accepted at once
        assert client.delete("/videos/up-music").json() == {"removed": 1}
        for user in ("u0", "u2"):
            items = client.get(f"/users/{user}/recommendations", params={"k": 10}).json()["items"]
            assert "up-music" not in [i["video_id"] for i in items]
    restarted = load_service(model_dir, db)
    with TestClient(restarted) as client:  # uploads, removals and events replayed
        rec = restarted.state.recommender
        assert rec.known_video("up-news") and rec.known_video("up-music")
        assert not rec.recommend_batch(EVEN, k=30, stage="candidates")["video_id"].is_in(["up-music"]).any()
        assert "up-news" in rec.user_state(["u0"])["disliked"][0].to_list()
        assert client.post("/videos", json=MUSIC).status_code == 422  # still taken


def test_invalid_uploads_get_422_naming_row_and_field(tmp_path):
    store = EventLog(tmp_path / "e.sqlite")
    with TestClient(create_app(CatalogueRecommender({"v1": 1.0}, store))) as client:
        r = client.post("/videos", json=[MUSIC, {**MUSIC, "video_id": "x", "duration_seconds": 0},
                                         {**MUSIC, "video_id": "y", "uploaded_at": "1850-01-01T00:00:00"},
                                         {**MUSIC, "video_id": "z", "uploaded_at": 1700000000}])  # fmt: skip
        assert r.status_code == 422
        fields = [e["field"] for e in r.json()["errors"]]
        assert fields == ["body[1].duration_seconds", "body[2].uploaded_at", "body[3].uploaded_at"]
        assert "ISO 8601" in r.json()["errors"][2]["message"]
        assert "duration_seconds must be a finite number above 0" in r.text
        r = client.post("/videos", json=[{**MUSIC, "video_id": "v1"}, MUSIC, MUSIC])
        assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["body[0].video_id", "body[2].video_id"]
        r = client.post("/videos", json={k: v for k, v in MUSIC.items() if k != "category"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.category"
        assert store.uploaded_videos().is_empty()  # nothing refused was stored
        r = client.delete("/videos/nope")
        assert r.status_code == 404 and "nope" in r.text
        assert client.post("/videos", json=MUSIC).status_code == 200
        assert store.uploaded_videos()["tags"].to_list() == [["even"]]


def test_an_id_stored_meanwhile_is_a_409_and_nothing_is_added(tmp_path):
    store = EventLog(tmp_path / "e.sqlite")
    rec = CatalogueRecommender({"v1": 1.0}, store)
    with TestClient(create_app(rec)) as client:
        store.append_videos(pl.DataFrame([{**MUSIC, "uploaded_at": rec.now, "available": True}]))  # another replica
        r = client.post("/videos", json=MUSIC)
        assert r.status_code == 409, r.text
        assert "never reused" in r.json()["errors"][0]["message"]
        assert not rec.known_video("up-music")
        bad = client.post("/videos", json={**MUSIC, "video_id": "up-bad", "duration_seconds": -1})
        assert bad.status_code == 422
        assert store.uploaded_videos()["video_id"].to_list() == ["up-music"]  # nothing invalid was stored


def test_a_new_version_serves_the_log_of_the_one_before(model_dir, tmp_path):
    import shutil

    own = tmp_path / "model"
    shutil.copytree(model_dir, own)
    db = tmp_path / "events.sqlite"
    app = load_service(own, db)
    with TestClient(app) as client:
        assert client.post("/events", json={"user_id": "u0", "video_id": "v1", "event": "dislike"}).status_code == 200
    old = app.state.recommender.path
    app.state.recommender.save(own)  # a new version: its own (empty) state, the model directory's log
    restarted = load_service(own, db).state.recommender
    assert restarted.path != old
    assert restarted.user_state(["u0"])["disliked"][0].to_list().count("v1") == 1
