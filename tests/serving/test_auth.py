"""API keys, scopes, rate limits and size limits of the HTTP API."""

from __future__ import annotations

import json
import stat

import pytest
from fastapi.testclient import TestClient

from tests.serving.serving_fakes import CatalogueRecommender
from vidrec.cli import main
from vidrec.errors import VidrecError
from vidrec.features.store import EventLog
from vidrec.serving import create_app
from vidrec.serving.auth import KeyRing, create_key, read_key_file

SCORES = {f"v{i:02d}": 1.0 - i / 100 for i in range(30)}
EVENT = {"user_id": "u1", "video_id": "v01", "event": "like"}
VIDEO = {"video_id": "new", "creator_id": "c", "category": "x", "duration_seconds": 60}


@pytest.fixture
def keys(tmp_path):
    path = tmp_path / "keys.json"
    secrets = {
        "ingest": create_key(path, "ingest", ["events:write"]),
        "editor": create_key(path, "editor", ["catalogue:write", "events:write"]),
        "reader": create_key(path, "reader", ["recommendations:read"]),
    }
    return path, secrets


def client_of(tmp_path, ring: KeyRing | None, **options) -> TestClient:
    rec = CatalogueRecommender(dict(SCORES), EventLog(tmp_path / "events.sqlite"))
    return TestClient(create_app(rec, keys=ring, **options))


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_the_key_file_keeps_only_hashes(keys) -> None:
    path, secrets = keys
    text = path.read_text()
    assert all(s not in text for s in secrets.values())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [k.name for k in read_key_file(path).keys] == ["ingest", "editor", "reader"]


def test_writes_need_a_key_with_their_scope(tmp_path, keys) -> None:
    path, secrets = keys
    with client_of(tmp_path, KeyRing.from_file(path)) as c:
        missing = c.post("/events", json=EVENT)
        assert missing.status_code == 401 and "events:write" in missing.json()["detail"]
        assert missing.headers["www-authenticate"].startswith("Bearer")
        wrong = c.post("/events", json=EVENT, headers=bearer("vr_not-a-key"))
        assert wrong.status_code == 401 and "not valid" in wrong.json()["detail"]
        assert c.post("/events", json=EVENT, headers=bearer(secrets["ingest"])).status_code == 200
        assert c.post("/events", json=EVENT, headers={"X-API-Key": secrets["ingest"]}).status_code == 200
        scoped = c.post("/videos", json=VIDEO, headers=bearer(secrets["ingest"]))
        assert scoped.status_code == 403 and "catalogue:write" in scoped.json()["detail"]
        assert c.delete("/videos/v01", headers=bearer(secrets["reader"])).status_code == 403
        assert c.post("/videos", json=VIDEO, headers=bearer(secrets["editor"])).status_code == 200
        assert c.delete("/videos/v01", headers=bearer(secrets["editor"])).status_code == 200
        assert c.get("/users/u1/recommendations").status_code == 200  # reads open by default
        assert c.get("/health").status_code == 200 and c.get("/ready").status_code == 200


def test_reads_can_be_protected(tmp_path, keys) -> None:
    path, secrets = keys
    ring = KeyRing(list(KeyRing.from_file(path).keys.values()), protect_reads=True)
    with client_of(tmp_path, ring) as c:
        assert c.get("/users/u1/recommendations").status_code == 401
        assert c.get("/users/u1/recommendations", headers=bearer(secrets["ingest"])).status_code == 403
        assert c.get("/users/u1/recommendations", headers=bearer(secrets["reader"])).status_code == 200


def test_each_key_has_its_own_rate_limit(tmp_path, keys) -> None:
    path, secrets = keys
    ring = KeyRing(list(KeyRing.from_file(path).keys.values()), rate_limit="3/minute")
    with client_of(tmp_path, ring) as c:
        codes = [c.post("/events", json=EVENT, headers=bearer(secrets["ingest"])).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        over = c.post("/events", json=EVENT, headers=bearer(secrets["ingest"]))
        assert "rate limit" in over.json()["detail"] and int(over.headers["retry-after"]) >= 1
        assert c.post("/events", json=EVENT, headers=bearer(secrets["editor"])).status_code == 200


def test_the_schema_documents_the_keys(tmp_path, keys) -> None:
    with client_of(tmp_path, KeyRing.from_file(keys[0])) as c:
        schema = c.get("/openapi.json").json()
    assert {"HTTPBearer", "APIKeyHeader"} <= set(schema["components"]["securitySchemes"])
    assert schema["paths"]["/events"]["post"]["security"]
    assert {"401", "403", "413", "429"} <= set(schema["paths"]["/videos"]["post"]["responses"])


def test_bodies_over_the_limit_get_413_and_the_service_goes_on(tmp_path) -> None:
    with client_of(tmp_path, None, max_body_bytes=2_000) as c:
        big = [EVENT] * 100
        declared = c.post("/events", json=big)
        assert declared.status_code == 413 and "2,000 bytes" in declared.json()["detail"]
        chunks = (json.dumps(big).encode()[i : i + 500] for i in range(0, 6_000, 500))
        chunked = c.post("/events", content=chunks, headers={"Content-Type": "application/json"})
        assert chunked.status_code == 413
        small = (json.dumps([EVENT]).encode() for _ in range(1))
        assert c.post("/events", content=small, headers={"Content-Type": "application/json"}).status_code == 200
        assert c.post("/events", json=EVENT).status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [("/videos", {**VIDEO, "title": "x" * 20_000}, "title"),
     ("/events", {**EVENT, "user_id": "u\x00"}, "user_id"),
     ("/videos", {**VIDEO, "language": "l" * 300}, "language")],
)  # fmt: skip
def test_field_limits(tmp_path, path, body, field) -> None:
    with client_of(tmp_path, None) as c:
        answer = c.post(path, json=body)
    assert answer.status_code == 422 and field in answer.json()["detail"]


def test_bad_key_files_are_readable_errors(tmp_path) -> None:
    (tmp_path / "bad.json").write_text('{"keys": [{"name": "a", "sha256": "zz", "scopes": ["events:write"]}]}')
    with pytest.raises(VidrecError, match="keys.0.sha256"):
        KeyRing.from_file(tmp_path / "bad.json")
    with pytest.raises(VidrecError, match="not found"):
        KeyRing.from_file(tmp_path / "none.json")
    with pytest.raises(VidrecError, match="unknown scopes"):
        create_key(tmp_path / "k.json", "a", ["everything"])  # type: ignore[list-item]
    with pytest.raises(VidrecError, match="not a rate"):
        KeyRing([], rate_limit="fast")


def test_the_cli_manages_keys_and_serve_wants_them(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("VIDREC_API_KEYS", raising=False)
    path = str(tmp_path / "keys.json")
    assert main(["keys", "create", "ops", "--file", path, "--scopes", "events:write,catalogue:write"]) == 0
    secret = capsys.readouterr().out.strip().splitlines()[-1]
    assert KeyRing.from_file(path).check(secret, "catalogue:write").name == "ops"
    assert main(["keys", "list", "--file", path]) == 0
    assert "ops\tevents:write,catalogue:write" in capsys.readouterr().out
    assert main(["keys", "revoke", "ops", "--file", path]) == 0
    assert main(["keys", "create", "x", "--file", path, "--scopes", "root"]) == 2
    assert main(["serve", str(tmp_path / "model")]) == 2
    err = capsys.readouterr().err
    assert "needs API keys" in err and "--no-auth" in err
