"""The OpenAPI schema documents every route, field and answer, and the answers match it."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from tests.tiny_platform import small_config, two_audiences
from vidrec.recommender import Recommender
from vidrec.serving import schemas
from vidrec.serving.runtime import load_service

OURS = {name: model for name, model in vars(schemas).items()
        if isinstance(model, type) and issubclass(model, BaseModel) and model.__module__ == schemas.__name__}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("openapi")
    Recommender.train(two_audiences(), small_config(), log=lambda m: None).save(root / "model")
    with TestClient(load_service(root / "model", root / "events.sqlite")) as c:
        yield c


@pytest.fixture(scope="module")
def spec(client) -> dict:
    return client.get("/openapi.json").json()


def operations(spec: dict) -> list[tuple[str, str, dict]]:
    return [(method.upper(), path, op) for path, ops in spec["paths"].items() for method, op in ops.items()]


def test_every_route_has_a_summary_and_a_description(spec) -> None:
    for method, path, op in operations(spec):
        assert op.get("summary") and not op["summary"].startswith(("Get ", "Post ", "Delete ")), (method, path)
        assert len(op.get("description", "")) > 40, (method, path)


def test_every_field_is_described_and_every_model_has_an_example_that_validates(spec) -> None:
    components = spec["components"]["schemas"]
    for name, model in OURS.items():
        if name not in components:
            continue
        schema = components[name]
        for field, prop in schema.get("properties", {}).items():
            assert prop.get("description"), f"{name}.{field} has no description"
        examples = schema.get("examples")
        assert examples, f"{name} has no example"
        for example in examples:
            model.model_validate(example)  # the example is a valid body


def test_error_answers_are_declared_with_the_error_model(spec) -> None:
    for method, path, op in operations(spec):
        refs = {status: r.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
                for status, r in op["responses"].items()}  # fmt: skip
        for status, ref in refs.items():
            if int(status) >= 400:
                want = "Readiness" if path == "/ready" else "ErrorResponse"
                assert ref.endswith(f"/{want}"), (method, path, status, ref)


@pytest.mark.parametrize("method, path, kwargs, status", [
    ("DELETE", "/videos/not-a-video", {}, 404),
    ("DELETE", "/videos/" + "x" * 300, {}, 422),
    ("GET", "/users/u1/recommendations", {"params": {"k": 0}}, 422),
    ("POST", "/events", {"json": {"user_id": "u1", "video_id": "v1", "event": "watch"}}, 422),
    ("POST", "/videos", {"json": {"video_id": "v1", "creator_id": "c", "category": "x", "duration_seconds": 9}}, 422),
    ("GET", "/videos", {"params": {"limit": 0}}, 422),
    ("POST", "/events", {"content": b"\xff\xfe{", "headers": {"content-type": "application/json"}}, 400),
])  # fmt: skip
def test_real_error_answers_are_documented_and_match_their_model(client, spec, method, path, kwargs, status) -> None:
    r = client.request(method, path, **kwargs)
    assert r.status_code == status, r.text
    template = next(p for p in spec["paths"] if p.split("{")[0] == path[: len(p.split("{")[0])]
                    and p.count("/") == path.count("/") and method.lower() in spec["paths"][p])  # fmt: skip
    declared = spec["paths"][template][method.lower()]["responses"]
    assert str(status) in declared, f"{method} {template} answers {status} without declaring it"
    assert declared[str(status)]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    body = schemas.ErrorResponse.model_validate(r.json())
    assert body.detail and (status != 422 or body.errors)
