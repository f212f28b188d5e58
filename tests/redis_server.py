"""A throwaway redis-server for tests: loopback only, free port, temp dir, no persistence."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

REDIS_BINARY = "redis-server"
INSTALL_HINT = "install it with `apt-get update && apt-get install -y redis-server` (.ci/run does this in CI)"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server child process; ``url`` to connect, :meth:`stop` to end it."""

    def __init__(self, workdir: Path, timeout_s: float = 10.0, port: int | None = None) -> None:
        binary = shutil.which(REDIS_BINARY)
        if binary is None:
            raise FileNotFoundError(f"{REDIS_BINARY} not found on PATH; {INSTALL_HINT}")
        self.port = port or _free_port()  # a port given: a restart where a server was
        self.url = f"redis://127.0.0.1:{self.port}/0"
        args = [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
                "--dir", str(workdir), "--protected-mode", "yes", "--daemonize", "no"]  # fmt: skip
        self._log = open(workdir / "redis.log", "wb")
        self.process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait(timeout_s, workdir)

    def _wait(self, timeout_s: float, workdir: Path) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        log = (workdir / "redis.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"redis-server did not start on 127.0.0.1:{self.port}:\n{log}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def redis_server_or_skip(workdir: Path) -> RedisServer:
    """Start a server; without the binary, fail under CI (``CI`` set) and skip elsewhere."""
    if shutil.which(REDIS_BINARY) is None:
        message = f"the Redis feature-store tests need {REDIS_BINARY}; {INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return RedisServer(workdir)
