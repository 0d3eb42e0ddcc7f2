"""Log rotation (USR2, copytruncate), sd_notify as systemd sees it, and the issue-6
acceptance bullets the lifecycle and recovery tests do not already cover."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest
from node_fixtures import NodeProcess, producer, write_tasks

from helpers import wait_for
from qmulti.exceptions import TimeLimitExceeded


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


@pytest.mark.parametrize("template", ["%n.log", "%n%I.log"], ids=["shared", "per-child"])
@pytest.mark.timeout(60)
def test_usr2_reopens_renamed_log_files(tmp_path: Path, template: str) -> None:
    write_tasks(tmp_path)
    app = producer(tmp_path)
    (tmp_path / "log").mkdir()
    log_dir = tmp_path / "log"
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "2", "-l", "info", "--prefetch-multiplier",
                     "1", "--logfile", f"log/{template}") as node:
        node.wait_ready()
        before = app.send_task("tasks.add", (1, 1), check=False)
        assert before.get(timeout=10) == 2
        names = sorted(p.name for p in log_dir.iterdir())
        for name in names:  # what logrotate does first: rename, keep writing elsewhere
            (log_dir / name).rename(log_dir / f"{name}.1")
        node.send(signal.SIGUSR2)
        main_log = log_dir / "w1.log"
        wait_for(lambda: "USR2: reopened" in _text(main_log), 10, "the main log reopened")
        # Two 1 s tasks with prefetch 1: each child runs one, so both must have reopened.
        after = [app.send_task("tasks.slow", (1.0, i), check=False) for i in range(2)]
        assert [r.get(timeout=15) for r in after] == [0, 1]
        fresh = [log_dir / n for n in names]
        wait_for(lambda: all(f"[{r.id}] succeeded" in "".join(map(_text, fresh))
                             for r in after), 10, "the new tasks' lines in the new files")
        rotated = "".join(_text(log_dir / f"{n}.1") for n in names)
        assert f"[{before.id}] succeeded" in rotated
        assert not any(r.id in rotated for r in after)
        if template == "%n%I.log":  # each child wrote its line into its own new file
            for index in (1, 2):
                wait_for(lambda i=index: "succeeded" in _text(log_dir / f"w1-{i}.log"), 10,
                         f"child {index}'s new log")
        assert node.stop() == 0


@pytest.mark.timeout(60)
def test_copytruncate_leaves_no_hole(tmp_path: Path) -> None:
    """Every writer appends: after logrotate copies and truncates the file, the next line
    starts at offset 0, not at the writer's old offset behind a run of NUL bytes."""
    write_tasks(tmp_path)
    app = producer(tmp_path)
    log = tmp_path / "w1.log"
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "1", "-l", "info",
                     "--logfile", "w1.log") as node:
        node.wait_ready()
        first = app.send_task("tasks.add", (1, 1), check=False)
        assert first.get(timeout=10) == 2
        wait_for(lambda: first.id in _text(log), 10, "the first task's line")
        assert log.stat().st_size > 200
        (tmp_path / "w1.log.1").write_bytes(log.read_bytes())
        os.truncate(log, 0)
        second = app.send_task("tasks.add", (2, 2), check=False)
        assert second.get(timeout=10) == 4
        wait_for(lambda: second.id in _text(log), 10, "the second task's line")
        node.send(signal.SIGUSR2)  # the main process writes too
        wait_for(lambda: "USR2" in _text(log), 10, "the main process's line")
        data = log.read_bytes()
        assert b"\0" not in data
        assert data.startswith(b"[")
        assert node.stop() == 0


def _recv_all(sock: socket.socket, into: list[str], timeout: float) -> None:
    sock.settimeout(timeout)
    try:
        while True:
            into.append(sock.recv(65536).decode())
            sock.settimeout(0.001)
    except (TimeoutError, BlockingIOError):
        pass


def _wait_datagram(sock: socket.socket, seen: list[str], pred: object, timeout: float,
                   what: str) -> str:
    deadline = time.monotonic() + timeout
    checked = 0
    while True:
        for gram in seen[checked:]:
            if pred(gram):  # type: ignore[operator]
                return gram
        checked = len(seen)
        if time.monotonic() > deadline:
            raise AssertionError(f"no datagram with {what} after {timeout}s: {seen}")
        _recv_all(sock, seen, 0.2)


