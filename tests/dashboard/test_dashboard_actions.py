"""Node actions through the dashboard's API against a real node: pool grow by n and
shrink, and warm shutdown (its running task finishes, the node exits 0)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard_stack import Stack
from helpers import wait_for
from qmulti import Celery
from redis_server import RedisServer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def one_node(tmp_path: Path) -> Iterator[Stack]:
    with RedisServer(tmp_path) as redis:
        s = Stack(tmp_path, redis)
        try:
            s.start_node("w1", 1)
            s.start_dashboard()
            wait_for(lambda: s.node_names(), 60, "the node's heartbeat")
            yield s
        finally:
            s.close()


def _pool(s: Stack, name: str) -> int | None:
    for row in s.get("/api/nodes"):
        if row["name"] == name:
            return row["pool"]
    return None


def _post(s: Stack, path: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    import json

    code, raw, _ = s.request(path, "POST", body, {"X-CSRF-Token": s.csrf()})
    return code, json.loads(raw)


def test_grow_shrink_and_warm_shutdown(one_node: Stack) -> None:
    s = one_node
    name = f"w1@{socket.gethostname()}"
    assert _pool(s, name) == 1
    code, doc = _post(s, f"/api/nodes/{name}/pool_grow", {"n": 2})
    assert code == 200 and doc["ok"], doc
    wait_for(lambda: _pool(s, name) == 3, 30, "the pool to grow to 3")
    code, doc = _post(s, f"/api/nodes/{name}/pool_shrink", {"n": 1})
    assert code == 200, doc
    wait_for(lambda: _pool(s, name) == 2, 30, "the pool to shrink to 2")
    assert _post(s, f"/api/nodes/{name}/pool_grow", {"n": 0})[0] == 409
    assert _post(s, f"/api/nodes/{name}/pool_grow", {"n": "2"})[0] == 400
    assert _post(s, f"/api/nodes/{name}/explode", {})[0] == 409

    client = Celery("client", broker=s.redis.url)
    running = client.send_task("proj.sleep", (2,))
    wait_for(lambda: running.state == "STARTED", 30, "the task to start")
    code, doc = _post(s, f"/api/nodes/{name}/shutdown", {})
    assert code == 200 and doc["ok"], doc
    assert s.nodes["w1"].wait(60) == 0  # a warm stop
    assert running.get(timeout=10) == 2  # its running task finished first
    wait_for(lambda: not s.node_names(), 30, "the node to leave the page")
