"""Drill: a rolling restart under a steady producer loses nothing, runs nothing twice, and
never leaves the queue unserved for more than a second.

Three nodes (`-c 2`) on a private Redis; a producer thread sends short tracked tasks at a
fixed pace (60 a second) from before the restart until after it. Each run appends
"<n> <unix time> <pid>" to a runs file when its body ends, so the runs file gives both the
run count of every task and the completion times. Two ways to roll are drilled:
`qmulti restart` of detached nodes, and `qmulti supervise` + HUP. Asserted for each: every
task SUCCESS (0 lost), every task id once in the runs file (0 run twice), and the largest
gap between consecutive completions across the restart window is at most 1 s. The figures
are printed (`pytest -s` shows them) so a run can be quoted.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import textwrap
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from drill_support import Project, statuses

from helpers import wait_for
from qmulti.pidfiles import probe
from redis_server import RedisServer

NODES = ["w1", "w2", "w3"]
OPTS = ["-A", "tasks", "-c", "2", "-l", "info"]
RATE = 60.0  # tasks a second: steady, well under what three nodes can do
TASK_SECONDS = 0.005
MAX_GAP = 1.0  # the promise: throughput never zero for longer than this
WARMUP = 60  # completions seen before the restart begins: the cluster is serving
AFTER = 1.0  # seconds the producer keeps sending once the restart is over

# Its own tasks module, not drill_support's: the drill needs a completion time per run.
TASKS = '''
import os
import time

from qmulti import App

app = App("tasks", broker={url!r})
RUNS = {runs!r}


@app.task(name="tasks.stamp")
def stamp(n, seconds=0.0):
    if seconds:
        time.sleep(seconds)
    # O_APPEND: one whole line a run, whichever process writes it; written last, so
    # the time is when the body finished.
    line = "%d %.6f %d\\n" % (n, time.time(), os.getpid())
    fd = os.open(RUNS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return n
'''


class Producer(threading.Thread):
    """Sends `tasks.stamp` at a fixed pace until stopped; a fixed schedule, so a slow
    send is caught up rather than shifting every later one."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.ids: list[str] = []
        self.sent_at: list[float] = []
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self) -> None:
        from qmulti import App

        app = App("producer", broker=self.url)
        began = time.monotonic()
        try:
            n = 0
            while not self.done.is_set():
                self.ids.append(app.send_task("tasks.stamp", (n, TASK_SECONDS), check=False).id)
                self.sent_at.append(time.time())
                n += 1
                # Pacing, not synchronisation: the next send is due at began + n / RATE.
                self.done.wait(max(0.0, began + n / RATE - time.monotonic()))
        except BaseException as exc:  # surfaced by the test thread
            self.error = exc

    def stop(self) -> None:
        self.done.set()
        self.join(30)
        assert not self.is_alive(), "producer thread did not stop"
        assert self.error is None, f"producer failed: {self.error!r}"


def read_runs(runs: Path) -> list[tuple[int, float, int]]:
    """(n, completion time, pid) for every run, in file order."""
    if not runs.exists():
        return []
    out = []
    for line in runs.read_text().splitlines():
        n, stamp, pid = line.split()
        out.append((int(n), float(stamp), int(pid)))
    return out


def largest_gap(times: list[float], start: float, end: float) -> float:
    """The longest stretch without a completion that overlaps [start, end].

    Bounded by the last completion at or before `start` and the first at or after `end`,
    so a stall that began just before the window or ended just after it counts whole.
    """
    times = sorted(times)
    before = [t for t in times if t <= start]
    after = [t for t in times if t >= end]
    points = ([before[-1]] if before else [start]) + [t for t in times if start < t < end] \
        + ([after[0]] if after else [end])
    return max(b - a for a, b in zip(points, points[1:], strict=False))


def largest_send_gap(sent_at: list[float], start: float, end: float) -> float:
    """The producer's own largest pause in the window: tells a stalled producer (a loaded
    machine) from a stalled cluster when a completion gap is too long."""
    return largest_gap(sent_at, start, end)


