"""The worker pool behind ``vidrec serve --workers N``: balance, agreement, a worker lost."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from tests.tiny_platform import small_config, two_audiences
from vidrec.recommender import Recommender
from vidrec.serving.runtime import load_service


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("pooled")
    Recommender.train(two_audiences(), small_config(), log=lambda m: None).save(root)
    return root


def _slates(client: TestClient, users: list[str]) -> list[list[str]]:
    def one(user: str) -> list[str]:
        r = client.get(f"/users/{user}/recommendations", params={"k": 5})
        assert r.status_code == 200, r.text
        return [i["video_id"] for i in r.json()["items"]]

    with ThreadPoolExecutor(16) as threads:
        return list(threads.map(one, users))


def test_concurrent_requests_are_batched_over_every_worker(model_dir, tmp_path) -> None:
    app = load_service(model_dir, tmp_path / "e.sqlite", str(tmp_path / "s.sqlite"), workers=2)
    with TestClient(app) as client:
        pool = app.state.batcher
        users = [f"u{i % 40}" for i in range(200)]
        got = _slates(client, users)
        alone = _slates(client, users[:40])
    assert got[:40] == alone  # the same answers whichever worker and batch served them
    assert pool.requests == 240 and pool.batches < pool.requests  # requests that waited together went together
    assert all(w.calls > 0 for w in pool._workers)


def test_a_write_through_one_worker_holds_on_every_worker(model_dir, tmp_path) -> None:
    app = load_service(model_dir, tmp_path / "e.sqlite", str(tmp_path / "s.sqlite"), workers=2)
    with TestClient(app) as client:
        top = _slates(client, ["u3"])[0][0]
        assert client.post("/events", json={"user_id": "u3", "video_id": top, "event": "dislike"}).status_code == 200
        for slate in _slates(client, ["u3"] * 40):
            assert top not in slate
        debug = client.get("/users/u3/recommendations", params={"k": 5, "debug": True}).json()
        assert top not in [i["video_id"] for i in debug["items"]]


def test_a_lost_worker_is_reported_and_the_others_serve_on(model_dir, tmp_path) -> None:
    app = load_service(model_dir, tmp_path / "e.sqlite", str(tmp_path / "s.sqlite"), workers=2)
    with TestClient(app) as client:
        pool = app.state.batcher
        assert client.get("/ready").status_code == 200
        lost = pool._workers[0].process
        lost.kill()
        lost.join(timeout=10)
        for slate in _slates(client, [f"u{i}" for i in range(20)]):  # all answered, by the worker left
            assert len(slate) == 5
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert "exited" in ready.json()["checks"]["worker 0"] and ready.json()["checks"]["worker 1"] == "ok"
        started = time.monotonic()
    assert time.monotonic() - started < 30  # shutting down does not wait on the lost worker


def test_a_serving_process_keeps_to_one_thread_per_pool(model_dir, tmp_path) -> None:
    """BLAS and OpenMP pools left at a thread per core spin between small products and take
    the other workers' cores: a serving process runs each with ``torch_threads``."""
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    from vidrec.serving.runtime import load_recommender

    before = torch.get_num_threads()
    try:
        load_recommender(model_dir, tmp_path / "e.sqlite", str(tmp_path / "s.sqlite"), torch_threads=1).close()
        assert torch.get_num_threads() == 1
        assert {p["num_threads"] for p in threadpool_info()} == {1}
    finally:
        torch.set_num_threads(before)
        threadpool_limits(before)


def test_with_every_worker_gone_requests_get_503_not_500(model_dir, tmp_path) -> None:
    app = load_service(model_dir, tmp_path / "e.sqlite", str(tmp_path / "s.sqlite"), workers=2)
    with TestClient(app) as client:
        for worker in app.state.batcher._workers:
            worker.process.kill()
            worker.process.join(timeout=10)
        r = client.get("/users/u1/recommendations")
        assert r.status_code == 503 and r.headers["retry-after"] == "1" and "exited" in r.json()["detail"]
        again = client.get("/users/u2/recommendations")  # no worker left to wait for: at once
        assert again.status_code == 503 and "no worker" in again.json()["detail"]
        r = client.post("/events", json={"user_id": "u1", "video_id": "v1", "event": "like"})
        assert r.status_code == 503
