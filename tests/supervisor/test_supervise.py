"""`qmulti supervise` with real nodes, real signals and a notify socket as systemd gives one.

Each test binds its own datagram socket and passes it as NOTIFY_SOCKET, exactly as
systemd does for a Type=notify unit, so readiness is waited for the way systemd
waits for it (READY=1), not guessed from log lines.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import pytest
from cluster_harness import Cluster

from helpers import wait_for
from qmulti.pidfiles import probe
from qmulti.supervisor.states import ALLOWED, IllegalTransition, NodeState, change_state
from qmulti.system.backoff import Backoff

S = NodeState


class Supervise:
    """A running `qmulti supervise` and the socket it reports to."""

    def __init__(self, cluster: Cluster, *args: str, env: dict[str, str] | None = None,
                 launcher: tuple[str, ...] = ()) -> None:
        self.cluster = cluster
        # Unix socket paths are short (108 bytes): not under pytest's long tmp_path.
        self.sockdir = tempfile.mkdtemp(prefix="qsv-")
        path = os.path.join(self.sockdir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setblocking(False)
        self.messages: list[dict[str, str]] = []
        self.errpath = cluster.path / "supervise.err"
        full_env = dict(cluster.env(), NOTIFY_SOCKET=path, **(env or {}))
        with open(self.errpath, "wb") as err:
            self.proc = subprocess.Popen(
                [*launcher, sys.executable, "-m", "qmulti.supervisor", "supervise", *args],
                cwd=cluster.path, env=full_env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=err)

    def receive(self) -> list[dict[str, str]]:
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return self.messages
            fields = dict(line.partition("=")[::2] for line in data.decode().splitlines())
            self.messages.append(fields)

    def got(self, key: str, value: str = "1", after: int = 0) -> int | None:
        """Index of the first message at or after `after` holding KEY=value."""
        for index, fields in enumerate(self.receive()):
            if index >= after and fields.get(key) == value:
                return index
        return None

    def wait_message(self, key: str, value: str = "1", timeout: float = 30,
                     after: int = 0) -> int:
        found = wait_for(lambda: (i := self.got(key, value, after)) is not None and i + 1,
                         timeout, f"{key}={value} from supervise; log:\n{self.log()}")
        return found - 1

    def log(self) -> str:
        return self.errpath.read_text(errors="replace")

    def pid(self, name: str) -> int | None:
        status = probe(str(self.cluster.pidfile(name)))
        return status.pid if status.state == "running" else None

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"supervise still running after {timeout}s; log:\n"
                                 f"{self.log()}") from None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.sock.close()
        shutil.rmtree(self.sockdir, ignore_errors=True)


@pytest.fixture
def supervise(cluster: Cluster) -> Iterator[list[Supervise]]:
    """Supervise runs started by a test; killed (with every node) afterwards."""
    runs: list[Supervise] = []
    try:
        yield runs
    finally:
        for run in runs:
            run.close()


def start(runs: list[Supervise], cluster: Cluster, *args: str, **kw: dict[str, str]) -> Supervise:
    run = Supervise(cluster, *args, **kw)
    runs.append(run)
    return run


ARGS = ["-A", "tasks", "-c", "1", "-l", "info"]


# -- pure parts ------------------------------------------------------------------


def test_backoff_doubles_to_a_cap_and_resets_after_good_running() -> None:
    backoff = Backoff()
    assert [backoff.next_delay(0.5) for _ in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff.next_delay(59.0) == 60
    assert backoff.next_delay(60.0) == 1  # ran a minute: a new incident
    assert backoff.next_delay(0.1) == 2


def test_every_state_has_its_transitions_and_one_writer() -> None:
    assert set(ALLOWED) == set(NodeState)

    class Holder:
        state = S.STOPPED

    holder = Holder()
    for new in (S.STARTING, S.RUNNING, S.EXITED, S.STARTING, S.FATAL, S.STARTING, S.STOPPING,
                S.STOPPED):
        change_state(holder, new)
    assert holder.state == S.STOPPED
    with pytest.raises(IllegalTransition):
        change_state(holder, S.RUNNING)  # never READY without being started
    holder.state = S.FATAL
    with pytest.raises(IllegalTransition):
        change_state(holder, S.BACKOFF)  # FATAL is not retried by backoff


# -- real processes -------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_killed_node_is_back_and_consuming(cluster: Cluster, supervise: list[Supervise]) -> None:
    run = start(supervise, cluster, "w1", "w2", *ARGS, "--timeout", "20",
                env={"WATCHDOG_USEC": "400000"})
    ready = run.wait_message("READY")
    assert run.messages[ready].get("MAINPID") == str(run.proc.pid)
    assert "w1@" in run.messages[ready]["STATUS"] and "RUNNING" in run.messages[ready]["STATUS"]
    old = run.pid("w1")
    assert old and run.pid("w2")
    other = run.pid("w2")

    killed_at = time.monotonic()
    os.kill(old, signal.SIGKILL)
    new = wait_for(lambda: (p := run.pid("w1")) not in (None, old) and p, 10, "w1 back")
    wait_for(lambda: re.search(rf"w1@\S+ RUNNING \(pid {new}\)", run.log()), 10,
             f"w1 RUNNING (pid {new}); log:\n{run.log()}")
    back_after = time.monotonic() - killed_at
    assert back_after < 3.5, f"w1 took {back_after:.2f}s to consume again:\n{run.log()}"
    assert re.search(rf"w1@\S+ EXITED \(pid {old}\): killed by signal KILL", run.log())
    assert run.pid("w2") == other  # the other node was left alone

    results = [cluster.app().send_task("tasks.add", (i, 1), check=False) for i in range(4)]
    assert [r.get(timeout=30) for r in results] == [1, 2, 3, 4]
    assert run.got("WATCHDOG") is not None

    run.proc.send_signal(signal.SIGTERM)
    assert run.wait_exit(30) == 0, run.log()
    wait_for(lambda: not cluster.processes(), 10, "no process left")


@pytest.mark.timeout(60)
def test_bad_app_is_fatal_after_one_try_and_supervise_exits_78(
        cluster: Cluster, supervise: list[Supervise]) -> None:
    began = time.monotonic()
    run = start(supervise, cluster, "w1", "w2", "-A", "no_such_module", "-c", "1")
    assert run.wait_exit(10) == 78, run.log()
    assert time.monotonic() - began < 10
    log = run.log()
    for name in ("w1", "w2"):
        assert len(re.findall(rf"{name}@\S+ STARTING", log)) == 1, log  # one try
        fatal = re.search(rf"{name}@\S+ FATAL \(pid \d+\): exited with code 78.*no_such_module",
                          log)
        assert fatal, log
    assert "every node is FATAL: exiting 78" in log
    assert run.got("READY") is None
    assert not cluster.processes()
    assert not any(cluster.pidfile(n).exists() for n in ("w1", "w2"))


@pytest.mark.timeout(90)
def test_term_lets_running_tasks_finish_and_speaks_like_systemd_expects(
        cluster: Cluster, supervise: list[Supervise]) -> None:
    run = start(supervise, cluster, "w1", "w2", "-A", "tasks", "-c", "2", "-l", "info",
                "--prefetch-multiplier", "1")
    run.wait_message("READY")
    results = [cluster.app().send_task("tasks.sleep", (1.5,), check=False) for _ in range(4)]
    wait_for(lambda: all(r.state == "STARTED" for r in results), 30, "4 tasks running")

    run.proc.send_signal(signal.SIGTERM)
    stopping = run.wait_message("STOPPING", timeout=10)
    assert stopping > 0  # after READY=1
    assert run.wait_exit(60) == 0, run.log()
    assert [r.get(timeout=5) for r in results] == [1.5] * 4  # every one finished and stored
    log = run.log()
    assert len(re.findall(r"w\d@\S+ STOPPED \(pid \d+\): exited with code 0", log)) == 2, log
    assert "stopped: every node finished its tasks" in log
    assert not any(cluster.pidfile(n).exists() for n in ("w1", "w2"))
    wait_for(lambda: not cluster.processes(), 10, "no process left")


@pytest.mark.timeout(120)
def test_hup_is_a_rolling_restart_that_keeps_a_node_up(
        cluster: Cluster, supervise: list[Supervise]) -> None:
    names = ["w1", "w2"]
    run = start(supervise, cluster, *names, *ARGS)
    first_ready = run.wait_message("READY")
    old = {n: run.pid(n) for n in names}
    assert all(old.values())

    run.proc.send_signal(signal.SIGHUP)
    samples = 0
    deadline = time.monotonic() + 60
    while True:
        # One probe takes milliseconds, and a node comes up and the next one goes down
        # within them; probing forth and back, a node up at any instant of the sample
        # is seen (each node is stopped only once in a rolling restart).
        states = [(n, probe(str(cluster.pidfile(n))).state) for n in [*names, *names[::-1]]]
        samples += 1
        assert any(state == "running" for _, state in states), \
            f"no node up at sample {samples}: {states}\n{run.log()}"
        reloading = run.got("RELOADING", after=first_ready + 1)
        if reloading is not None and run.got("READY", after=reloading + 1) is not None:
            break
        assert time.monotonic() < deadline, f"no READY=1 after RELOADING=1:\n{run.log()}"
        time.sleep(0.02)  # sampling interval, not synchronisation
    new = {n: run.pid(n) for n in names}
    assert all(new[n] and new[n] != old[n] for n in names), (old, new, run.log())
    assert "rolling restart done" in run.log()
    result = cluster.app().send_task("tasks.add", (2, 2), check=False)
    assert result.get(timeout=30) == 4

    run.proc.send_signal(signal.SIGTERM)
    assert run.wait_exit(30) == 0, run.log()
    wait_for(lambda: not cluster.processes(), 10, "no process left")


@pytest.mark.timeout(90)
def test_term_with_timeout_escalates_to_quit_and_says_so(
        cluster: Cluster, supervise: list[Supervise]) -> None:
    run = start(supervise, cluster, "w1", *ARGS, "--timeout", "1")
    run.wait_message("READY")
    result = cluster.app().send_task("tasks.sleep", (60,), check=False)
    wait_for(lambda: result.state == "STARTED", 30, "the long task to start")

    run.proc.send_signal(signal.SIGTERM)
    assert run.wait_exit(30) == 1, run.log()  # not a clean stop: the task was given back
    log = run.log()
    assert re.search(r"w1@\S+ still running after 1s: sent QUIT", log), log
    assert re.search(r"w1@\S+ STOPPED \(pid \d+\): .*after QUIT", log), log
    assert "not cleanly: w1@" in log
    assert result.state != "SUCCESS"
    assert not cluster.pidfile("w1").exists()
    wait_for(lambda: not cluster.processes(), 10, "no process left")


@pytest.mark.timeout(90)
def test_one_bad_node_is_fatal_while_the_others_serve(
        cluster: Cluster, supervise: list[Supervise]) -> None:
    run = start(supervise, cluster, "w1", "w2", *ARGS, "-A:2", "no_such_module")
    ready = run.wait_message("READY")  # every node consumes or has given up for good
    assert re.search(r"w1@\S+ RUNNING, w2@\S+ FATAL", run.messages[ready]["STATUS"])
    assert run.proc.poll() is None  # one good node: supervise stays
    assert cluster.app().send_task("tasks.add", (1, 1), check=False).get(timeout=30) == 2
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait_exit(30) == 0, run.log()


# -- start-up edges (issue 11, items 4 and 5) ------------------------------------------


def _catches_term(pid: int, field: str = "SigCgt") -> bool:
    """Whether the process has a TERM handler yet (SigCgt in /proc/PID/status), or, with
    field="SigBlk", TERM blocked."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            caught = next(line for line in fh if line.startswith(f"{field}:"))
    except (OSError, StopIteration):
        return False
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


