"""``vidrec serve`` in a child process on a free loopback port, for end-to-end tests and scripts.

The service keeps its event log and online store in a work directory of its own, so a model
directory is only read (a shared model can be served without changing it).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveService:
    """A running ``vidrec serve``: ``base`` is its URL, ``events_db`` its durable log; :meth:`stop` ends it.

    ``keys``: the key file the writes need (None: ``--no-auth``); ``args``: more options of ``serve``
    (after the defaults here, so they win).
    """

    def __init__(self, model_dir: Path, workdir: Path, workers: int = 1, keys: Path | None = None,
                 timeout_s: float = 180.0, args: tuple[str, ...] = ()) -> None:  # fmt: skip
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.events_db = workdir / "events.sqlite"
        self.log_path = workdir / "serve.log"
        cmd = [sys.executable, "-m", "vidrec.cli", "serve", str(model_dir), "--port", str(self.port),
               "--workers", str(workers), "--events-db", str(self.events_db),
               "--feature-store", str(workdir / "store.sqlite"), "--no-access-log",
               *(["--api-keys", str(keys)] if keys else ["--no-auth"]), *args]  # fmt: skip
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait(timeout_s)

    def _wait(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{self.base}/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"vidrec serve did not become ready on {self.base}:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
