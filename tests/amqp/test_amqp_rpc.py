"""`rpc://`: results to the calling client's reply queue, and what it cannot do; the
backend choices beside an amqp:// broker; beat's need for a shared store."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from qmulti.brokers import create_backend, create_broker
from qmulti.exceptions import ConfigError

pytestmark = pytest.mark.timeout(60)
Q = "celery"


def test_results_reach_the_caller_only(amqp_url: str) -> None:
    from qmulti.brokers.amqp import RpcBackend

    client = create_broker(amqp_url)
    rpc = create_backend("rpc://", broker=client)
    assert isinstance(rpc, RpcBackend)
    node = create_broker(amqp_url)
    node_rpc = create_backend("rpc://", broker=node)
    other = create_broker(amqp_url)
    other_rpc = create_backend("rpc://", broker=other)
    try:
        client.publish(Q, "t1", b"task")
        assert rpc.get("t1") is None and rpc.wait("t1", 0.1) is None
        (d,) = node.claim([Q], "w1#1", "c1.1", 1, 5)
        assert node.start(d, "t1", b"started", node_rpc, None) == "ok"
        assert node.finish(d, "t1", "SUCCESS", b"done", node_rpc, None) == "ok"
        assert rpc.wait("t1", 10) == b"done" and rpc.get("t1") == b"done"
        assert other_rpc.get("t1") is None  # another client never sees it
        rpc.forget("t1")
        assert rpc.get("t1") is None
    finally:
        for broker in (client, node, other):
            broker.close()


def test_no_backend_beside_amqp_means_rpc_and_amqp_is_refused(amqp_url: str) -> None:
    from qmulti.brokers.amqp import RpcBackend

    broker = create_broker(amqp_url)
    try:
        assert isinstance(create_backend(None, broker=broker), RpcBackend)
        with pytest.raises(ConfigError, match="rpc://"):
            create_backend(amqp_url, broker=broker)
    finally:
        broker.close()
    with pytest.raises(ConfigError, match="amqp:// broker"):
        create_backend("rpc://", broker=create_broker("memory://"))


def test_apps_task_state_and_get_over_rpc_with_a_node(tmp_path: Path, amqp_url: str) -> None:
    """The caller sees PENDING, then SUCCESS; ready() and state work; a second App (a
    different client) sees PENDING for the same id."""
    from node_fixtures import NodeProcess

    from helpers import wait_for
    from qmulti import App

    (tmp_path / "tasks.py").write_text(textwrap.dedent(f"""
        from qmulti import App
        app = App('tasks', broker={amqp_url!r}, backend='rpc://')

        @app.task
        def mul(x, y):
            return x * y
    """))
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "1") as node:
        node.wait_ready()
        app = App("caller", broker=amqp_url, backend="rpc://")
        stranger = App("stranger", broker=amqp_url, backend="rpc://")
        try:
            r = app.send_task("tasks.mul", (6, 7))
            assert r.get(timeout=20) == 42
            assert r.ready() and r.state == "SUCCESS"
            assert stranger.AsyncResult(r.id).state == "PENDING"
            r2 = app.send_task("tasks.mul", (2, 3))
            wait_for(lambda: r2.ready(), 20, "ready() to turn true")
            assert r2.result == 6
        finally:
            app.close()
            stranger.close()


def test_beat_with_rpc_only_is_a_clear_error(tmp_path: Path, amqp_url: str) -> None:
    (tmp_path / "tasks.py").write_text(textwrap.dedent(f"""
        from qmulti import App
        app = App('tasks', broker={amqp_url!r}, backend='rpc://')
        app.conf.beat_schedule = {{'t': {{'task': 'tasks.noop', 'schedule': 5.0}}}}

        @app.task
        def noop():
            return None
    """))
    done = subprocess.run([sys.executable, "-m", "qmulti.supervisor", "beat", "-A", "tasks"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0, done.stderr
    assert "result_backend" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_beat_on_amqp_with_a_redis_backend_sends_each_tick_once(
        tmp_path: Path, amqp_url: str, redis_server: Any) -> None:
    from helpers import wait_for
    from qmulti.brokers.amqp import AmqpBroker

    store = AmqpBroker(amqp_url, result_backend=redis_server.url)
    other = AmqpBroker(amqp_url, result_backend=redis_server.url)
    try:
        assert store.beat_state() == {}
        sent = [store.claim_tick("e", 100.0, Q, "tick-1", b"t"),
                other.claim_tick("e", 100.0, Q, "tick-1b", b"t"),
                store.claim_tick("e", 100.0, Q, "tick-1", b"t")]
        assert sent == [True, False, False]
        assert other.beat_state() == {"e": 100.0}
        got = wait_for(lambda: store.claim([Q], "w#1", "c", 10, 0.2), 10, "the tick")
        assert [d.mid for d in got] == ["tick-1"] and got[0].body == b"t"
        assert store.claim([Q], "w#1", "c", 10, 0.3) == []
    finally:
        store.close()
        other.close()
