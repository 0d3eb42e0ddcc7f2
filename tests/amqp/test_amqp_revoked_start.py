"""On amqp:// with a Redis backend the node learns of revoke()'s REVOKED mark from
`start` itself: one Redis call that reads the mark and writes STARTED, not a read and
then a write per task. A task revoked while queued (prefetched behind a slow one) never
runs; STARTED never replaces a stored outcome."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from amqp_support import load_test_module

from helpers import wait_for
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
    load_test_module("test_redis_revoked_start").revoked_in_the_queue_never_runs(
        tmp_path, amqp_url, redis_server.url)