@dataclass
class Figures:
    how: str
    sent: int = 0
    completed: int = 0
    lost: int = 0
    twice: int = 0
    max_gap: float = 0.0
    send_gap: float = 0.0
    window: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    twice_ids: list[int] = field(default_factory=list)
    gap_at: float = 0.0

    def line(self) -> str:
        return (f"rolling drill ({self.how}): sent={self.sent} completed={self.completed} "
                f"lost={self.lost} run-twice={self.twice} max-gap={self.max_gap:.3f}s "
                f"(producer max send gap {self.send_gap:.3f}s) "
                f"restart-window={self.window:.1f}s statuses={dict(self.statuses)}")


def settle(server: RedisServer, ids: list[str], timeout: float) -> Counter[str]:
    """Wait until every task has an outcome (or the deadline) and count the outcomes."""
    from qmulti.brokers.redis import RedisStore

    store = RedisStore(server.url)
    pending = set(ids)
    deadline = time.monotonic() + timeout
    try:
        while pending and time.monotonic() < deadline:
            pending = {t for t in pending
                       if statuses(store, [t]).get("SUCCESS", 0) == 0}
            if pending:
                time.sleep(0.2)  # polling interval of a loop with a deadline
        return statuses(store, ids)
    finally:
        store.close()


def figures(how: str, producer: Producer, runs: Path, counts: Counter[str],
            start: float, end: float) -> Figures:
    done = read_runs(runs)
    per_id = Counter(n for n, _, _ in done)
    twice = sorted(n for n, c in per_id.items() if c > 1)
    fig = Figures(how, sent=len(producer.ids), completed=counts.get("SUCCESS", 0),
                  statuses=counts, window=end - start)
    fig.lost = fig.sent - fig.completed
    fig.twice = sum(per_id[n] - 1 for n in twice)
    fig.twice_ids = twice
    times = sorted(t for _, t, _ in done)
    fig.max_gap = largest_gap(times, start, end)
    fig.send_gap = largest_send_gap(producer.sent_at, start, end)
    gaps = [(b - a, a) for a, b in zip(times, times[1:], strict=False) if b >= start and a <= end]
    fig.gap_at = max(gaps)[1] - start if gaps else 0.0
    return fig


def check(fig: Figures, sent: list[str], runs: Path, log: str) -> None:
    print(f"\n{fig.line()}")
    assert fig.sent >= RATE * 2, f"too few tasks sent to call it load: {fig.sent}"
    assert fig.lost == 0, f"{fig.lost} task(s) lost: {dict(fig.statuses)}\n{log}"
    assert fig.twice == 0, f"task(s) run twice: {fig.twice_ids[:20]}\n{log}"
    ran = {n for n, _, _ in read_runs(runs)}
    assert ran == set(range(len(sent))), "runs file does not match what was sent"
    assert fig.max_gap <= MAX_GAP, (
        f"no completion for {fig.max_gap:.3f}s, {fig.gap_at:.2f}s into the restart "
        f"window (producer's own largest pause {fig.send_gap:.3f}s)\n{log}")


def warm_up(runs: Path, producer: Producer) -> None:
    """The producer is running and the cluster serves it: the baseline before a restart."""
    wait_for(lambda: len(read_runs(runs)) >= WARMUP or producer.error, 30,
             f"{WARMUP} completions before the restart")
    assert producer.error is None, f"producer failed: {producer.error!r}"


def node_pids(project: Project) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for name in NODES:
        status = probe(str(project.path / f"{name}.pid"))
        out[name] = status.pid if status.state == "running" else None
    return out


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    """A tmp project; every process working in it is killed afterwards."""
    proj = Project.make(tmp_path / "proj")
    try:
        yield proj
    finally:
        proj.kill_all()


def write_tasks(project: Project, url: str) -> Path:
    runs = project.path / "runs.log"
    (project.path / "tasks.py").write_text(textwrap.dedent(TASKS).format(url=url,
                                                                         runs=str(runs)))
    return runs


