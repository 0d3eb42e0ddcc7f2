"""What issue 16 asks to work "the same on RabbitMQ", on one real node over amqp:// with
a Redis result backend (the side store of node records, control and events): -Q
routing, retries, revoke, rate limits, `inspect` and `control`, `qmulti events`, `qmulti
status`; and, with `rpc://` only, the one-line errors that name the setting to change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from ctl_support import Node, qmulti, wait_answering

from helpers import wait_for

pytestmark = pytest.mark.timeout(120)

TASKS = '''
import os, time
from pathlib import Path
from qmulti import App

app = App('tasks', broker={broker!r}, backend={backend!r})
app.conf.update(worker_heartbeat_interval=0.5, worker_heartbeat_expiry=3.0,
                task_default_queue='default',
                task_routes={{'tasks.urgent': {{'queue': 'urgent'}}}})


@app.task
def add(a, b):
    return a + b


@app.task
def urgent():
    return 'urgent'


@app.task
def slow(seconds):
    time.sleep(seconds)
    return seconds


@app.task(bind=True, autoretry_for=(OSError,), retry_backoff=False, default_retry_delay=0.2,
          max_retries=3)
def flaky(self, marker):
    path = Path(marker)
    tries = int(path.read_text()) if path.exists() else 0
    path.write_text(str(tries + 1))
    if tries < 2:
        raise OSError('not yet')
    return self.request.retries
'''


def _project(root: Path, broker: str, backend: str) -> None:
    (root / "tasks.py").write_text(textwrap.dedent(TASKS.format(broker=broker,
                                                                backend=backend)))


def _producer(broker: str, backend: str):  # noqa: ANN202 - an App
    from qmulti import App

    return App("producer", broker=broker, backend=backend, task_default_queue="default",
               set_as_current=False, worker_heartbeat_expiry=3.0,
               task_routes={"tasks.urgent": {"queue": "urgent"}})


def test_one_node_on_amqp_with_a_redis_backend(tmp_path: Path, amqp_url: str,
                                               amqp_vhost: Any, redis_server: Any) -> None:
    amqp_vhost.queues.update({"default", "urgent"})
    backend = redis_server.url
    _project(tmp_path, amqp_url, backend)
    app = _producer(amqp_url, backend)
    node = Node(tmp_path, "n1@here", "-c", "2", "-E", "-Q", "default,urgent",
                "--pidfile", str(tmp_path / "n1.pid"))
    try:
        wait_answering(app, ["n1@here"])
        inspect = app.control.inspect(destination=["n1@here"], timeout=2.0)
        assert sorted(inspect.registered()["n1@here"]) == [
            "tasks.add", "tasks.flaky", "tasks.slow", "tasks.urgent"]

        # -Q routing and a retried task.
        assert app.send_task("tasks.urgent").get(timeout=20) == "urgent"
        marker = tmp_path / "flaky.count"
        flaky = app.send_task("tasks.flaky", (str(marker),))
        assert flaky.get(timeout=30) == 2 and marker.read_text() == "3"

        # inspect active, and revoke of a task that waits for its countdown.
        running = app.send_task("tasks.slow", (1.5,))
        def active() -> list:
            got = (inspect.active() or {}).get("n1@here")
            assert isinstance(got, list), got
            return [t["id"] for t in got]

        wait_for(lambda: active() == [running.id], 20, "the slow task in inspect active")
        later = app.send_task("tasks.add", (1, 1), countdown=1.0)
        app.control.revoke(later.id)
        assert running.get(timeout=20) == 1.5
        wait_for(lambda: app.AsyncResult(later.id).state == "REVOKED", 20,
                 "the revoked countdown task to be skipped")

        # A rate limit set by control: two tasks a second, so four take over a second.
        assert app.control.rate_limit("tasks.add", "2/s", reply=True) == [
            {"n1@here": {"ok": "new rate limit set successfully"}}]
        start = time.monotonic()
        results = [app.send_task("tasks.add", (i, i)) for i in range(4)]
        assert [r.get(timeout=20) for r in results] == [0, 2, 4, 6]
        assert time.monotonic() - start >= 1.0

        # The event stream, through the command line (heartbeat events keep it busy, so
        # it is read until the wanted events came).
        wanted = {running.id, flaky.id, *(r.id for r in results)}
        seen = _events_until(tmp_path, wanted)
        assert any(e.get("type") == "task-retried" and e.get("uuid") == flaky.id
                   for e in seen)

        # qmulti status: the node's row carries its heartbeat from the side store.
        status = qmulti(tmp_path, "status", "n1@here", "-A", "tasks", "--json")
        assert status.returncode == 0, status.stderr
        assert "guest:guest" not in status.stdout
        [row] = json.loads(status.stdout)["nodes"]
        assert row["name"] == "n1@here" and row["state"] == "running"
        assert row["heartbeat_age"] is not None and row["heartbeat_age"] < 3.0, row
        node.proc.terminate()
        assert node.wait() == 0
    finally:
        node.close()
        app.close()


def test_inspect_shows_what_a_child_holds(tmp_path: Path, amqp_url: str, amqp_vhost: Any,
                                          redis_server: Any) -> None:
    """On RabbitMQ the messages sit on each child's own channel: the child reports its
    claims on its status pipe, so `active` has the running task's arguments and
    `reserved` the prefetched ones, as on Redis."""
    amqp_vhost.queues.add("default")
    _project(tmp_path, amqp_url, redis_server.url)
    app = _producer(amqp_url, redis_server.url)
    first = app.send_task("tasks.slow", (4.0,))
    queued = [app.send_task("tasks.slow", (0.1 * i,)) for i in range(1, 4)]
    node = Node(tmp_path, "n1@here", "-c", "1", "--prefetch-multiplier", "4", "-Q", "default")
    try:
        wait_answering(app, ["n1@here"])
        inspect = app.control.inspect(destination=["n1@here"], timeout=2.0)

        def held() -> tuple[list[tuple[str, list]], list[tuple[str, list]]]:
            active = (inspect.active() or {}).get("n1@here") or []
            reserved = (inspect.reserved() or {}).get("n1@here") or []
            return ([(t["id"], t["args"]) for t in active],
                    sorted((t["id"], t["args"]) for t in reserved))

        expected = ([(first.id, [4.0])],
                    sorted((q.id, [0.1 * i]) for i, q in enumerate(queued, 1)))
        wait_for(lambda: held() == expected, 20, "the running task and the three prefetched")
        assert first.get(timeout=20) == 4.0
        assert [q.get(timeout=20) for q in queued] == [0.1 * i for i in range(1, 4)]
        wait_for(lambda: held() == ([], []), 10, "nothing held once all ran")
    finally:
        node.close()
        app.close()


def _events_until(root: Path, wanted: set[str], timeout: float = 30.0) -> list[dict]:
    """`qmulti events -A tasks --oldest --json` read line by line until every id in
    `wanted` has its task-succeeded event."""
    env = {k: v for k, v in os.environ.items() if k != "QMULTI_BROKER_URL"}
    proc = subprocess.Popen([sys.executable, "-m", "qmulti.supervisor", "events", "-A",
                             "tasks", "--oldest", "--json"], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[dict] = []
    missing = set(wanted)
    deadline = time.monotonic() + timeout
    try:
        assert proc.stdout is not None
        while missing and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            event = json.loads(line)
            seen.append(event)
            if event.get("type") == "task-succeeded":
                missing.discard(event.get("uuid"))
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=10)
    assert not missing, f"no task-succeeded for {missing}; stderr: {err}"
    return seen


def test_rpc_only_monitors_say_what_to_set(tmp_path: Path, amqp_url: str) -> None:
    _project(tmp_path, amqp_url, "rpc://")
    for argv in (["events", "-A", "tasks", "--timeout", "1"],
                 ["inspect", "ping", "-A", "tasks", "--timeout", "1"]):
        done = qmulti(tmp_path, *argv)
        assert done.returncode != 0
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "result_backend redis://" in lines[0], done.stderr
        assert "Traceback" not in done.stderr and "guest:guest" not in done.stderr
