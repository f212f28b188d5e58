"""Retried POSTs store nothing twice; a store that is down loses no acknowledged event."""

from __future__ import annotations

import shutil

import pytest
from fastapi.testclient import TestClient

from tests.redis_server import REDIS_BINARY, RedisServer
from tests.tiny_platform import small_config, two_audiences
from vidrec.features.store import EventLog
from vidrec.recommender import Recommender
from vidrec.serving.runtime import load_service


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("idempotent")
    Recommender.train(two_audiences(), small_config(), log=lambda m: None).save(root)
    return root


def watch(user: str, video: str, event_id: str | None = None) -> dict:
    body = {"user_id": user, "video_id": video, "event": "watch", "watch_seconds": 30.0}
    return body | ({"event_id": event_id} if event_id else {})


def views(client: TestClient, user: str) -> int:
    rec = client.app.state.recommender  # type: ignore[attr-defined]
    return int(rec.request(user).count("views"))


def test_a_retried_post_stores_nothing_twice(model_dir, tmp_path) -> None:
    db = tmp_path / "events.sqlite"
    with TestClient(load_service(model_dir, db)) as c:
        before = views(c, "u0")
        first = c.post("/events", json=watch("u0", "v1", "e-1"))
        assert first.status_code == 200 and first.json() == {"accepted": 1, "duplicates": 0, "applied": True}
        again = c.post("/events", json=watch("u0", "v1", "e-1"))
        assert again.status_code == 200 and again.json() == {"accepted": 0, "duplicates": 1, "applied": True}
        overlap = c.post("/events", json=[watch("u0", "v1", "e-1"), watch("u0", "v2", "e-2"), watch("u0", "v3")])
        assert overlap.json() == {"accepted": 2, "duplicates": 1, "applied": True}
        twice = c.post("/events", json=[watch("u0", "v1", "e-9"), watch("u0", "v2", "e-9")])
        assert twice.status_code == 422 and "body[1].event_id" in twice.text
        assert views(c, "u0") == before + 3  # the store counted each event once
    log = EventLog(db)
    assert log.count() == 3 and len(log.batches()) == 2  # the all-duplicate retry made no batch
    log.close()
    with TestClient(load_service(model_dir, db)) as c:  # after a restart the ids are still known
        assert c.post("/events", json=watch("u0", "v2", "e-2")).json()["duplicates"] == 1


@pytest.mark.skipif(shutil.which(REDIS_BINARY) is None, reason="needs redis-server")
@pytest.mark.parametrize("workers", [1, 2])
def test_events_posted_while_redis_is_down_are_stored_and_applied_when_it_returns(model_dir, tmp_path, workers,
                                                                                  caplog) -> None:  # fmt: skip
    server = RedisServer(tmp_path)
    db = tmp_path / "events.sqlite"
    try:
        with TestClient(load_service(model_dir, db, server.url, workers=workers)) as c:
            top = c.get("/users/u0/recommendations", params={"k": 5}).json()["items"][0]["video_id"]
            server.stop()
            down = c.post("/events", json={"user_id": "u0", "video_id": top, "event": "dislike", "event_id": "d-1"})
            assert down.status_code == 202 and down.json() == {"accepted": 1, "duplicates": 0, "applied": False}
            assert c.get("/ready").status_code == 503
            refused = c.get("/users/u0/recommendations")
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
            assert refused.headers["x-request-id"] in caplog.text  # the log line names the request
            retry = c.post("/events", json={"user_id": "u0", "video_id": top, "event": "dislike", "event_id": "d-1"})
            assert retry.json()["duplicates"] == 1  # the client's retry is a no-op: the log has it
            server = RedisServer(tmp_path, port=server.port)  # back, and empty
            for _ in range(2 * workers):  # each worker: rebuilt from the log, the dislike holds
                items = c.get("/users/u0/recommendations", params={"k": 10}).json()["items"]
                assert top not in [i["video_id"] for i in items]
            assert c.get("/ready").status_code == 200
    finally:
        server.stop()
