"""`celery worker` flags on a real qworker: each has its Celery meaning, or is accepted
with one INFO line saying why qmulti does not need it; never "no such option"."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from node_fixtures import NodeProcess, producer, run_qworker, write_tasks

from helpers import wait_for
from qmulti import App
from qmulti.supervisor.grammar import build
from qmulti.supervisor.status import run_status

pytestmark = pytest.mark.timeout(120)


def test_flags_qmulti_does_not_need_are_accepted_with_one_info_line(tmp_path: Path) -> None:
    write_tasks(tmp_path)
    app = producer(tmp_path)
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "1", "-l", "info", "-E",
                     "--statedb", "worker.state", "--without-gossip", "--without-mingle",
                     "--without-heartbeat") as node:
        node.wait_ready()
        assert app.send_task("tasks.add", (1, 2), check=False).get(timeout=30) == 3
        log = node.stderr()
        for flag in ("--statedb", "--without-gossip",
                     "--without-mingle", "--without-heartbeat"):
            lines = [line for line in log.splitlines() if "INFO/w1@" in line and
                     f"] {flag}:" in line]
            assert len(lines) == 1, f"{flag}:\n{log}"
        assert node.stop() == 0
    app.close()


def test_eventlet_is_one_clear_line(tmp_path: Path) -> None:
    write_tasks(tmp_path)
    done = run_qworker(tmp_path, "-A", "tasks", "-P", "eventlet", "-c", "500")
    assert done.returncode == 78, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "-P eventlet" in lines[0] and "-P threads" in lines[0]


def test_gevent_runs_500_green_threads(tmp_path: Path, redis_server: Any) -> None:
    pytest.importorskip("gevent")
    write_tasks(tmp_path, extra_config=f"app.conf.broker_url = {redis_server.url!r}\n")
    app = App("producer", broker=redis_server.url)
    try:
        with NodeProcess(tmp_path, "-A", "tasks", "-P", "gevent", "-c", "500",
                         "-l", "info") as node:
            node.wait_ready(60)
            began = time.monotonic()
            results = [app.send_task("tasks.slow", (2, i)) for i in range(500)]
            assert [r.get(timeout=60) for r in results] == list(range(500))
            # 500 two-second tasks at once, not one after another
            assert time.monotonic() - began < 20
            assert "gevent pool, concurrency 500" in node.stderr()
            assert node.stop(timeout=60) == 0
    finally:
        app.close()


def test_gevent_missing_is_one_clear_line(tmp_path: Path) -> None:
    write_tasks(tmp_path)
    code = ("import sys\n"
            "sys.modules['gevent'] = None  # as if it were not installed\n"
            "from qmulti.node.cli import main\n"
            "main(['-A', 'tasks', '-P', 'gevent', '-c', '500'])\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 78, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "qmulti[gevent]" in lines[0], done.stderr


def test_purge_deletes_waiting_messages_before_consuming(tmp_path: Path) -> None:
    write_tasks(tmp_path)
    app = producer(tmp_path)
    old = [app.send_task("tasks.add", (i, i), check=False) for i in range(5)]
    other = app.send_task("tasks.add", (7, 7), queue="other", check=False)
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "1", "-l", "info", "--purge") as node:
        node.wait_ready()
        assert "--purge: deleted 5 waiting message(s) from celery" in node.stderr()
        new = app.send_task("tasks.add", (1, 1), check=False)
        assert new.get(timeout=30) == 2
        assert [r.state for r in old] == ["PENDING"] * 5
        assert app.broker.stats().queues.get("celery", 0) == 0
        assert app.broker.stats().queues.get("other") == 1  # not one of the node's queues
        assert node.stop() == 0
    assert other.state == "PENDING"
    app.close()


def test_exclude_queues(tmp_path: Path) -> None:
    write_tasks(tmp_path)
    app = producer(tmp_path)
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "1", "-Q", "a,b,c", "-X", "b") as node:
        node.wait_ready()
        ra = app.send_task("tasks.add", (1, 1), queue="a", check=False)
        rb = app.send_task("tasks.add", (2, 2), queue="b", check=False)
        rc = app.send_task("tasks.add", (3, 3), queue="c", check=False)
        assert (ra.get(timeout=30), rc.get(timeout=30)) == (2, 6)
        assert rb.state == "PENDING" and app.broker.stats().queues.get("b") == 1
        assert node.stop() == 0
    done = run_qworker(tmp_path, "-A", "tasks", "-X", "celery")
    assert done.returncode == 64, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "-X" in done.stderr
    app.close()


def test_optimization_fair_no_task_waits_behind_a_busy_child(tmp_path: Path) -> None:
    write_tasks(tmp_path)
    app = producer(tmp_path)
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "2", "-O", "fair") as node:
        node.wait_ready()
        slow = app.send_task("tasks.slow", (8, "slow"), check=False)
        wait_for(lambda: slow.state == "STARTED", 30, "the slow task to start")
        quick = [app.send_task("tasks.add", (i, 1), check=False) for i in range(6)]
        assert [r.get(timeout=30) for r in quick] == [i + 1 for i in range(6)]
        assert slow.state == "STARTED"  # every quick one ran on the other child meanwhile
        assert slow.get(timeout=30) == "slow"
        assert node.stop() == 0
    app.close()


@pytest.mark.parametrize("value", ["x,1", "1,2", "0", "1,2,3"])
def test_bad_autoscale_is_a_usage_error(tmp_path: Path, value: str) -> None:
    write_tasks(tmp_path)
    done = run_qworker(tmp_path, "-A", "tasks", "--autoscale", value)
    assert done.returncode == 64, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "--autoscale" in done.stderr


def _status(tmp_path: Path) -> str:
    out = io.StringIO()
    run_status(build(["w1@testhost", "-A", "tasks"], "testhost"), cwd=str(tmp_path), out=out,
               environ={})
    return out.getvalue()


def test_autoscale_grows_under_a_backlog_and_shrinks_when_idle(tmp_path: Path) -> None:
    write_tasks(tmp_path)
    app = producer(tmp_path)
    with NodeProcess(tmp_path, "-A", "tasks", "--autoscale", "4,1", "-l", "info",
                     "--pidfile", "w1.pid", name="w1@testhost") as node:
        node.wait_ready()
        assert len(node.children()) == 1
        wait_for(lambda: "(autoscale 1-4)" in _status(tmp_path), 20, "status to show it")
        results = [app.send_task("tasks.slow", (3, i), check=False) for i in range(12)]
        wait_for(lambda: len(node.children()) == 4, 30, "the pool to grow to 4")
        assert "autoscale: pool grows" in node.stderr()
        assert "4 (autoscale 1-4)" in _status(tmp_path)
        assert [r.get(timeout=60) for r in results] == list(range(12))
        began = time.monotonic()
        wait_for(lambda: len(node.children()) == 1, 60, "the pool to shrink back to 1")
        assert time.monotonic() - began > 5  # one at a time, after the keepalive
        assert "autoscale: pool shrinks" in node.stderr()
        assert len(node.children()) == 1
        assert node.stop() == 0
    app.close()
