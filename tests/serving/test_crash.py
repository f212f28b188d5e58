"""``kill -9`` while clients post events: every acknowledged event survives, stored once and applied."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.tiny_platform import small_config, two_audiences
from vidrec.recommender import Recommender

CLIENTS = 8
N_VIDEOS = 40


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``vidrec serve`` in its own process group, so ``kill -9`` takes its workers too."""

    def __init__(self, model: Path, workers: int, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "vidrec", "serve", str(model), "--port", str(self.port), "--no-auth",
               "--workers", str(workers), "--no-access-log"]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log.open("a"), start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.kill()
        pytest.fail(f"the server did not start: {log.read_text()[-2000:]}")

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


def _post_until_refused(url: str, client: int, rnd: int, acked: list[dict], stop: threading.Event) -> None:
    """Post dislikes of one user, each with its own event_id; keep those answered 2xx."""
    i = 0
    with httpx.Client(base_url=url, timeout=10) as http:
        while not stop.is_set():
            video = (client * 5 + rnd + i % 3) % N_VIDEOS  # 5 videos per user over the rounds
            event = {"user_id": f"crash{client}", "video_id": f"v{video}", "event": "dislike",
                     "event_id": f"r{rnd}-c{client}-{i}"}  # fmt: skip
            i += 1
            try:
                r = http.post("/events", json=event)
            except httpx.HTTPError:
                return  # the server is gone
            if r.status_code in (200, 202):
                acked.append(event)
            else:
                raise AssertionError(f"{r.status_code}: {r.text}")


@pytest.mark.parametrize("workers", [1, 2])
def test_no_acknowledged_event_is_lost_to_kill_9(tmp_path, workers) -> None:
    Recommender.train(two_audiences(n_videos=N_VIDEOS), small_config(), log=lambda m: None).save(tmp_path / "m")
    log = tmp_path / "serve.log"
    acked: list[dict] = []
    for rnd in range(3):
        server = Server(tmp_path / "m", workers, log)
        stop = threading.Event()
        before = len(acked)
        threads = [threading.Thread(target=_post_until_refused, args=(server.url, c, rnd, acked, stop))
                   for c in range(CLIENTS)]  # fmt: skip
        for t in threads:
            t.start()
        while len(acked) < before + 150:  # the kill lands mid-stream, with requests in flight
            time.sleep(0.01)
            assert any(t.is_alive() for t in threads), "every client stopped before the kill"
        server.kill()
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert len(acked) >= 450
    logging.getLogger(__name__).info("%d events acknowledged over 3 kills", len(acked))
    server = Server(tmp_path / "m", workers, log)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            retried = http.post("/events", json=acked).json()  # every acknowledged event is in the log
            assert retried["accepted"] == 0 and retried["duplicates"] == len(acked), retried
            for client in range(CLIENTS):  # and applied: no disliked video comes back
                disliked = {e["video_id"] for e in acked if e["user_id"] == f"crash{client}"}
                items = http.get(f"/users/crash{client}/recommendations", params={"k": 10}).json()["items"]
                assert len(items) == 10 and not disliked & {i["video_id"] for i in items}
    finally:
        server.kill()
    assert "Traceback" not in log.read_text()
