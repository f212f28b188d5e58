"""Hot reload: a new version verified, loaded beside the old one and swapped in between
requests; a version that fails is refused and the old one serves on."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.tiny_platform import small_config, two_audiences
from vidrec.recommender import Recommender
from vidrec.serving.auth import KeyRing, create_key
from vidrec.serving.runtime import load_recommender, load_service
from vidrec.versions import LATEST


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A model directory with two versions of different models (LATEST names the second)."""
    root = tmp_path_factory.mktemp("versions")
    Recommender.train(two_audiences(), small_config(), log=lambda m: None).save(root)
    Recommender.train(two_audiences(seed=1), small_config(), log=lambda m: None).save(root)
    return root


@pytest.fixture
def model(trained, tmp_path) -> Path:
    """A private copy serving its first version (LATEST moved back to it)."""
    root = shutil.copytree(trained, tmp_path / "model")
    point(root, versions(root)[0])
    return root


def versions(root: Path) -> list[str]:
    return sorted(p.name for p in root.glob("v*") if p.is_dir())


def point(root: Path, name: str) -> None:
    (root / LATEST).write_text(name + "\n")


def slate(client, user: str, k: int = 5) -> list[str]:
    r = client.get(f"/users/{user}/recommendations", params={"k": k})
    assert r.status_code == 200, r.text
    return [i["video_id"] for i in r.json()["items"]]


def test_reload_serves_the_new_version_with_the_writes_of_the_old(model, tmp_path) -> None:
    v1, v2 = versions(model)
    with TestClient(load_service(model)) as client:
        assert client.get("/ready").json()["model_version"] == v1
        top = slate(client, "u1")[0]
        assert client.post("/events", json={"user_id": "u1", "video_id": top, "event": "dislike"}).status_code == 200
        assert client.post("/admin/reload").json() == {"version": v1, "previous": v1, "changed": False, "keys": None}
        point(model, v2)
        r = client.post("/admin/reload")
        assert r.status_code == 200, r.text
        assert r.json() == {"version": v2, "previous": v1, "changed": True, "keys": None}
        ready = client.get("/ready").json()
        assert ready["status"] == "ready" and ready["model_version"] == v2
        served = slate(client, "u5")
        assert top not in slate(client, "u1", k=10)  # the dislike posted to v1 holds on v2
    fresh = {}  # each version started afresh on the same log: the reloaded service serves v2's slate
    for name in (v1, v2):
        log = tmp_path / f"{name}.sqlite"
        with sqlite3.connect(model / "events.sqlite") as src, sqlite3.connect(log) as dst:
            src.backup(dst)  # the log as the service wrote it, its WAL included
        with TestClient(load_service(model / name, log, str(tmp_path / f"{name}-state.sqlite"))) as other:
            fresh[name] = slate(other, "u5")
    assert served == fresh[v2] != fresh[v1]


def test_a_corrupt_version_is_refused_and_the_old_one_serves_on(model) -> None:
    v1, v2 = versions(model)
    weights = next((model / v2).rglob("*.pt"))
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x40
    weights.write_bytes(bytes(data))
    with TestClient(load_service(model)) as client:
        before = slate(client, "u3")
        point(model, v2)
        r = client.post("/admin/reload")
        assert r.status_code == 409
        assert weights.name in r.json()["detail"] and "Traceback" not in r.text
        assert client.get("/ready").json()["model_version"] == v1
        assert slate(client, "u3") == before
        point(model, "../elsewhere")  # LATEST is never followed out of the model directory
        assert client.post("/admin/reload").status_code == 409
        for name in ("../etc", "v20990101T000000000000"):
            r = client.post("/admin/reload", json={"version": name})
            assert r.status_code == 409 and r.json()["errors"][0]["field"] == "body.version", r.text
        assert client.post("/admin/reload", json={"versions": v1}).status_code == 422
        assert slate(client, "u3") == before


def test_a_version_is_chosen_by_name_to_roll_back(model) -> None:
    v1, v2 = versions(model)
    point(model, v2)
    with TestClient(load_service(model)) as client:
        assert client.get("/ready").json()["model_version"] == v2
        r = client.post("/admin/reload", json={"version": v1})
        assert r.status_code == 200 and r.json()["changed"] and r.json()["version"] == v1
        assert client.get("/ready").json()["model_version"] == v1
        assert len(slate(client, "u0")) == 5


def test_reload_needs_its_own_scope_and_reads_the_key_file_again(model, tmp_path) -> None:
    keys = tmp_path / "keys.json"
    writer = create_key(keys, "writer", ["events:write"])
    admin = create_key(keys, "ops", ["service:reload"])
    later = tmp_path / "later.json"
    app = load_service(model, keys=KeyRing.from_file(keys), reload_keys=lambda: KeyRing.from_file(later))
    shutil.copy(keys, later)
    with TestClient(app) as client:
        assert client.post("/admin/reload").status_code == 401
        r = client.post("/admin/reload", headers={"X-API-Key": writer})
        assert r.status_code == 403 and "service:reload" in r.json()["detail"]
        from vidrec.serving.auth import revoke_key

        revoke_key(later, "writer")
        r = client.post("/admin/reload", headers={"X-API-Key": admin})
        assert r.status_code == 200 and r.json()["keys"] == 1
        body = {"user_id": "u1", "video_id": "v1", "event": "like"}
        assert client.post("/events", json=body, headers={"X-API-Key": writer}).status_code == 401  # revoked