@pytest.mark.timeout(60)
def test_sd_notify_ready_status_watchdog_stopping(tmp_path: Path) -> None:
    write_tasks(tmp_path)
    app = producer(tmp_path)
    path = tmp_path / "n.sock"
    assert len(str(path)) < 100, "AF_UNIX path too long for this tmp dir"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    seen: list[str] = []
    try:
        with NodeProcess(tmp_path, "-A", "tasks", "-c", "2", notify=False,
                         env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"}) as node:
            ready = _wait_datagram(sock, seen, lambda g: "READY=1" in g.splitlines(), 30,
                                   "READY=1")
            assert f"MAINPID={node.pid}" in ready.splitlines()
            assert "STATUS=consuming from celery: 2 children, 0 active, 0 finished" in ready
            ids = [app.send_task("tasks.add", (i, i), check=False) for i in range(3)]
            assert [r.get(timeout=10) for r in ids] == [0, 2, 4]
            _wait_datagram(sock, seen, lambda g: g == "STATUS=consuming from celery: "
                           "2 children, 0 active, 3 finished", 10, "STATUS with the counts")
            # Pings at half of WATCHDOG_USEC: three within about 0.6 s, while idle.
            start = len(seen)
            deadline = time.monotonic() + 5
            while seen[start:].count("WATCHDOG=1") < 3:
                assert time.monotonic() < deadline, f"too few WATCHDOG=1: {seen}"
                _recv_all(sock, seen, 0.2)
            node.send(signal.SIGTERM)
            _wait_datagram(sock, seen, lambda g: "STOPPING=1" in g.splitlines(), 10,
                           "STOPPING=1")
            assert node.wait(20) == 0
        _recv_all(sock, seen, 0.05)
        # Only the main process speaks: children must not inherit NOTIFY_SOCKET.
        assert sum("READY=1" in g.splitlines() for g in seen) == 1
    finally:
        sock.close()


SIGNAL_TASKS = """
@app.task(bind=True, max_retries=3)
def flaky(self, path):
    tries = self.request.retries
    with open(path, 'a') as f:
        f.write(f'{tries} {self.request.id}\\n')
    if tries < 2:
        raise self.retry(exc=ValueError(f'try {tries}'), countdown=0.1)
    return f'third try ({tries} retries)'

@app.task
def touch(path):
    open(path, 'w').close()
"""


@pytest.mark.timeout(60)
def test_bound_task_retries_twice_then_succeeds(tmp_path: Path) -> None:
    write_tasks(tmp_path, extra_tasks=SIGNAL_TASKS)
    app = producer(tmp_path)
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "2") as node:
        node.wait_ready()
        result = app.send_task("tasks.flaky", (str(tmp_path / "tries"),), check=False)
        assert result.get(timeout=20) == "third try (2 retries)"
        tries = (tmp_path / "tries").read_text().split("\n")[:-1]
        assert tries == [f"{n} {result.id}" for n in range(3)]
        assert app.broker.stats().scheduled == 0 and app.broker.stats().leased == 0
        assert node.stop() == 0


@pytest.mark.timeout(60)
def test_expired_task_behind_a_slow_one_is_revoked_never_run(tmp_path: Path) -> None:
    write_tasks(tmp_path, extra_tasks=SIGNAL_TASKS)
    app = producer(tmp_path)
    marker = tmp_path / "ran"
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "1", "--prefetch-multiplier", "1") as node:
        node.wait_ready()
        slow = app.send_task("tasks.slow", (3.0, "slow"), check=False)
        wait_for(node.busy_children, 20, "the slow task to begin")
        late = app.send_task("tasks.touch", (str(marker),), check=False, expires=1)
        assert slow.get(timeout=15) == "slow"
        wait_for(lambda: late.state == "REVOKED", 10, "the expired task to be REVOKED")
        assert not marker.exists()
        assert node.stop() == 0


@pytest.mark.timeout(60)
def test_rate_limit_from_celery_annotations_config_module(tmp_path: Path) -> None:
    (tmp_path / "config.py").write_text(
        "BROKER_URL = 'sqlite:///q.sqlite3'\n"
        "CELERY_ANNOTATIONS = {'tasks.add': {'rate_limit': '10/s'}}\n")
    write_tasks(tmp_path, extra_config="app.config_from_object('config')")
    app = producer(tmp_path)
    ids = [app.send_task("tasks.add", (i, i), check=False) for i in range(30)]
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "2") as node:
        node.wait_ready()
        began = time.monotonic()
        assert [r.get(timeout=30) for r in ids] == [2 * i for i in range(30)]
        assert time.monotonic() - began >= 2.5
        assert node.stop() == 0


@pytest.mark.timeout(60)
def test_time_limit_fails_a_3s_task_in_about_1s_and_refills_the_pool(tmp_path: Path) -> None:
    write_tasks(tmp_path)
    app = producer(tmp_path)
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "2", "--time-limit", "1") as node:
        node.wait_ready()
        before = {c.pid for c in node.children()}
        result = app.send_task("tasks.slow", (3.0,), check=False)
        wait_for(node.busy_children, 20, "the task to begin")
        began = time.monotonic()
        with pytest.raises(TimeLimitExceeded):
            result.get(timeout=10)
        assert time.monotonic() - began < 2.5
        assert result.state == "FAILURE"
        wait_for(lambda: len(node.children()) == 2 and {c.pid for c in node.children()}
                 != before, 10, "a replacement child")
        assert node.stop() == 0
