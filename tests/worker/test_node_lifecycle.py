"""Signals, pool controls, limits, other pools and --detach on a real node."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from node_fixtures import NodeProcess, producer, results, write_tasks

from helpers import wait_for
from qmulti.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

EXTRA_TASKS = """
from qmulti.exceptions import SoftTimeLimitExceeded as _Soft

@app.task
def hog(kib):
    global _HOG
    _HOG = bytearray(kib * 1024)
    _HOG[::4096] = b"x" * len(_HOG[::4096])
    return os.getpid()

@app.task
def careful(seconds):
    try:
        time.sleep(seconds)
    except _Soft:
        return "cleaned up"
"""


@pytest.mark.timeout(60)
def test_ttin_ttou_change_the_child_count(tmp_path: Path) -> None:
    write_tasks(tmp_path)
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "1") as node:
        node.wait_ready()
        assert len(node.children()) == 1
        node.send(signal.SIGTTIN)  # one at a time: two pending TTINs would merge into one
        wait_for(lambda: len(node.children()) == 2, 10, "two children")
        node.send(signal.SIGTTIN)
        wait_for(lambda: len(node.children()) == 3, 10, "three children")
        wait_for(lambda: any("child 3 idle" in t for t in node.titles()), 10, "child 3 title")
        node.send(signal.SIGTTOU)
        wait_for(lambda: len(node.children()) == 2, 10, "two children")
        assert node.stop() == 0


@pytest.mark.timeout(60)
def test_quit_is_a_cold_stop_and_another_node_completes_the_task(tmp_path: Path) -> None:
    write_tasks(tmp_path)
    app = producer(tmp_path)
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "1", "-n", "a@%h", name="") as first:
        first.wait_ready()
        result = app.send_task("tasks.slow", (1.0, "finished"), check=False)
        wait_for(first.busy_children, 20, "the task to begin")
        assert first.stop(signal.SIGQUIT, timeout=5) == 0
        assert result.state == "STARTED"
        assert app.broker.stats().leased == 0
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "1", "-n", "b@%h", name="") as second:
        second.wait_ready()
        assert result.get(timeout=20) == "finished"
        assert second.stop() == 0


@pytest.mark.timeout(60)
def test_second_int_is_a_cold_stop(tmp_path: Path) -> None:
    write_tasks(tmp_path)
    app = producer(tmp_path)
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "1") as node:
        node.wait_ready()
        app.send_task("tasks.slow", (30.0,), check=False)
        wait_for(node.busy_children, 20, "the task to begin")
        node.send(signal.SIGINT)
        node.wait_message("STOPPING=1", 5)
        node.send(signal.SIGINT)
        assert node.wait(5) == 0
    assert app.broker.stats().queues.get("celery") == 1  # given back, not lost


@pytest.mark.timeout(60)
def test_time_limit_kills_the_child_and_stores_failure(tmp_path: Path) -> None:
    write_tasks(tmp_path, extra_tasks=EXTRA_TASKS)
    app = producer(tmp_path)
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "1", "--time-limit", "1") as node:
        node.wait_ready()
        first_child = node.children()[0].pid
        result = app.send_task("tasks.slow", (5.0,), check=False)
        with pytest.raises(TimeLimitExceeded, match="time limit of 1s"):
            result.get(timeout=10)
        assert app.send_task("tasks.add", (1, 1), check=False).get(timeout=10) == 2
        assert [c.pid for c in node.children()] != [first_child]
        assert len(node.children()) == 1
        assert app.broker.stats().leased == 0 and app.broker.stats().queues.get("celery", 0) == 0
        assert node.stop() == 0


@pytest.mark.timeout(60)
def test_soft_time_limit_is_raised_inside_the_task(tmp_path: Path) -> None:
    write_tasks(tmp_path, extra_tasks=EXTRA_TASKS)
    app = producer(tmp_path)
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "1", "--soft-time-limit", "0.5") as node:
        node.wait_ready()
        assert app.send_task("tasks.careful", (5,), check=False).get(timeout=10) == "cleaned up"
        with pytest.raises(SoftTimeLimitExceeded):
            app.send_task("tasks.slow", (5,), check=False).get(timeout=10)
        assert node.stop() == 0


@pytest.mark.timeout(60)
def test_max_tasks_per_child_recycles_children(tmp_path: Path) -> None:
    write_tasks(tmp_path)
    app = producer(tmp_path)
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "1", "--max-tasks-per-child", "1",
                     "--prefetch-multiplier", "2") as node:
        node.wait_ready()
        ids = [app.send_task("tasks.pid", check=False).id for _ in range(3)]
        pids = results(app, ids)
        assert len(set(pids)) == 3
        assert node.stop() == 0


@pytest.mark.timeout(60)
def test_max_memory_per_child_replaces_the_child_result_intact(tmp_path: Path) -> None:
    write_tasks(tmp_path, extra_tasks=EXTRA_TASKS)
    app = producer(tmp_path)
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "1", "--max-memory-per-child",
                     "120000", "-l", "info") as node:
        node.wait_ready()
        first = app.send_task("tasks.pid", check=False).get(timeout=10)
        hogged = app.send_task("tasks.hog", (200_000,), check=False).get(timeout=20)
        assert hogged == first
        after = app.send_task("tasks.pid", check=False).get(timeout=20)
        assert after != first
        assert node.stop() == 0
    assert "over max memory per child" in node.stderr()


@pytest.mark.parametrize("pool", ["threads", "solo"])
@pytest.mark.timeout(60)
def test_threads_and_solo_pools(tmp_path: Path, pool: str) -> None:
    write_tasks(tmp_path)
    app = producer(tmp_path)
    with NodeProcess(tmp_path, "-A", "tasks", "-P", pool, "-c", "3") as node:
        node.wait_ready()
        assert node.children() == []
        ids = [app.send_task("tasks.add", (i, 1), check=False).id for i in range(50)]
        assert results(app, ids) == [i + 1 for i in range(50)]
        assert app.send_task("tasks.pid", check=False).get(timeout=10) == node.pid
        slow = app.send_task("tasks.slow", (1.0, "ok"), check=False)
        wait_for(lambda: slow.state == "STARTED", 10, "the slow task to start")
        assert node.stop() == 0
        assert slow.get(timeout=1) == "ok"


@pytest.mark.timeout(60)
def test_detach_with_pidfile_logfile_usr1_and_notify(tmp_path: Path) -> None:
    write_tasks(tmp_path)
    app = producer(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "log").mkdir()
    node = NodeProcess(tmp_path, "-A", "tasks", "-c", "2", "-l", "info", "--detach",
                       "--pidfile", "run/%n.pid", "--logfile", "log/%n%I.log")
    try:
        assert node.wait(20) == 0  # the foreground parent exits once detached
        node.wait_ready()
        main_pid = int(next(m for m in node.messages if m.startswith("MAINPID="))[8:])
        assert (tmp_path / "run" / "w1.pid").read_text() == f"{main_pid}\n"
        assert app.send_task("tasks.add", (2, 2), check=False).get(timeout=10) == 4
        os.kill(main_pid, signal.SIGUSR1)
        main_log = tmp_path / "log" / "w1.log"
        wait_for(lambda: 'File "' in main_log.read_text() and "USR1" in main_log.read_text(),
                 10, "a stack dump in the main log")
        child_logs = [tmp_path / "log" / f"w1-{i}.log" for i in (1, 2)]
        wait_for(lambda: all(p.exists() and 'File "' in p.read_text() for p in child_logs),
                 10, "each child's stack in its own log")
        os.kill(main_pid, signal.SIGTERM)
        node.wait_message("STOPPING=1", 10)
        wait_for(lambda: not (tmp_path / "run" / "w1.pid").exists(), 10, "pidfile removed")
        assert "ready" in main_log.read_text()
    finally:
        # The daemon's pid: from its READY (it may not have written the pidfile yet).
        pids = [m[8:] for m in node.messages if m.startswith("MAINPID=")]
        pidfile = tmp_path / "run" / "w1.pid"
        if pidfile.exists():
            pids.append(pidfile.read_text().strip())
        for pid in pids:
            try:
                os.killpg(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        node.close()


@pytest.mark.timeout(60)
def test_hup_restarts_in_place_with_new_code(tmp_path: Path) -> None:
    write_tasks(tmp_path, extra_tasks="@app.task\ndef version():\n    return 1\n")
    app = producer(tmp_path)
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "1", "--pidfile", "w1.pid",
                     "-l", "info") as node:
        node.wait_ready()
        assert app.send_task("tasks.version", check=False).get(timeout=10) == 1
        running = app.send_task("tasks.slow", (1.0, "drained"), check=False)
        wait_for(node.busy_children, 10, "the slow task to begin")
        write_tasks(tmp_path, extra_tasks="@app.task\ndef version():\n    return 'two'\n")
        node.send(signal.SIGHUP)
        node.wait_message("RELOADING=1", 10)
        node.messages.remove("READY=1")
        node.wait_ready(20)  # the new image says READY=1 again
        assert running.get(timeout=5) == "drained"
        assert app.send_task("tasks.version", check=False).get(timeout=10) == "two"
        assert node.proc.poll() is None
        assert (tmp_path / "w1.pid").read_text() == f"{node.pid}\n"
        assert f"MAINPID={node.pid}" in node.messages
        assert node.stop() == 0
    assert not (tmp_path / "w1.pid").exists()
    assert "restarting in place" in node.stderr()


@pytest.mark.timeout(60)
def test_rate_limit_from_annotations_and_revoke(tmp_path: Path) -> None:
    write_tasks(tmp_path, extra_config="app.conf.task_annotations = "
                                       "{'tasks.add': {'rate_limit': '10/s'}}")
    app = producer(tmp_path)
    revoked = app.send_task("tasks.add", (0, 0), check=False, countdown=0.5)
    revoked.revoke()
    ids = [app.send_task("tasks.add", (i, i), check=False).id for i in range(30)]
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "2") as node:
        node.wait_ready()
        began = time.monotonic()
        assert results(app, ids) == [2 * i for i in range(30)]
        assert time.monotonic() - began >= 2.5
        assert revoked.state == "REVOKED"
        assert app.broker.stats().scheduled == 0 and app.broker.stats().leased == 0
        assert node.stop() == 0
