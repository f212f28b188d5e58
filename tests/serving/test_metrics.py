"""/metrics (Prometheus text format) and X-Request-ID on the real service."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.tiny_platform import small_config, two_audiences
from vidrec.recommender import Recommender
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