@pytest.mark.timeout(150)
def test_qmulti_restart_under_load(project: Project, redis_server: RedisServer) -> None:
    runs = write_tasks(project, redis_server.url)
    start = project.qmulti("start", *NODES, *OPTS)
    assert start.returncode == 0, start.stdout + start.stderr
    old = node_pids(project)
    assert all(old.values()), (old, start.stdout)

    producer = Producer(redis_server.url)
    producer.start()
    try:
        warm_up(runs, producer)
        began = time.time()
        proc = project.qmulti("restart", *NODES, *OPTS, "--timeout", "60", timeout=120)
        ended = time.time()
        # Keep sending past the restart: the window's last gap is bounded by a completion.
        wait_for(lambda: time.time() >= ended + AFTER, AFTER + 5, "the after-restart load")
    finally:
        producer.stop()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    new = node_pids(project)
    for name in NODES:
        assert re.search(rf"^{name}@\S+: OK \(pid {new[name]}\): restarted \(was pid "
                         rf"{old[name]}\)$", proc.stdout, re.M), proc.stdout

    counts = settle(redis_server, producer.ids, 60)
    fig = figures("qmulti restart", producer, runs, counts, began, ended)
    check(fig, producer.ids, runs, proc.stdout + proc.stderr)

    stop = project.qmulti("stopwait", *NODES, *OPTS, "--timeout", "30")
    assert stop.returncode == 0, stop.stdout + stop.stderr
    wait_for(lambda: not project.processes(), 10, "no process left after stopwait")


class NotifyListener:
    """A datagram socket standing in for systemd's: what supervise says, in order."""

    def __init__(self) -> None:
        self.address = f"\0qmulti-rolling-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.address)
        self.sock.setblocking(False)
        self.messages: list[dict[str, str]] = []

    @property
    def env_value(self) -> str:
        return "@" + self.address[1:]

    def receive(self) -> list[dict[str, str]]:
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return self.messages
            fields = {}
            for line in data.decode(errors="replace").splitlines():
                key, sep, value = line.partition("=")
                if sep:
                    fields[key] = value
            self.messages.append(fields)

    def find(self, key: str, after: int = 0) -> int | None:
        for index, fields in enumerate(self.receive()):
            if index >= after and fields.get(key) == "1":
                return index
        return None

    def close(self) -> None:
        self.sock.close()


@pytest.mark.timeout(150)
def test_supervise_hup_under_load(project: Project, redis_server: RedisServer) -> None:
    runs = write_tasks(project, redis_server.url)
    listener = NotifyListener()
    out = project.path / "supervise.out"
    sup = project.popen_qmulti("supervise", *NODES, *OPTS, "--timeout", "60", out=out,
                               env=project.env(NOTIFY_SOCKET=listener.env_value))

    def log() -> str:
        return out.read_text(errors="replace")

    def said(key: str, after: int = 0) -> int:
        def found() -> int | None:
            if sup.poll() is not None:
                raise AssertionError(f"supervise exited {sup.returncode}:\n{log()}")
            index = listener.find(key, after)
            return None if index is None else index + 1
        return wait_for(found, 60, f"{key}=1 from supervise; log:\n{log()}") - 1

    producer = Producer(redis_server.url)
    try:
        ready = said("READY")
        old = node_pids(project)
        assert all(old.values()), (old, log())
        producer.start()
        warm_up(runs, producer)
        began = time.time()
        sup.send_signal(signal.SIGHUP)
        reloading = said("RELOADING", ready + 1)
        said("READY", reloading + 1)
        ended = time.time()
        wait_for(lambda: time.time() >= ended + AFTER, AFTER + 5, "the after-restart load")
        producer.stop()
        new = node_pids(project)
        assert all(new[n] and new[n] != old[n] for n in NODES), (old, new, log())
        assert "rolling restart done" in log(), log()

        counts = settle(redis_server, producer.ids, 60)
        fig = figures("supervise + HUP", producer, runs, counts, began, ended)
        check(fig, producer.ids, runs, log())

        sup.send_signal(signal.SIGTERM)
        try:
            code = sup.wait(60)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"supervise still running 60s after TERM:\n{log()}") from None
        assert code == 0, log()
        wait_for(lambda: not project.processes(), 10, "no process left after TERM")
    finally:
        producer.done.set()
        producer.join(30)
        if sup.poll() is None:  # not yet reaped: its pid (= its group) is still ours
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(sup.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                sup.wait(10)
        listener.close()
