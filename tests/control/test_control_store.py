"""The store side of remote control, the same on memory, SQLite and Redis: inboxes per
node, a reply box per request, live nodes from heartbeats, leased messages' bodies."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_server import RedisServer


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    from qmulti.brokers import create_broker

    if request.param == "redis":
        with RedisServer(tmp_path) as server:
            broker = create_broker(server.url)
            yield broker
            broker.close()
        return
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'c.db'}"
    broker = create_broker(url)
    yield broker
    broker.close()


def test_inbox_per_node_and_replies(store: Any) -> None:
    store.control_send(["n1", "n2"], b"req-1")
    store.control_send(["n1"], b"req-2")
    assert store.control_receive("n1", 1.0) == [b"req-1", b"req-2"]
    assert store.control_receive("n2", 1.0) == [b"req-1"]
    start = time.monotonic()
    assert store.control_receive("n1", 0.2) == []  # empty: waits, then nothing
    assert 0.15 <= time.monotonic() - start < 3.0
    store.control_reply("r1", b"a")
    store.control_reply("r1", b"b")
    store.control_reply("r2", b"other")
    assert store.control_collect("r1", 2, 1.0) == [b"a", b"b"]
    start = time.monotonic()
    assert store.control_collect("r1", 1, 0.2) == []
    assert time.monotonic() - start < 3.0
    assert store.control_collect("r2", 5, 0.2) == [b"other"]  # fewer than asked: by timeout


def test_forget_and_expiry(store: Any) -> None:
    store.control_send(["n1"], b"stale")
    store.control_forget("n1")
    assert store.control_receive("n1", 0.0) == []
    store.control_send(["n2"], b"short", ttl=0.05)
    time.sleep(0.1)  # the ttl itself is what is tested: it must pass
    assert store.control_receive("n2", 0.0) == []


def test_live_nodes_and_leased_bodies(store: Any) -> None:
    store.heartbeat("n1#1", {"name": "w1@h"})
    assert [r.node_id for r in store.control_nodes(10.0)] == ["n1#1"]
    assert store.control_nodes(-1.0) == []  # nothing is younger than that
    store.publish("q", "m1", b"body-1")
    store.publish("q", "m2", b"body-2")
    [d] = store.claim(["q"], "n1#1", "c1", 1, 0)
    assert store.control_leased("n1#1") == [("q", d.mid, d.body)]
    assert store.control_leased("n2#1") == []
    assert store.control_bodies([("q", "m1"), ("q", "m2"), ("q", "nope")]) == {
        "m1": b"body-1", "m2": b"body-2"}
