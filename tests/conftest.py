"""Shared fixtures. pyproject's `pythonpath` puts the tests folder on sys.path, so
`helpers` and `redis_server` import the same way from every test folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_server import RedisServer


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server (see tests/redis_server.py), killed after the test."""
    with RedisServer(tmp_path) as server:
        yield server
