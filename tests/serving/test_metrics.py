"""/metrics (Prometheus text format), X-Request-ID and the access log on the real service."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.live_service import LiveService
from tests.tiny_platform import small_config, two_audiences
from vidrec.recommender import Recommender
from vidrec.serving.logs import JsonFormatter
from vidrec.serving.metrics import STAGES
from vidrec.serving.runtime import load_service


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("metrics")
    Recommender.train(two_audiences(), small_config(), log=lambda m: None).save(root / "model")
    with TestClient(load_service(root / "model", root / "events.sqlite")) as c:
        yield c


def samples(client: TestClient) -> dict[tuple[str, tuple], float]:
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(r.text) for s in f.samples}  # fmt: skip


def test_requests_are_counted_by_route_template_and_status(client) -> None:
    for user in ("u1", "u2", "u3"):
        assert client.get(f"/users/{user}/recommendations").status_code == 200
    assert client.get("/users/u1/recommendations", params={"k": 0}).status_code == 422
    assert client.get("/nowhere").status_code == 404
    got = samples(client)
    route = "/users/{user_id}/recommendations"
    ok = ("vidrec_http_requests_total", (("method", "GET"), ("route", route), ("status", "200")))
    assert got[ok] == 3  # one series for every user, not one per user
    assert got[("vidrec_http_requests_total", (("method", "GET"), ("route", route), ("status", "422")))] == 1
    assert got[("vidrec_http_requests_total", (("method", "GET"), ("route", "unmatched"), ("status", "404")))] == 1
    count = ("vidrec_http_request_seconds_count", (("method", "GET"), ("route", route)))
    assert got[count] == 4
    assert got[("vidrec_slate_batch_size_count", ())] >= 1
    assert not any("u1" in str(labels) for _, labels in got)


def test_every_answer_has_a_request_id_and_a_sane_one_is_kept(client) -> None:
    a, b = client.get("/health"), client.get("/health")
    assert len(a.headers["x-request-id"]) == 32 and a.headers["x-request-id"] != b.headers["x-request-id"]
    assert client.get("/health", headers={"X-Request-ID": "trace-42"}).headers["x-request-id"] == "trace-42"
    odd = client.get("/health", headers={"X-Request-ID": "bad id\twith tab"}).headers["x-request-id"]
    assert odd != "bad id\twith tab" and len(odd) == 32


def test_stage_and_store_seconds_are_observed_for_each_request(client) -> None:
    before = samples(client)
    for user in ("u1", "u2"):  # one after the other: two batches of one
        assert client.get(f"/users/{user}/recommendations").status_code == 200
    assert client.post("/events", json={"user_id": "u1", "video_id": "v3", "event": "like"}).status_code == 200
    after = samples(client)

    def grew(name: str, label: tuple) -> float:
        return after[(name, (label,))] - before.get((name, (label,)), 0.0)

    for stage in STAGES:
        assert grew("vidrec_stage_seconds_count", ("stage", stage)) == 2
        assert grew("vidrec_stage_seconds_sum", ("stage", stage)) > 0
    assert grew("vidrec_store_seconds_count", ("op", "read")) >= 2  # each batch reads its users' records
    assert grew("vidrec_store_seconds_count", ("op", "write")) == 1  # the event applied to the store


def test_error_answers_are_counted_by_kind(client) -> None:
    before = samples(client)
    assert client.get("/users/u1/recommendations", params={"k": 0}).status_code == 422
    assert client.post("/events", json={"user_id": "u1", "video_id": "nope", "event": "like"}).status_code == 422
    assert client.delete("/videos/nope").status_code == 404
    assert client.get("/nowhere").status_code == 404
    after = samples(client)

    def grew(kind: str, status: str) -> float:
        key = ("vidrec_errors_total", (("kind", kind), ("status", status)))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert grew("invalid_request", "422") == 2
    assert grew("not_found", "404") == 2  # an unknown video and an unmatched route


def test_access_records_carry_the_route_template_and_the_request_id(client, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="vidrec.access"):
        r = client.get("/users/u7/recommendations", params={"k": 3}, headers={"X-Request-ID": "trace-7"})
    assert r.status_code == 200
    (record,) = [rec for rec in caplog.records if rec.name == "vidrec.access"]
    assert "/users/u7/recommendations?k=3" in record.getMessage() and "id=trace-7" in record.getMessage()
    line = json.loads(JsonFormatter().format(record))
    assert {k: line[k] for k in ("method", "path", "status", "request_id")} == {
        "method": "GET", "path": "/users/{user_id}/recommendations", "status": 200, "request_id": "trace-7"}
    assert line["seconds"] > 0 and line["client"] and line["time"].endswith("+00:00")
    assert "u7" not in json.dumps(line)  # the template, never the user's id


def test_workers_send_their_stage_times_to_the_http_process_and_logs_are_json(tmp_path) -> None:
    """``vidrec serve --workers 2 --log-format json``: the stages run in the workers, the histograms
    are in the HTTP process's /metrics, and every line the service logs is one JSON object."""
    Recommender.train(two_audiences(), small_config(), log=lambda m: None).save(tmp_path / "model")
    service = LiveService(tmp_path / "model", tmp_path / "work", workers=2,
                          args=("--access-log", "--log-format", "json"))  # fmt: skip
    try:
        for i in range(4):
            r = httpx.get(f"{service.base}/users/u{i}/recommendations", headers={"X-Request-ID": f"w-{i}"})
            assert r.status_code == 200
        text = httpx.get(f"{service.base}/metrics").text
    finally:
        service.stop()
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for f in text_string_to_metric_families(text) for s in f.samples}  # fmt: skip
    for stage in STAGES:
        assert got[("vidrec_stage_seconds_count", (("stage", stage),))] == 4
    assert got[("vidrec_store_seconds_count", (("op", "read"),))] >= 1
    lines = [json.loads(line) for line in service.log_path.read_text().splitlines() if line.strip()]
    access = [line for line in lines if line.get("logger") == "vidrec.access"]
    slates = [a for a in access if a["path"] == "/users/{user_id}/recommendations"]
    assert [a["request_id"] for a in slates] == [f"w-{i}" for i in range(4)]
    assert all(a["status"] == 200 and a["method"] == "GET" for a in slates)
    assert any("worker" in line.get("message", "") for line in lines)  # the workers' own lines are JSON too
