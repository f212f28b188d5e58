"""The read-only listings the browser UI shows, on the real service over a tiny trained model:
users, a user's history from the online store, catalogue pages and videos by id."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest
from fastapi.testclient import TestClient

from tests.tiny_platform import small_config, two_audiences
from vidrec.recommender import Recommender
from vidrec.serving.auth import KeyRing, create_key
from vidrec.serving.runtime import load_service

UPLOAD = {"video_id": "up-1", "creator_id": "c9", "category": "music", "tags": ["even"], "duration_seconds": 60,
          "title": "<b>new</b> & shiny"}  # fmt: skip


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("browse")
    Recommender.train(two_audiences(), small_config(), log=lambda m: None).save(root)
    return root


@pytest.fixture
def client(model_dir, tmp_path):
    app = load_service(model_dir, tmp_path / "events.sqlite", feature_store=str(tmp_path / "store.sqlite"))
    with TestClient(app) as c:
        yield c
    app.state.recommender.close()


def test_users_are_paged_in_table_order(client) -> None:
    first = client.get("/users", params={"limit": 3}).json()
    assert first["total"] == 40 and [u["user_id"] for u in first["items"]] == ["u0", "u1", "u2"]
    second = client.get("/users", params={"offset": 3, "limit": 2}).json()
    assert [u["user_id"] for u in second["items"]] == ["u3", "u4"]
    assert client.get("/users", params={"offset": 40}).json()["items"] == []


def test_history_is_the_users_record_latest_first(client) -> None:
    events = two_audiences().events.filter(pl.col("user_id") == "u1")
    body = client.get("/users/u1/history", params={"limit": 500}).json()
    assert body["known"] and body["total"] == events["video_id"].n_unique()
    items = body["items"]
    assert {i["video_id"] for i in items} == set(events["video_id"])
    last = [datetime.fromisoformat(i["last_at"]) for i in items]
    assert last == sorted(last, reverse=True)
    done = events.filter(pl.col("watch_seconds") >= 80)["video_id"].to_list()
    assert {i["video_id"] for i in items if i["completed_at"]} == set(done)
    assert all(i["watched_at"] and not i["liked_at"] and not i["disliked_at"] for i in items)
    assert len(client.get("/users/u1/history", params={"limit": 2}).json()["items"]) == 2


def test_posted_likes_and_dislikes_show_in_the_history_at_once(client) -> None:
    assert client.post("/events", json={"user_id": "newcomer", "video_id": "v4", "event": "like",
                                        "ts": "2025-06-25T10:00:00Z"}).status_code == 200  # fmt: skip
    assert client.post("/events", json={"user_id": "newcomer", "video_id": "v5", "event": "dislike",
                                        "ts": "2025-06-25T11:00:00Z"}).status_code == 200  # fmt: skip
    body = client.get("/users/newcomer/history").json()
    assert body["known"] and body["total"] == 2
    (disliked, liked) = body["items"]
    assert (disliked["video_id"], disliked["disliked_at"], disliked["liked_at"]) == ("v5", "2025-06-25T11:00:00Z", None)
    assert (liked["video_id"], liked["liked_at"], liked["watched_at"]) == ("v4", "2025-06-25T10:00:00Z", None)
    assert liked["category"] == "music" and liked["creator_id"] == "c4"


def test_an_unknown_user_has_an_empty_history(client) -> None:
    assert client.get("/users/nobody/history").json() == {"user_id": "nobody", "known": False, "total": 0, "items": []}


def test_catalogue_pages_uploads_first_and_removals_marked(client) -> None:
    oldest = client.get("/videos", params={"order": "oldest", "limit": 3}).json()
    assert oldest["total"] == 40 and [v["video_id"] for v in oldest["items"]] == ["v0", "v1", "v2"]
    assert client.post("/videos", json=UPLOAD).status_code == 200
    assert client.delete("/videos/v39").status_code == 200
    newest = client.get("/videos", params={"limit": 2}).json()
    assert newest["total"] == 41 and [v["video_id"] for v in newest["items"]] == ["up-1", "v39"]
    up, gone = newest["items"]
    assert (up["title"], up["tags"], up["duration_seconds"], up["available"]) == (UPLOAD["title"], ["even"], 60.0, True)
    assert gone["available"] is False
    tail = client.get("/videos", params={"offset": 40, "limit": 50}).json()
    assert [v["video_id"] for v in tail["items"]] == ["v0"]


def test_videos_by_id_keep_the_order_asked_and_name_the_missing(client) -> None:
    body = client.get("/videos", params=[("id", "v7"), ("id", "ghost"), ("id", "v2"), ("id", "v7")]).json()
    assert [v["video_id"] for v in body["items"]] == ["v7", "v2"] and body["missing"] == ["ghost"]


@pytest.mark.parametrize(("path", "params", "field"), [
    ("/videos", {"offset": -1}, "query.offset"),
    ("/videos", {"limit": 0}, "query.limit"),
    ("/videos", {"limit": 501}, "query.limit"),
    ("/videos", {"order": "random"}, "query.order"),
    ("/videos", {"id": "bad\nid"}, "query.id[0]"),
    ("/users", {"limit": "ten"}, "query.limit"),
    ("/users/u1/history", {"limit": 0}, "query.limit"),
])  # fmt: skip
def test_bad_listing_parameters_are_readable_422s(client, path, params, field) -> None:
    r = client.get(path, params=params)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == field and r.json()["detail"].startswith(f"invalid request: {field}: ")


def test_listings_need_a_key_when_the_ring_protects_reads(model_dir, tmp_path) -> None:
    secret = create_key(tmp_path / "keys.json", "reader", ["recommendations:read"])
    ring = KeyRing(list(KeyRing.from_file(tmp_path / "keys.json").keys.values()), protect_reads=True)
    app = load_service(model_dir, tmp_path / "events.sqlite", feature_store=str(tmp_path / "store.sqlite"), keys=ring)
    with TestClient(app) as c:
        for path in ("/users", "/users/u1/history", "/videos"):
            assert c.get(path).status_code == 401
            assert c.get(path, headers={"X-API-Key": secret}).status_code == 200
        assert c.get("/").status_code == 200  # the page itself holds no data
    app.state.recommender.close()


def test_the_page_and_its_files_are_served_from_the_package(client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/ui/app.js"' in page.text and "http" not in page.text.split("<body>")[0]
    assert client.get("/ui/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/ui/style.css").headers["content-type"].startswith("text/css")
    assert "innerHTML" not in client.get("/ui/app.js").text
    assert client.get("/nope").status_code == 404
    assert "/" not in client.get("/openapi.json").json()["paths"]
