"""Benchmark: the service's memory under a flood of large request bodies, beside a FastAPI
endpoint without a limit, same run.

    .venv/bin/python benchmarks/body_flood.py                 # the default simulated platform
    .venv/bin/python benchmarks/body_flood.py --model DIR     # any trained model directory

Starts ``vidrec serve`` (API keys on, default 4 MiB body limit, fresh log and store in a
temporary directory) and sends, from 8 concurrent clients holding a valid key: uploads with a
20 MB title (declared ``Content-Length``), the same sent chunked (no length), and event
batches just under the limit (3.9 MB, about 48,000 events, refused with 422 after parsing:
over 10,000 items).
The server's resident memory (its processes together, from ``/proc``) is sampled every 20 ms.
The peer is ``peer_app.py``'s ``POST /videos`` under uvicorn: FastAPI taking the same
20 MB bodies with no limit.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from serving_http import BIN, free_port, serve, stop  # noqa: E402
from serving_latency import model_dir  # noqa: E402

MB = 1_000_000
CLIENTS = 8


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants, in MB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration):
            continue
    return total * 1024 / MB


class Sampler:
    """The peak of :func:`tree_rss_mb` while it runs."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_mb(self.pid))
            time.sleep(0.02)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def video(size: int) -> bytes:
    return json.dumps({"video_id": "flood", "creator_id": "c", "category": "x", "duration_seconds": 60,
                       "title": "a" * size}).encode()  # fmt: skip


def events_batch(size: int) -> bytes:
    one = {"user_id": "flood-user", "video_id": "no-such-video-xxxxxxxx", "event": "like"}
    n = size // len(json.dumps(one))
    return json.dumps([one] * n).encode()


def chunks(body: bytes, step: int = 64 * 1024) -> Iterator[bytes]:
    for i in range(0, len(body), step):
        yield body[i : i + step]


def flood(url: str, path: str, make: Callable[[], object], n: int, headers: dict[str, str]) -> Counter:
    """``n`` POSTs of ``make()`` from :data:`CLIENTS` threads; the status codes (or the error)."""

    def one(_: int) -> str:
        try:
            with httpx.Client(timeout=60) as http:
                return str(http.post(url + path, content=make(), headers=headers).status_code)  # type: ignore[arg-type]
        except httpx.HTTPError as err:  # the server answered 413 and closed while the body was still going
            return type(err).__name__

    with ThreadPoolExecutor(CLIENTS) as pool:
        return Counter(pool.map(one, range(n)))


def run(name: str, pid: int, url: str, cases: list[tuple[str, str, Callable[[], object]]], n: int,
        headers: dict[str, str]) -> list[str]:  # fmt: skip
    rows = []
    time.sleep(1.0)
    for label, path, make in cases:
        idle = tree_rss_mb(pid)
        started = time.perf_counter()
        with Sampler(pid) as sampler:
            codes = flood(url, path, make, n, headers)
        seconds = time.perf_counter() - started
        time.sleep(1.0)
        after = tree_rss_mb(pid)
        shown = ", ".join(f"{c} x{k}" for c, k in sorted(codes.items()))
        rows.append(f"| {name} | {label} | {n} | {seconds:.1f} | {idle:,.0f} | {sampler.peak:,.0f} | "
                    f"{sampler.peak - idle:+,.0f} | {after:,.0f} | {shown} |")  # fmt: skip
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a trained model directory (default: the default platform's)")
    parser.add_argument("--requests", type=int, default=100, help="requests per kind of body")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    model = model_dir(args.model)
    big = video(20 * MB)
    under = events_batch(int(3.9 * MB))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        keys = work / "keys.json"
        made = subprocess.run([str(BIN / "vidrec"), "keys", "create", "flood", "--file", str(keys), "--scopes",
                               "events:write,catalogue:write"], capture_output=True, text=True, check=True)  # fmt: skip
        headers = {"Authorization": f"Bearer {made.stdout.strip().splitlines()[-1]}",
                   "Content-Type": "application/json"}  # fmt: skip
        port = free_port()
        cmd = [str(BIN / "vidrec"), "serve", str(model), "--port", str(port), "--workers", str(args.workers),
               "--no-access-log", "--api-keys", str(keys), "--rate-limit", "", "--events-db",
               str(work / "events.sqlite"), "--feature-store", str(work / "state.sqlite")]  # fmt: skip
        service = serve(cmd, port, "/ready", work / "vidrec.log")
        try:
            rows += run(f"vidrec serve --workers {args.workers}", service.pid, f"http://127.0.0.1:{port}", [
                ("20 MB upload, Content-Length", "/videos", lambda: big),
                ("20 MB upload, chunked", "/videos", lambda: chunks(big)),
                ("3.9 MB event batch (under the limit)", "/events", lambda: under),
            ], args.requests, headers)  # fmt: skip
        finally:
            stop(service)
        port = free_port()
        peer = serve([str(BIN / "uvicorn"), "peer_app:app", "--app-dir", str(HERE), "--port", str(port),
                      "--no-access-log", "--host", "127.0.0.1", "--log-level", "warning"], port,
                     "/users/u/recommendations", work / "peer.log")  # fmt: skip
        try:
            rows += run("peer: FastAPI, no limit", peer.pid, f"http://127.0.0.1:{port}", [
                ("20 MB upload, Content-Length", "/videos", lambda: big),
                ("20 MB upload, chunked", "/videos", lambda: chunks(big)),
            ], args.requests, headers)  # fmt: skip
        finally:
            stop(peer)
    print(f"\n{CLIENTS} concurrent clients; memory: resident MB of the server's processes\n")
    print("| server | bodies | requests | s | idle MB | peak MB | peak - idle | after MB | answers |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
