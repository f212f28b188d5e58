"""The HTTP API driven through its client: status codes, bodies, durability, honesty."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest
from fastapi.testclient import TestClient

from tests.serving.serving_fakes import CatalogueRecommender
from vidrec.features.store import EventLog
from vidrec.serving import create_app

SCORES = {f"v{i:02d}": 1.0 - i / 100 for i in range(30)}


@pytest.fixture
def db(tmp_path):
    return tmp_path / "events.sqlite"


@pytest.fixture
def recommender(db) -> CatalogueRecommender:
    return CatalogueRecommender(dict(SCORES), EventLog(db))


@pytest.fixture
def client(recommender):
    with TestClient(create_app(recommender)) as c:
        yield c
    recommender.log.close()


def stored(db) -> pl.DataFrame:
    """Read the events back through a fresh connection to the file."""
    again = EventLog(db)
    try:
        return again.all_events()
    finally:
        again.close()


def top(client: TestClient, user: str, k: int = 10) -> list[str]:
    r = client.get(f"/users/{user}/recommendations", params={"k": k})
    assert r.status_code == 200, r.text
    return [item["video_id"] for item in r.json()["items"]]


def test_health(client) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


def test_recommendations_body_follows_the_contract(client) -> None:
    r = client.get("/users/alice/recommendations")
    assert r.status_code == 200
    body = r.json()
    assert (body["user_id"], body["k"], len(body["items"])) == ("alice", 10, 10)
    first = body["items"][0]
    assert first == {
        "rank": 1, "video_id": "v00", "score": 1.0, "sources": ["popular"], "retrieval_score": None,
        "p_complete": 0.5, "probabilities": {"p_complete": 0.5}, "adjustments": [],
    }
    assert [i["rank"] for i in body["items"]] == list(range(1, 11))
    assert top(client, "alice", k=3) == ["v00", "v01", "v02"]


@pytest.mark.parametrize("k", ["0", "501", "-3", "ten"])
def test_k_out_of_range_is_a_readable_422(client, k) -> None:
    r = client.get("/users/alice/recommendations", params={"k": k})
    assert r.status_code == 422
    body = r.json()
    assert body["errors"][0]["field"] == "query.k"
    assert body["detail"].startswith("invalid request: query.k: ")


def test_a_posted_dislike_is_honoured_by_the_very_next_request(client, db) -> None:
    assert top(client, "bob", k=3) == ["v00", "v01", "v02"]
    r = client.post("/events", json={"user_id": "bob", "video_id": "v01", "event": "dislike"})
    assert r.status_code == 200
    assert r.json() == {"accepted": 1, "duplicates": 0, "applied": True}
    assert top(client, "bob", k=3) == ["v00", "v02", "v03"]
    assert top(client, "carol", k=3) == ["v00", "v01", "v02"]  # other users unaffected
    saved = stored(db)
    assert saved.select("user_id", "video_id", "event", "watch_seconds").rows() == [("bob", "v01", "dislike", None)]


def test_a_batch_is_stored_durably_with_given_or_default_times(client, db, recommender) -> None:
    before = datetime.now(UTC)
    batch = [
        {"user_id": "dan", "video_id": "v00", "event": "watch", "watch_seconds": 42.5,
         "ts": "2025-02-03T04:05:06.789+01:00"},
        {"user_id": "dan", "video_id": "v05", "event": "impression"},
        {"user_id": "eve", "video_id": "v07", "event": "like", "ts": "2025-02-03T10:00:00"},
    ]
    r = client.post("/events", json=batch)
    after = datetime.now(UTC)
    assert r.status_code == 200 and r.json() == {"accepted": 3, "duplicates": 0, "applied": True}
    saved = stored(db).sort("user_id", "video_id")
    assert saved["event"].to_list() == ["watch", "impression", "like"]
    assert saved["watch_seconds"].to_list() == [42.5, None, None]
    ts = saved["ts"].to_list()
    assert ts[0] == datetime(2025, 2, 3, 3, 5, 6, 789000, tzinfo=UTC)
    assert before <= ts[1] <= after
    assert ts[2] == datetime(2025, 2, 3, 10, tzinfo=UTC)  # no offset: taken as UTC
    assert recommender.observed[0].drop("event_id").sort("ts").equals(stored(db))  # it saw what was stored
    assert "v00" not in top(client, "dan", k=30)


@pytest.mark.parametrize(
    ("event", "field", "words"),
    [
        ({"user_id": "u", "video_id": "v00", "event": "watch"}, "body.watch_seconds", "a watch event needs"),
        ({"user_id": "u", "video_id": "v00", "event": "like", "watch_seconds": 3}, "body.watch_seconds",
         "only watch events carry watch_seconds"),
        ({"user_id": "u", "video_id": "v00", "event": "watch", "watch_seconds": -1}, "body.watch_seconds",
         "from 0 to 604,800"),
        ({"user_id": "u", "video_id": "v00", "event": "watch", "watch_seconds": 1e308}, "body.watch_seconds",
         "a week"),
        ({"user_id": "u", "video_id": "v00", "event": "like", "ts": 1700000000}, "body.ts", "ISO 8601"),
        ({"user_id": "u", "video_id": "v00", "event": "like", "ts": 1.7e12}, "body.ts", "ISO 8601"),
        ({"user_id": "u", "video_id": "v00", "event": "like", "ts": "1700000000"}, "body.ts", "ISO 8601"),
        ({"user_id": "u", "video_id": "v00", "event": "watch", "watch_seconds": "NaN"}, "body.watch_seconds",
         "a number of seconds"),
        ({"user_id": "u", "video_id": "v00", "event": "share"}, "body.event", "'watch', 'like'"),
        ({"user_id": "u", "video_id": "v00", "event": "like", "ts": "1960-01-01T00:00:00Z"}, "body.ts",
         "1970-01-01"),
        ({"user_id": "u", "video_id": "v00", "event": "like", "watch_second": 3}, "body.watch_second",
         "not a known field"),
        ({"video_id": "v00", "event": "like"}, "body.user_id", "is required"),
        ({"user_id": "", "video_id": "v00", "event": "like"}, "body.user_id", "at least 1 character"),
    ],
)
def test_invalid_events_get_a_422_naming_the_field(client, db, event, field, words) -> None:
    r = client.post("/events", json=event)
    assert r.status_code == 422, r.text
    problems = r.json()["errors"]
    assert [p["field"] for p in problems] == [field]
    assert words in problems[0]["message"]
    assert words in r.json()["detail"]
    assert stored(db).height == 0


def test_an_unknown_video_refuses_the_whole_batch_and_says_what_to_do(client, db, recommender) -> None:
    batch = [
        {"user_id": "u", "video_id": "v00", "event": "like"},
        {"user_id": "u", "video_id": "nope", "event": "like"},
    ]
    r = client.post("/events", json=batch)
    assert r.status_code == 422
    (problem,) = r.json()["errors"]
    assert problem["field"] == "body[1].video_id"
    assert "'nope' is not in the catalogue" in problem["message"]
    assert "POST /videos" in problem["message"]
    assert stored(db).height == 0 and recommender.observed == []


def test_errors_in_a_batch_point_at_the_item(client) -> None:
    batch = [{"user_id": "u", "video_id": "v00", "event": "like"}, {"user_id": "u", "video_id": "v00"}]
    r = client.post("/events", json=batch)
    assert r.status_code == 422
    assert [p["field"] for p in r.json()["errors"]] == ["body[1].event"]


@pytest.mark.parametrize(
    ("content", "words"),
    [("{not json", "not valid JSON"), ("[]", "at least 1 item"), ("", "is required"), ('"like"', "dictionary")],
)
def test_malformed_bodies_are_readable_422s(client, content, words) -> None:
    r = client.post("/events", content=content, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert words in r.json()["detail"]


def test_unknown_users_get_recommendations(client) -> None:
    assert len(top(client, "never-seen-before", k=5)) == 5


def test_failures_inside_the_recommender_are_a_json_500(recommender) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("model file vanished")

    recommender.slate = broken
    with TestClient(create_app(recommender), raise_server_exceptions=False) as c:
        r = c.get("/users/u/recommendations")
    assert r.status_code == 500
    assert "RuntimeError" in r.json()["detail"]


def test_readiness_reports_each_dependency(client, recommender) -> None:
    assert client.get("/ready").json() == {"status": "ready", "checks": {"store": "ok"}, "model_version": None}
    recommender.ready = lambda: {"store": "unreachable: ConnectionError"}
    r = client.get("/ready")
    assert r.status_code == 503 and r.json()["checks"]["store"].startswith("unreachable")
