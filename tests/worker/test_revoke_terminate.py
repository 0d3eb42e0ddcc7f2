"""`AsyncResult.revoke(terminate=True, signal=...)` on a real node: the running task
stops within a second, wherever it runs, its state is REVOKED, a killed child is
replaced and no other task is lost."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from node_fixtures import NodeProcess, producer, write_tasks

from helpers import wait_for
from qmulti import App

pytestmark = pytest.mark.timeout(120)

TASKS = '''
from qmulti.exceptions import SoftTimeLimitExceeded

@app.task
def long_one(seconds):
    with open('ran.txt', 'a') as f:
        f.write('x')
    time.sleep(seconds)
    return 'finished'

@app.task
def polite(seconds):
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        with open('cleaned.txt', 'w') as f:
            f.write('cleaned up')
        raise
    return 'finished'
'''


def _app(tmp_path: Path, broker_kind: str, request: pytest.FixtureRequest) -> App:
    if broker_kind == "redis":
        url = request.getfixturevalue("redis_server").url
        write_tasks(tmp_path, extra_config=f"app.conf.broker_url = {url!r}\n",
                    extra_tasks=TASKS)
        return App("producer", broker=url)
    write_tasks(tmp_path, extra_tasks=TASKS)
    return producer(tmp_path)


def _running_child(node: NodeProcess) -> psutil.Process:
    busy = wait_for(node.busy_children, 30, "a busy child")
    return busy[0]


@pytest.mark.parametrize("broker_kind", ["sqlite", "redis"])
@pytest.mark.parametrize("sig", ["TERM", "KILL"])
def test_terminate_stops_the_task_and_replaces_the_child(
        tmp_path: Path, broker_kind: str, sig: str, request: pytest.FixtureRequest) -> None:
    app = _app(tmp_path, broker_kind, request)
    try:
        with NodeProcess(tmp_path, "-A", "tasks", "-c", "1", "-l", "info") as node:
            node.wait_ready()
            r = app.send_task("tasks.long_one", (30,), check=False)
            wait_for(lambda: r.state == "STARTED", 30, "the long task to start")
            child = _running_child(node)
            others = [app.send_task("tasks.add", (i, i), check=False) for i in range(20)]
            began = time.monotonic()
            r.revoke(terminate=True, signal=sig)
            wait_for(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE,
                     5, "the child to be killed")
            stopped = time.monotonic() - began
            assert stopped < 1.0, f"stopped {stopped:.2f}s after revoke"
            assert r.state == "REVOKED"
            assert [o.get(timeout=60) for o in others] == [2 * i for i in range(20)]
            assert b"terminated" in app.backend.get(r.id)  # the node's own verdict
            assert r.state == "REVOKED"
            new = node.children()
            assert len(new) == 1 and new[0].pid != child.pid  # replaced
            assert (tmp_path / "ran.txt").read_text() == "x"  # never ran again
            stats = app.broker.stats()
            assert stats.leased == 0 and sum(stats.queues.values()) == 0
            assert node.stop() == 0
    finally:
        app.close()


def test_usr1_raises_soft_time_limit_in_the_task(tmp_path: Path) -> None:
    app = _app(tmp_path, "sqlite", None)  # type: ignore[arg-type]
    try:
        with NodeProcess(tmp_path, "-A", "tasks", "-c", "1", "-l", "info") as node:
            node.wait_ready()
            r = app.send_task("tasks.polite", (30,), check=False)
            wait_for(lambda: r.state == "STARTED", 30, "the task to start")
            child = _running_child(node)
            began = time.monotonic()
            r.revoke(terminate=True, signal="SIGUSR1")
            wait_for(lambda: (tmp_path / "cleaned.txt").exists(), 5, "the task's cleanup")
            assert time.monotonic() - began < 1.0
            wait_for(lambda: b"terminated" in app.backend.get(r.id), 10,
                     "the child to store REVOKED")
            assert r.state == "REVOKED"
            assert app.send_task("tasks.add", (2, 2), check=False).get(timeout=30) == 4
            assert [c.pid for c in node.children()] == [child.pid]  # the same child
            assert node.stop() == 0
    finally:
        app.close()


def test_revoke_without_terminate_lets_a_running_task_finish(tmp_path: Path) -> None:
    app = _app(tmp_path, "sqlite", None)  # type: ignore[arg-type]
    try:
        with NodeProcess(tmp_path, "-A", "tasks", "-c", "1") as node:
            node.wait_ready()
            r = app.send_task("tasks.long_one", (1.5,), check=False)
            wait_for(lambda: r.state == "STARTED", 30, "the task to start")
            child = _running_child(node)
            r.revoke()
            time.sleep(0.6)  # longer than the node's look-up interval: nothing happens
            assert child.is_running()
            assert node.stop() == 0
    finally:
        app.close()


@pytest.mark.parametrize("bad", ["STOP", "nonsense", 9999])
def test_unknown_signal_is_refused_before_anything_is_stored(bad: Any) -> None:
    app = App("p", broker="memory://", set_as_current=False)
    r = app.AsyncResult("some-id")
    with pytest.raises(ValueError):
        r.revoke(terminate=True, signal=bad)
    assert r.state == "PENDING"
