"""The real service on a real trained model: recommendations, feedback, restarts."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.tiny_platform import small_config, two_audiences
from vidrec.recommender import Recommender
from vidrec.reranking.select import REASONS
from vidrec.serving.runtime import load_service


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    Recommender.train(two_audiences(), small_config(), log=lambda m: None).save(root)
    return root


def test_dislike_is_honoured_next_call_and_survives_a_restart(model_dir, tmp_path) -> None:
    db = tmp_path / "events.sqlite"
    with TestClient(load_service(model_dir, db)) as client:
        first = client.get("/users/u1/recommendations", params={"k": 5})
        assert first.status_code == 200
        items = first.json()["items"]
        assert len(items) == 5 and all(i["sources"] for i in items)
        assert all(0.0 <= i["p_complete"] <= 1.0 for i in items)
        top = items[0]["video_id"]
        posted = client.post("/events", json={"user_id": "u1", "video_id": top, "event": "dislike"})
        assert posted.status_code == 200, posted.text
        again = client.get("/users/u1/recommendations", params={"k": 5}).json()["items"]
        assert top not in [i["video_id"] for i in again]
    with TestClient(load_service(model_dir, db)) as client:  # a restart replays stored events
        after = client.get("/users/u1/recommendations", params={"k": 5}).json()["items"]
        assert top not in [i["video_id"] for i in after]


def test_watch_is_not_shown_again(model_dir, tmp_path) -> None:
    with TestClient(load_service(model_dir, tmp_path / "e.sqlite")) as client:
        top = client.get("/users/u2/recommendations", params={"k": 3}).json()["items"][0]["video_id"]
        body = {"user_id": "u2", "video_id": top, "event": "watch", "watch_seconds": 90.0}
        assert client.post("/events", json=body).status_code == 200
        items = client.get("/users/u2/recommendations", params={"k": 3}).json()["items"]
        assert top not in [i["video_id"] for i in items]


def test_bad_requests_get_readable_4xx(model_dir, tmp_path) -> None:
    with TestClient(load_service(model_dir, tmp_path / "e.sqlite")) as client:
        r = client.get("/users/u1/recommendations", params={"k": 0})
        assert r.status_code == 422 and "k" in r.text
        r = client.post("/events", json={"user_id": "u1", "video_id": "no-such-video", "event": "like"})
        assert r.status_code == 422 and "no-such-video" in r.text
        r = client.post("/events", json={"user_id": "u1", "video_id": "v1", "event": "watch"})
        assert r.status_code == 422 and "watch_seconds" in r.text


def test_debug_adds_the_left_out_candidates_from_the_same_pass(model_dir, tmp_path) -> None:
    with TestClient(load_service(model_dir, tmp_path / "e.sqlite")) as client:
        plain = client.get("/users/u1/recommendations", params={"k": 5}).json()
        debug = client.get("/users/u1/recommendations", params={"k": 5, "debug": True}).json()
    assert plain.get("removed") is None
    assert debug["items"] == plain["items"]
    shown = {i["video_id"] for i in debug["items"]}
    removed = debug["removed"]
    assert removed and not shown & {r["video_id"] for r in removed}
    assert {r["reason"] for r in removed} <= set(REASONS)
    assert [r["score"] for r in removed] == sorted((r["score"] for r in removed), reverse=True)
