"""Benchmark: the HTTP service under ``wrk`` beside a trivial FastAPI endpoint, same run.

    .venv/bin/python benchmarks/serving_http.py                 # the default simulated platform
    .venv/bin/python benchmarks/serving_http.py --model DIR     # any trained model directory

Starts ``vidrec serve --workers N --no-access-log --no-auth`` (N from ``--workers``, default 2) on a
fresh event log and SQLite store (in a temporary directory, so the model directory is
untouched), warms it up, then runs ``wrk -t2 -c16 --latency`` rotating over the platform's
users three times. The same is done for ``peer_app.py`` (a constant FastAPI answer under
uvicorn with 2 workers and the same options): the cost of the HTTP stack alone on this machine. Last, reads and writes mixed:
12 connections asking for slates while 4 post watch events, each side reported on its own.
Needs ``wrk`` (Debian package) and a built model (``serving_latency.py`` builds the default
platform's under ``runs/bench-default``).
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import polars as pl

BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}

GET_LUA = """
local users = {%s}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/users/" .. users[(n %% #users) + 1] .. "/recommendations?k=10")
end
"""

POST_LUA = """
local users = {%s}
local videos = {%s}
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"user_id": "%%s", "video_id": "%%s", "event": "watch", "watch_seconds": 30.0}',
                             users[(n %% #users) + 1], videos[((n * 7) %% #videos) + 1])
  return wrk.format("POST", "/events", {["Content-Type"] = "application/json"}, body)
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, path: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"server on port {port} not ready after {timeout:.0f} s")


def wrk(port: int, script: Path, threads: int, connections: int, seconds: int) -> dict[str, float]:
    """requests/s and latency percentiles (ms) of one wrk run."""
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{port}"], capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return parse_wrk(out)


def parse_wrk(out: str) -> dict[str, float]:
    got = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    for pct, value, unit in re.findall(r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        got[f"p{pct}"] = float(value) * UNITS[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    got["non2xx"] = float(errors.group(1)) if errors else 0.0
    return got


def row(name: str, r: dict[str, float]) -> str:
    return (f"| {name} | {r['rps']:,.0f} | {r['p50']:.1f} | {r['p90']:.1f} | {r['p99']:.1f} | "
            f"{r['non2xx']:.0f} |")  # fmt: skip


def lua_list(values: list[str]) -> str:
    return ", ".join(f'"{v}"' for v in values)


def serve(cmd: list[str], port: int, ready: str, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        wait_ready(port, ready)
    except SystemExit:
        proc.terminate()
        raise SystemExit(f"{' '.join(cmd)} did not start; see {log}") from None
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def measure_vidrec(model: Path, workers: int, work: Path, get_lua: Path, post_lua: Path, seconds: int,
                   runs: int) -> list[tuple[str, dict[str, float]]]:  # fmt: skip
    """``vidrec serve --workers N`` on a fresh log and store: GET runs, then GET and POST mixed."""
    port = free_port()
    state = work / f"workers-{workers}"
    state.mkdir()
    cmd = [str(BIN / "vidrec"), "serve", str(model), "--port", str(port), "--workers", str(workers),
           "--no-access-log", "--no-auth", "--host", "127.0.0.1", "--events-db", str(state / "events.sqlite"),
           "--feature-store", str(state / "state.sqlite")]  # fmt: skip
    t = time.perf_counter()
    service = serve(cmd, port, "/ready", state / "vidrec.log")
    print(f"vidrec serve --workers {workers} ready in {time.perf_counter() - t:.1f} s", flush=True)
    name = f"vidrec, {workers} worker{'s' if workers > 1 else ''}"
    out = []
    try:
        wrk(port, get_lua, 2, 16, 15)  # warm-up: every worker traces its networks and fills its caches
        for i in range(runs):
            out.append((f"{name}: GET, run {i + 1}", wrk(port, get_lua, 2, 16, seconds)))
        with tempfile.TemporaryFile("w+") as post_out:
            writer = subprocess.Popen(
                ["wrk", "-t1", "-c4", f"-d{seconds}s", "--latency", "-s", str(post_lua), f"http://127.0.0.1:{port}"],
                stdout=post_out, text=True,
            )  # fmt: skip
            mixed_get = wrk(port, get_lua, 1, 12, seconds)
            writer.wait()
            post_out.seek(0)
            mixed_post = parse_wrk(post_out.read())
        out.append((f"{name}: mixed, GET (12 connections)", mixed_get))
        out.append((f"{name}: mixed, POST /events (4 connections)", mixed_post))
    finally:
        stop(service)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a trained model directory (default: the default platform's)")
    parser.add_argument("--seconds", type=int, default=20, help="length of each measured run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[2],
                        help="vidrec model processes, one measurement each (the peer runs 2 uvicorn workers)")
    parser.add_argument("--users", type=int, default=3000, help="users the load rotates over")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    sys.path.insert(0, str(HERE))
    from serving_latency import model_dir

    model = model_dir(args.model)
    version = model / (model / "LATEST").read_text().strip()
    users = pl.read_parquet(version / "data" / "users.parquet")["user_id"].head(args.users).to_list()
    videos = pl.read_parquet(version / "data" / "videos.parquet")["video_id"].head(2000).to_list()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        get_lua, post_lua = work / "get.lua", work / "post.lua"
        get_lua.write_text(GET_LUA % lua_list(users))
        post_lua.write_text(POST_LUA % (lua_list(users), lua_list(videos)))
        results: list[tuple[str, dict[str, float]]] = []

        port = free_port()
        peer = serve([str(BIN / "uvicorn"), "peer_app:app", "--app-dir", str(HERE), "--port", str(port),
                      "--workers", "2", "--no-access-log", "--host", "127.0.0.1",
                      "--log-level", "warning"], port, "/users/u/recommendations", work / "peer.log")  # fmt: skip
        try:
            wrk(port, get_lua, 2, 16, 5)
            for i in range(args.runs):
                results.append((f"peer: trivial FastAPI, run {i + 1}", wrk(port, get_lua, 2, 16, args.seconds)))
        finally:
            stop(peer)

        for workers in args.workers:
            results += measure_vidrec(model, workers, work, get_lua, post_lua, args.seconds, args.runs)

    print(f"\nwrk over {len(users):,} users, {args.seconds} s per run\n")
    print("| server | req/s | p50 ms | p90 ms | p99 ms | non-2xx |\n|---|---|---|---|---|---|")
    for name, r in results:
        print(row(name, r))


if __name__ == "__main__":
    main()
