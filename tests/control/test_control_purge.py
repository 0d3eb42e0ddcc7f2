"""`qmulti purge -Q default -f` on Redis: empties that queue and prints the count; other
queues, and messages leased to a node (running or prefetched), are untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
from ctl_support import Node, producer, qmulti, wait_answering, write_project

from helpers import wait_for
from redis_server import RedisServer


@pytest.mark.timeout(120)
def test_purge_empties_one_queue_only(tmp_path: Path, redis_server: RedisServer) -> None:
    write_project(tmp_path, redis_server.url)
    app = producer(tmp_path, redis_server.url)
    node = Node(tmp_path, "p1@here", "-c", "1", "--prefetch-multiplier", "2", "-Q", "busy")
    try:
        wait_answering(app, ["p1@here"])
        held = [app.send_task("tasks.slow", (5, i), queue="busy") for i in range(3)]
        # One running, one prefetched (leased), one waiting in `busy`.
        wait_for(lambda: app.broker.stats().leased == 2, 30, "two leased messages")
        for i in range(5):
            app.send_task("tasks.add", (i, i))  # the default queue, `default`: no consumer
        app.send_task("tasks.add", (1, 1), queue="other")
        asked = qmulti(tmp_path, "purge", "-Q", "default", "-A", "tasks", stdin="n\n")
        assert asked.returncode == 1 and "not confirmed" in asked.stderr
        assert app.broker.stats().queues["default"] == 5
        out = qmulti(tmp_path, "purge", "-Q", "default", "-f", "-A", "tasks")
        assert out.returncode == 0, out.stderr
        assert "purged 5 message(s) from 1 queue(s)" in out.stdout
        stats = app.broker.stats()
        assert stats.queues["default"] == 0 and stats.queues["other"] == 1
        assert stats.leased >= 1  # what the node holds is its own
        # Every task the node held still completes; the one waiting in `busy` too.
        assert sorted(r.get(timeout=60) for r in held) == [0, 1, 2]
    finally:
        node.close()