def test_a_store_given_by_path_cannot_serve_another_version(model, tmp_path) -> None:
    v1, v2 = versions(model)
    with TestClient(load_service(model, feature_store=str(tmp_path / "mine.sqlite"))) as client:
        point(model, v2)
        r = client.post("/admin/reload")
        assert r.status_code == 409 and "mine.sqlite" in r.json()["detail"]
        assert client.get("/ready").json()["model_version"] == v1


def test_a_version_loaded_beside_another_catches_up_with_its_writes(model, tmp_path) -> None:
    """What a swap relies on: writes the old version took after the new one loaded reach the new
    one's store when it catches up."""
    v1, v2 = versions(model)
    log = tmp_path / "events.sqlite"
    old = load_recommender(model / v1, log)
    new = load_recommender(model / v2, log)
    top = new.slate("u7", 5)[0]["video_id"]
    old.observe(_dislike("u7", top, old))
    assert top in [i["video_id"] for i in new.slate("u7", 5)]  # not yet
    new.catch_up()
    assert top not in [i["video_id"] for i in new.slate("u7", 10)]
    old.close()
    new.close()


def _dislike(user: str, video: str, rec):
    from vidrec.serving.routers import events_frame
    from vidrec.serving.schemas import EventIn

    return events_frame([EventIn(user_id=user, video_id=video, event="dislike")], rec.now)


def test_a_worker_pool_reloads_while_requests_keep_coming(model, tmp_path) -> None:
    v1, v2 = versions(model)
    with TestClient(load_service(model, workers=2)) as client:
        top = slate(client, "u4")[0]
        assert client.post("/events", json={"user_id": "u4", "video_id": top, "event": "dislike"}).status_code == 200
        point(model, v2)
        with ThreadPoolExecutor(4) as pool:
            gets = [pool.submit(client.get, f"/users/u{i % 40}/recommendations") for i in range(40)]
            reload = pool.submit(client.post, "/admin/reload")
            gets += [pool.submit(client.get, f"/users/u{i % 40}/recommendations") for i in range(160)]
            codes = [f.result().status_code for f in gets]
        assert reload.result().status_code == 200, reload.result().text
        assert codes == [200] * len(codes)
        assert client.get("/ready").json()["model_version"] == v2
        for _ in range(4):  # every worker: the dislike holds on v2
            assert top not in slate(client, "u4", k=10)


def test_writes_during_a_reload_reach_the_new_version(model) -> None:
    """Dislikes posted while the new version loads, and while the swap waits for requests on the
    old one, all hold once it serves."""
    v1, v2 = versions(model)
    with TestClient(load_service(model)) as client:
        disliked = [f"v{i}" for i in range(0, 40, 3)]
        point(model, v2)
        with ThreadPoolExecutor(4) as pool:
            posts = [pool.submit(client.post, "/events", json={"user_id": "u9", "video_id": v, "event": "dislike",
                                                                "event_id": f"d-{v}"}) for v in disliked[:4]]  # fmt: skip
            reload = pool.submit(client.post, "/admin/reload")
            posts += [pool.submit(client.post, "/events", json={"user_id": "u9", "video_id": v, "event": "dislike",
                                                                 "event_id": f"d-{v}"}) for v in disliked[4:]]  # fmt: skip
            gets = [pool.submit(client.get, "/users/u9/recommendations") for _ in range(20)]
            assert {f.result().status_code for f in posts + gets} == {200}
        assert reload.result().status_code == 200
        shown = set(slate(client, "u9", k=40 - len(disliked)))
        assert not shown & set(disliked)
        retried = client.post("/events", json=[{"user_id": "u9", "video_id": v, "event": "dislike", "event_id": f"d-{v}"}
                                                for v in disliked]).json()  # fmt: skip
        assert retried["accepted"] == 0 and retried["duplicates"] == len(disliked)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_version(url: str, version: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    seen = None
    while time.monotonic() < deadline:
        try:
            seen = httpx.get(url + "/ready", timeout=2).json().get("model_version")
        except httpx.HTTPError:
            seen = None
        if seen == version:
            return
        time.sleep(0.2)
    raise AssertionError(f"still serving {seen}, not {version}")


def test_serve_reloads_when_latest_changes_and_on_sighup(model, tmp_path) -> None:
    v1, v2 = versions(model)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vidrec", "serve", str(model), "--port", str(port), "--no-auth", "--watch", "0.2",
         "--no-access-log"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "serve.log", "w"), env=env,
    )  # fmt: skip
    try:
        _wait_for_version(url, v1)
        point(model, v2)  # the watcher notices
        _wait_for_version(url, v2)
        bad = model / "v20990101T000000000000"
        shutil.copytree(model / v1, bad)
        (bad / "config.json").write_text("{}")
        point(model, bad.name)  # refused once, and v2 serves on
        time.sleep(1.0)
        assert httpx.get(url + "/ready", timeout=2).json()["model_version"] == v2
        assert len(httpx.get(url + "/users/u1/recommendations", timeout=5).json()["items"]) == 10
        point(model, v1)
        shutil.rmtree(bad)
        proc.send_signal(signal.SIGHUP)
        _wait_for_version(url, v1)
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    log = (tmp_path / "serve.log").read_text()
    assert "refused" in log and "Traceback" not in log

