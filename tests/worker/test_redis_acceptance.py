"""Issue 5's acceptance, on Redis, with real processes.

Each test starts its own redis-server (free port, private AOF dir) and real
`python -m qmulti` nodes (process group killed at the end). Every task run is recorded
by the task itself, one line appended to `runs/<task id>` (O_APPEND: a whole line a
run, whichever process writes it), so "ran once" and "ran twice" are read from disk.

Most tests set a short heartbeat expiry (2 s) so that recovery after a KILL is quick;
the long-task test keeps the issue's own figures (default 10 s expiry, a 14 s task, an
eta 20 s ahead), since what it proves is that time alone never redelivers.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from node_fixtures import NodeProcess, group_alive, run_qworker
from test_qworker_tutorial import CELERY_PY, CLIENT, CONFIG, TASKS_PY

from helpers import free_port, wait_for
from redis_server import RedisServer

TASKS = '''
import os, signal, time
from qmulti import App

app = App('tasks', broker={url!r})
app.conf.update(worker_heartbeat_interval=0.5, worker_heartbeat_expiry={expiry},
                broker_max_deliveries=3)
RUNS = {runs!r}


def _record(task_id):
    fd = os.open(os.path.join(RUNS, task_id), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{{os.getpid()}} {{time.time()!r}}\\n".encode())
    finally:
        os.close(fd)


@app.task(bind=True)
def work(self, seconds, value):
    _record(self.request.id)
    time.sleep(seconds)
    return value


@app.task(bind=True)
def die(self):
    _record(self.request.id)
    os.kill(os.getpid(), signal.SIGKILL)
'''


class Project:
    """A tasks module on a private Redis, its run records, and a producer app."""

    def __init__(self, root: Path, url: str, expiry: float = 2.0) -> None:
        self.root, self.url = root, url
        self.runs = root / "runs"
        self.runs.mkdir()
        (root / "tasks.py").write_text(TASKS.format(url=url, expiry=expiry,
                                                    runs=str(self.runs)))
        from qmulti import App

        self.app = App("producer", broker=url)
        self.nodes: list[NodeProcess] = []

    def node(self, name: str, *args: str, env: dict[str, str] | None = None,
             ready: bool = True) -> NodeProcess:
        node = NodeProcess(self.root, "-A", "tasks", "-l", "info", *args, name=name, env=env)
        self.nodes.append(node)
        return node.wait_ready() if ready else node

    def send(self, task: str, *args: Any, **options: Any) -> str:
        return self.app.send_task(f"tasks.{task}", args, check=False, **options).id

    def runs_of(self, task_id: str) -> list[tuple[int, float]]:
        path = self.runs / task_id
        if not path.exists():
            return []
        return [(int(p), float(t)) for p, t in
                (line.split() for line in path.read_text().splitlines())]

    def all_runs(self) -> dict[str, list[tuple[int, float]]]:
        return {name: self.runs_of(name) for name in os.listdir(self.runs)}

    def stats(self) -> Any:
        return self.app.broker.stats()

    def close(self) -> None:
        for node in self.nodes:
            node.close()
        self.app.close()


@pytest.fixture
def project(tmp_path: Path, redis_server: RedisServer) -> Iterator[Project]:
    p = Project(tmp_path, redis_server.url)
    try:
        yield p
    finally:
        p.close()


def results(project: Project, ids: list[str], timeout: float = 60.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    return [project.app.AsyncResult(i).get(timeout=max(1.0, deadline - time.monotonic()))
            for i in ids]


# -- the tutorial --------------------------------------------------------------------------
@pytest.mark.timeout(120)
def test_tutorial_layout_on_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    (tmp_path / "config.py").write_text(
        CONFIG.replace("sqlite:///queue.sqlite3", redis_server.url))
    pkg = tmp_path / "mycelery"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "celery.py").write_text(CELERY_PY)
    (pkg / "tasks.py").write_text(TASKS_PY)
    with NodeProcess(tmp_path, "-A", "mycelery", "-l", "info", "-c", "2", name="") as node:
        node.wait_ready()
        client = subprocess.run([sys.executable, "-c", CLIENT], cwd=tmp_path,
                                capture_output=True, text=True, timeout=90)
        assert client.returncode == 0, client.stderr
        out = json.loads(client.stdout)
        assert (out["local"], out["one"], out["all_correct"]) == (10, 8, True)
        assert out["exc_type"] == "ZeroDivisionError" and out["failed"] is True
        assert "return a / b" in out["traceback"] and out.get("reraised") is True
        lines = (tmp_path / "failures.log").read_text().splitlines()
        assert any(line.startswith(out["failure_id"] + " ZeroDivisionError") for line in lines)
        assert node.stop(signal.SIGTERM) == 0
    assert not list(tmp_path.glob("*.sqlite3"))  # the Redis URL was used, not the default


# -- delivery guarantees -------------------------------------------------------------------
@pytest.mark.timeout(150)
def test_killed_node_tasks_finish_on_a_new_node(project: Project) -> None:
    a = project.node("a@%h", "-c", "2")
    ids = [project.send("work", 0.2, i) for i in range(100)]
    wait_for(lambda: len(project.all_runs()) >= 10, 30, "10 tasks started on node a")
    a_children = {c.pid for c in a.children()}
    os.killpg(a.pgid, signal.SIGKILL)
    a.wait(10)
    wait_for(lambda: not group_alive(a.pgid), 10, "node a's group gone")
    ran_in_a = {tid for tid, runs in project.all_runs().items() if runs}
    project.node("b@%h", "-c", "2")
    assert results(project, ids, 90) == list(range(100))
    runs = project.all_runs()
    assert set(runs) == set(ids)
    twice = {tid: r for tid, r in runs.items() if len(r) > 1}
    # Only what a's two children were running when killed ran again; prefetched but
    # unstarted messages went back without counting as a run.
    assert len(twice) <= 2, twice
    for tid, r in twice.items():
        assert tid in ran_in_a and len(r) == 2 and r[0][0] in a_children, (tid, r)
    stats = project.stats()
    assert stats.leased == 0 and stats.dead == 0


@pytest.mark.timeout(120)
def test_long_task_and_eta_task_run_once_with_two_nodes(tmp_path: Path,
                                                       redis_server: RedisServer) -> None:
    """The issue's figures: with the default 10 s heartbeat expiry, a 14 s task and an
    eta 20 s ahead each run once, though a second node sits idle all along."""
    project = Project(tmp_path, redis_server.url, expiry=10.0)
    try:
        project.node("a@%h", "-c", "2")
        project.node("b@%h", "-c", "2")
        long_id = project.send("work", 14.0, "long")
        eta_at = time.time() + 20.0
        eta_id = project.send("work", 0.0, "eta", eta=eta_at)
        assert project.stats().scheduled == 1
        assert results(project, [eta_id, long_id], 60) == ["eta", "long"]
        long_runs, eta_runs = project.runs_of(long_id), project.runs_of(eta_id)
        assert len(long_runs) == 1, long_runs
        assert len(eta_runs) == 1 and eta_runs[0][1] >= eta_at - 0.05, (eta_runs, eta_at)
        assert eta_runs[0][1] < eta_at + 5.0  # at its time, not an expiry later
        # The 14 s run outlived the expiry by 4 s and the eta waited twice the expiry:
        # nothing was handed out again, and nothing waits to be.
        stats = project.stats()
        assert stats.leased == 0 and stats.scheduled == 0 and sum(stats.queues.values()) == 0
        assert all(n.proc.poll() is None for n in project.nodes)
    finally:
        project.close()


# -- outages ------------------------------------------------------------------------------
@pytest.mark.timeout(180)
def test_redis_restart_during_500_tasks(project: Project, redis_server: RedisServer) -> None:
    nodes = [project.node("a@%h", "-c", "2"), project.node("b@%h", "-c", "2")]
    pids = [n.pid for n in nodes]
    ids = [project.send("work", 0.01, i) for i in range(500)]
    wait_for(lambda: len(project.all_runs()) >= 50, 30, "50 tasks started")
    redis_server.restart(down_for=5.0)  # the outage
    assert results(project, ids, 120) == list(range(500))
    assert [n.pid for n in nodes] == pids
    assert all(n.proc.poll() is None for n in nodes), [n.stderr() for n in nodes]
    assert set(project.all_runs()) == set(ids)
    for n in nodes:
        assert "Traceback" not in n.stderr(), n.stderr()


@pytest.mark.timeout(90)
def test_message_that_kills_its_child_is_dead_lettered(project: Project) -> None:
    node = project.node("a@%h", "-c", "1")
    tid = project.send("die")
    wait_for(lambda: project.stats().dead == 1, 60, "the message in the dead-letter queue")
    assert len(project.runs_of(tid)) == 3  # broker_max_deliveries=3
    ok = project.send("work", 0.0, "after")
    assert results(project, [ok], 30) == ["after"]
    assert node.proc.poll() is None
    env = dict(os.environ, QMULTI_BROKER_URL=project.url)
    status = subprocess.run([sys.executable, "-m", "qmulti.supervisor", "status", "a", "--json"],
                            cwd=project.root, env=env, capture_output=True, text=True,
                            timeout=30)
    assert json.loads(status.stdout)["broker"]["dead"] == 1, status.stderr
    table = subprocess.run([sys.executable, "-m", "qmulti.supervisor", "status", "a"],
                           cwd=project.root, env=env, capture_output=True, text=True,
                           timeout=30)
    assert "dead-letter: 1" in table.stdout, table.stderr


# -- bad input ----------------------------------------------------------------------------
@pytest.mark.timeout(90)
def test_unreachable_redis_at_start(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    project = Project(tmp_path, url)
    try:
        node = project.node("a@%h", "-c", "1", ready=False)
        wait_for(lambda: "Cannot reach the broker" in node.stderr(), 20,
                 "a log line naming the broker")
        time.sleep(4)  # the node must still be up, retrying, after a while
        assert node.proc.poll() is None, node.stderr()
        assert "READY=1" not in node.messages
        lines = [line for line in node.stderr().splitlines() if "Cannot reach" in line]
        # One clear line naming the host; the retries that follow (backing off) are
        # logged at debug level, so the log does not fill up while the broker is away.
        assert len(lines) == 1, lines
        assert all(url in line and "retrying" in line for line in lines), lines
        assert "Traceback" not in node.stderr()
    finally:
        project.close()
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    pidfile = tmp_path / "w9.pid"
    try:
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "qmulti.supervisor", "start", "w9", "-A",
                               "tasks", "--timeout", "3"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1, (proc.stdout, proc.stderr)
        assert re.search(r"w9@\S+: FAILED", proc.stdout + proc.stderr), proc.stdout
        assert time.monotonic() - started < 30
    finally:
        _kill_pidfile_node(pidfile)


def _kill_pidfile_node(pidfile: Path) -> None:
    """Whatever `qmulti start` left running (the node keeps retrying): kill its group."""
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        proc = psutil.Process(pid)
        if "worker" not in " ".join(proc.cmdline()) and "qworker" not in proc.name():
            return
        os.killpg(os.getpgid(pid), signal.SIGKILL)
        psutil.wait_procs([proc], timeout=10)
    except (psutil.Error, ProcessLookupError):
        pass


@pytest.mark.timeout(60)
def test_malformed_redis_url_exits_78(project: Project) -> None:
    proc = run_qworker(project.root, "-A", "tasks",
                       env={"QMULTI_BROKER_URL": "redis://:pw@127.0.0.1:notaport/0"})
    assert proc.returncode == 78, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert ":pw@" not in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.timeout(60)
def test_wrong_password_exits_78(tmp_path: Path) -> None:
    with RedisServer(tmp_path, password="right-secret") as server:
        (tmp_path / "tasks.py").write_text(textwrap.dedent("""
            from qmulti import App
            app = App('tasks')
        """))
        wrong = server.url.replace("right-secret", "wrong-secret")
        proc = run_qworker(tmp_path, "-A", "tasks", env={"QMULTI_BROKER_URL": wrong})
        assert proc.returncode == 78, proc.stderr
        err = proc.stderr.strip()
        assert len(err.splitlines()) == 1, err
        assert "127.0.0.1" in err and "secret" not in err and "Traceback" not in err


@pytest.mark.timeout(60)
def test_malformed_message_is_dead_lettered(project: Project) -> None:
    node = project.node("a@%h", "-c", "1")
    project.app.broker.publish("celery", "garbage-1", b"\x00not an envelope")
    wait_for(lambda: project.stats().dead == 1, 30, "the malformed message dead-lettered")
    [letter] = project.app.broker.dead_letters()
    assert letter.mid == "garbage-1" and letter.reason
    assert results(project, [project.send("work", 0.0, "still")], 30) == ["still"]
    assert node.proc.poll() is None
