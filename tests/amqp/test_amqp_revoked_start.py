"""On amqp:// with a Redis backend the node learns of revoke()'s REVOKED mark from
`start` itself: one Redis call that reads the mark and writes STARTED, not a read and
then a write per task. A task revoked while queued (prefetched behind a slow one) never
runs; STARTED never replaces a stored outcome."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from node_fixtures import NodeProcess, write_tasks

from helpers import wait_for
from qmulti import App
from qmulti.brokers.base import LOST, OK, REVOKED_MARK

Q = "celery"
pytestmark = pytest.mark.timeout(60)


def test_start_reads_the_mark_and_writes_started_in_one_call(amqp_url: str,
                                                             redis_server: Any) -> None:
    from qmulti.brokers import create_broker
    from qmulti.brokers.amqp import AmqpBroker

    store = AmqpBroker(amqp_url, result_backend=redis_server.url)
    backend = create_broker(redis_server.url)
    try:
        assert store.start_sees_revoked(backend)
        for mid in ("fresh", "revoked", "done"):
            store.publish(Q, mid, b"x")
        backend.set("revoked", "REVOKED", b"mark", None)
        backend.set("done", "SUCCESS", b"42", None)
        got = wait_for(lambda: store.claim([Q], "w#1", "c", 3, 0), 10, "three messages")
        assert len(got) == 3  # a claim that must not wait takes every ready one
        fresh, revoked, done = sorted(got, key=lambda d: ["fresh", "revoked", "done"]
                                      .index(d.mid))
        assert store.start(fresh, "fresh", b"s", backend, None) == OK
        assert backend._lookup("fresh") == ("STARTED", b"s")
        assert store.start(revoked, "revoked", b"s", backend, None) == REVOKED_MARK
        assert backend._lookup("revoked") == ("REVOKED", b"mark")
        assert store.start(done, "done", b"s", backend, None) == OK
        assert backend._lookup("done") == ("SUCCESS", b"42")  # an outcome stays
        assert store.ack([fresh, revoked, done]) == OK
        store.link.close()  # a channel that is gone: start is fenced, nothing written
        assert store.start(fresh, "other", b"s", backend, None) == LOST
        assert backend.get("other") is None
    finally:
        store.close()
        backend.close()


def test_a_task_revoked_in_the_queue_never_runs(tmp_path: Path, amqp_url: str,
                                                redis_server: Any) -> None:
    write_tasks(tmp_path, extra_config=f"app.conf.broker_url = {amqp_url!r}\n"
                f"app.conf.result_backend = {redis_server.url!r}\n"
                "app.conf.worker_prefetch_multiplier = 1\n")
    app = App("producer", broker=amqp_url, backend=redis_server.url)
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "1", "-l", "info") as node:
        node.wait_ready()
        slow = app.send_task("tasks.slow", (1.5, "slow"))
        victim = app.send_task("tasks.pid")
        wait_for(lambda: slow.state == "STARTED", 20, "slow task started")
        victim.revoke()
        assert slow.get(timeout=20) == "slow"
        after = app.send_task("tasks.add", (2, 3))
        assert after.get(timeout=20) == 5  # the queue went past the revoked one
        assert victim.state == "REVOKED"
        log = node.stderr()
        assert f"[{victim.id}] was revoked; not running it" in log, log
        assert f"tasks.pid[{victim.id}] succeeded" not in log
    app.close()
