"""Property-based requests from the OpenAPI schema (schemathesis): no 5xx, answers as documented
(every status code declared for its route, every body valid against the declared model).

The app is the real service on a tiny trained model, behind a key ring: every write route is
fuzzed once with a key that holds its scope (so bodies reach validation and the model) and
once without (so the 401 path is fuzzed too).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

from tests.tiny_platform import small_config, two_audiences
from vidrec.recommender import Recommender
from vidrec.serving.auth import KeyRing, create_key
from vidrec.serving.runtime import load_service

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    Recommender.train(two_audiences(), small_config(), log=lambda m: None).save(root / "model")
    secret = create_key(root / "keys.json", "fuzz", ["events:write", "catalogue:write", "recommendations:read",
                                                        "service:reload"])
    keys = list(KeyRing.from_file(root / "keys.json").keys.values())
    ring = KeyRing(keys, rate_limit=None)  # the fuzzer sends thousands of requests with one key
    app = load_service(root / "model", root / "events.sqlite", keys=ring)
    yield app, {"Authorization": f"Bearer {secret}"}
    app.state.recommender.close()


def operations(app) -> list:
    loaded = schemathesis.openapi.from_asgi("/openapi.json", app)
    return [result.ok() for result in loaded.get_all_operations()]


def test_every_operation_is_fuzzed(served) -> None:
    names = {op.label for op in operations(served[0])}
    assert {"GET /users/{user_id}/recommendations", "POST /events", "POST /videos", "DELETE /videos/{video_id}",
            "GET /ready", "GET /health", "GET /metrics", "POST /admin/reload", "GET /users",
            "GET /users/{user_id}/history", "GET /videos"} <= names  # fmt: skip


@pytest.mark.parametrize("mode", list(GenerationMode))
def test_no_request_gets_a_server_error(served, mode) -> None:
    """Valid requests (positive) and requests that break the schema on purpose (negative)."""
    app, key = served
    for operation in operations(app):
        if mode is GenerationMode.NEGATIVE and operation.label in ("GET /health", "GET /ready", "GET /metrics"):
            continue  # no parameters or body to break

        @given(case=operation.as_strategy(mode))
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)  # fmt: skip
        def fuzz(case) -> None:
            case.call_and_validate(headers=key, checks=CHECKS)
            case.call_and_validate(checks=CHECKS)

        fuzz()
