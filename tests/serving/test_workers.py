"""``vidrec serve --workers 2`` from the command line: two model processes share the log and the store,
behind API keys read from ``$VIDREC_API_KEYS``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.tiny_platform import small_config, two_audiences
from vidrec.recommender import Recommender
from vidrec.serving.auth import create_key

MUSIC = {"video_id": "up-music", "creator_id": "c0", "category": "music", "tags": ["even"], "duration_seconds": 120}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(tmp_path):
    Recommender.train(two_audiences(), small_config(), log=lambda m: None).save(tmp_path / "model")
    secret = create_key(tmp_path / "keys.json", "tests", ["events:write", "catalogue:write"])
    port = _free_port()
    cmd = [sys.executable, "-m", "vidrec.cli", "serve", str(tmp_path / "model"), "--port", str(port),
           "--workers", "2", "--no-access-log"]  # fmt: skip
    env = {**os.environ, "VIDREC_API_KEYS": str(tmp_path / "keys.json")}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail(f"the server did not start: {proc.stdout.read().decode()[-2000:] if proc.stdout else ''}")
    yield base, {"Authorization": f"Bearer {secret}"}
    proc.terminate()
    proc.wait(timeout=30)


def test_every_worker_sees_every_write(served):
    base, auth = served
    with httpx.Client(base_url=base, timeout=30) as anonymous:
        assert anonymous.post("/videos", json=MUSIC).status_code == 401
    with httpx.Client(base_url=base, timeout=30, headers=auth) as c:
        first = c.get("/users/u0/recommendations", params={"k": 5}).json()["items"][0]["video_id"]
        assert c.post("/events", json={"user_id": "u0", "video_id": first, "event": "dislike"}).status_code == 200
        assert c.post("/videos", json=MUSIC).status_code == 200
        for _ in range(2):  # straight after the upload, on either worker: the listing reads the store's feed first
            assert c.get("/videos", params={"limit": 1}).json()["items"][0]["video_id"] == "up-music"
        for _ in range(20):  # new connections, and batches on either worker
            with httpx.Client(base_url=base, timeout=30, headers=auth) as fresh:
                items = fresh.get("/users/u0/recommendations", params={"k": 10}).json()["items"]
                assert first not in [i["video_id"] for i in items]
                ok = fresh.post("/events", json={"user_id": "u2", "video_id": "up-music", "event": "impression"})
                assert ok.status_code == 200, ok.text
                assert fresh.get("/videos", params={"limit": 1}).json()["items"][0]["video_id"] == "up-music"
                history = {h["video_id"]: h for h in fresh.get("/users/u0/history").json()["items"]}
                assert history[first]["disliked_at"] is not None
