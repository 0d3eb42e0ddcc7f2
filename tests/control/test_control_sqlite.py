"""Remote control on the embedded SQLite broker, between two nodes of one host: ping,
active, shutdown and purge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ctl_support import Node, producer, qmulti, wait_answering, write_project

from helpers import wait_for


@pytest.mark.timeout(120)
def test_ping_active_shutdown_purge_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.sqlite3'}"
    write_project(tmp_path, url)
    app = producer(tmp_path, url)
    nodes = [Node(tmp_path, "s1@here", "-c", "1", "-Q", "default"),
             Node(tmp_path, "s2@here", "-c", "1", "-Q", "default,s2")]
    try:
        wait_answering(app, ["s1@here", "s2@here"])
        ping = qmulti(tmp_path, "inspect", "ping", "-A", "tasks", "--json")
        assert ping.returncode == 0, ping.stderr
        assert json.loads(ping.stdout) == {"s1@here": {"ok": "pong"}, "s2@here": {"ok": "pong"}}

        r = app.send_task("tasks.slow", (3, "three"), queue="s2")
        wait_for(lambda: app.AsyncResult(r.id).state == "STARTED", 30, "the task started")
        active = json.loads(qmulti(tmp_path, "inspect", "active", "-A", "tasks",
                                   "--json").stdout)
        [task] = active["s2@here"]
        assert (task["id"], task["name"], task["args"]) == (r.id, "tasks.slow", [3, "three"])
        assert active["s1@here"] == []

        # Waiting in a queue nobody consumes: purge takes them; `other` is left alone.
        for i in range(4):
            app.send_task("tasks.add", (i, i), queue="idle")
        app.send_task("tasks.add", (1, 1), queue="other")
        out = qmulti(tmp_path, "purge", "-Q", "idle", "-f", "-A", "tasks")
        assert out.returncode == 0, out.stderr
        assert "purged 4 message(s)" in out.stdout
        depth = app.broker.stats().queues
        assert depth.get("idle", 0) == 0 and depth["other"] == 1

        stop = qmulti(tmp_path, "control", "shutdown", "-d", "s2@here", "-A", "tasks")
        assert stop.returncode == 0, stop.stderr
        assert nodes[1].wait(30) == 0
        assert r.get(timeout=5) == "three"  # warm: the running task finished first
        assert set(app.control.inspect(timeout=2).ping() or {}) == {"s1@here"}
    finally:
        for node in nodes:
            node.close()