def _no_signal_deaths(log: str) -> None:
    assert "not cleanly" not in log, log
    deaths = re.findall(r"(\S+@\S+) (?:STOPPED|EXITED|BACKOFF) \(pid \d+\): killed by signal (\w+)",
                        log)
    assert all(sig == "KILL" for _, sig in deaths), log  # only the KILL the test sent


@pytest.mark.timeout(240)
@pytest.mark.parametrize("delay", [0.0, 0.01, 0.05, 0.1])
def test_term_just_after_a_node_restart_is_a_clean_stop(
        cluster: Cluster, supervise: list[Supervise], delay: float) -> None:
    run = start(supervise, cluster, "w1", "w2", *ARGS)
    run.wait_message("READY")
    old = run.pid("w1")
    assert old
    os.kill(old, signal.SIGKILL)
    pattern = re.compile(r"w1@\S+ STARTING \(pid (\d+)\)")
    wait_for(lambda: len(pattern.findall(run.log())) >= 2, 20, f"w1 respawned:\n{run.log()}")
    time.sleep(delay)  # the instant under test, not synchronisation
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait_exit(60) == 0, run.log()
    log = run.log()
    assert re.search(r"w1@\S+ EXITED \(pid \d+\): killed by signal KILL", log), log
    _no_signal_deaths(log)
    assert "stopped: every node finished its tasks" in log
    wait_for(lambda: not cluster.processes(), 10, "no process left")


