"""Fixtures every test folder may use."""

import pytest


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory):
    """URL of a redis-server started for this test session (stopped at the end)."""
    from tests.redis_server import redis_server_or_skip

    server = redis_server_or_skip(tmp_path_factory.mktemp("redis"))
    yield server.url
    server.stop()