@pytest.mark.timeout(240)
@pytest.mark.parametrize("delay", [0.0, 0.01, 0.05, 0.1])
def test_term_just_after_supervise_starts_is_a_clean_stop(
        cluster: Cluster, supervise: list[Supervise], delay: float) -> None:
    """From the moment its entry point runs (before the heavy imports, before any node
    exists, while nodes start): exit 0, no output lost, no node killed by the TERM."""
    run = start(supervise, cluster, "w1", "w2", *ARGS)
    wait_for(lambda: _catches_term(run.proc.pid) or run.proc.poll() is not None, 20,
             "supervise's entry point to run")
    time.sleep(delay)  # the instant under test, not synchronisation
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait_exit(60) == 0, run.log()
    log = run.log()
    _no_signal_deaths(log)
    assert "stopped" in log
    wait_for(lambda: not cluster.processes(), 10, "no process left")


@pytest.mark.timeout(120)
def test_nodes_die_with_a_killed_supervise_and_a_new_one_runs_them(
        cluster: Cluster, supervise: list[Supervise]) -> None:
    import psutil

    run = start(supervise, cluster, "w1", "w2", *ARGS)
    run.wait_message("READY")
    pids = [run.pid("w1"), run.pid("w2")]
    assert all(pids)
    kids = [c.pid for p in pids for c in psutil.Process(p).children()]
    run.proc.kill()
    killed_at = time.monotonic()
    run.proc.wait()
    wait_for(lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status()
                             != psutil.STATUS_ZOMBIE for p in pids + kids), 10,
             "the orphaned nodes to stop")
    gone_after = time.monotonic() - killed_at
    assert gone_after < 2.0, f"orphans lived {gone_after:.2f}s after supervise's KILL"

    again = start(supervise, cluster, "w1", "w2", *ARGS)
    again.wait_message("READY", timeout=30)
    assert cluster.app().send_task("tasks.add", (2, 3), check=False).get(timeout=30) == 5
    again.proc.send_signal(signal.SIGTERM)
    assert again.wait_exit(30) == 0, again.log()


@pytest.mark.timeout(120)
def test_supervise_refuses_nodes_already_running_in_one_line_each(
        cluster: Cluster, supervise: list[Supervise]) -> None:
    started = cluster.qmulti("start", "w1", "w2", *ARGS)
    assert started.returncode == 0, started.stdout + started.stderr
    began = time.monotonic()
    run = start(supervise, cluster, "w1", "w2", "w3", *ARGS)
    assert run.wait_exit(20) == 1, run.log()
    assert time.monotonic() - began < 10
    lines = run.log().splitlines()
    assert len(lines) == 2, lines
    for name, line in zip(("w1", "w2"), lines, strict=True):
        assert re.match(rf"qmulti supervise: {name}@\S+ is already running \(pid \d+", line)
    assert "Traceback" not in run.log()
    assert run.got("READY") is None
    assert cluster.qmulti("stopwait", "w1", "w2", *ARGS).returncode == 0
