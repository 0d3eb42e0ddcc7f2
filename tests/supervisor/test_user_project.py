"""A user project with its own `worker.py`, `supervisor.py` and `pidfiles.py` beside the
tutorial's tasks.py: qmulti's modules are all under `qmulti`, so the node, the
controller and the client find the project's app and never the user's files (which
fail loudly if anything imports them)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_harness import Cluster

from helpers import wait_for

TASKS = """
from qmulti import Celery

app = Celery('tasks', broker='sqlite:///{db}')


@app.task
def add(x, y):
    return x + y
"""

SHADOW = "raise RuntimeError('the project\\'s own {name}.py was imported')\n"

CLIENT = "from tasks import add; print(add.delay(4, 4).get(timeout=60))"


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Cluster]:
    db = tmp_path / "q.sqlite3"
    (tmp_path / "tasks.py").write_text(TASKS.format(db=db))
    for name in ("worker", "supervisor", "pidfiles"):
        (tmp_path / f"{name}.py").write_text(SHADOW.format(name=name))
    cluster = Cluster(tmp_path, uuid.uuid4().hex, db)
    try:
        yield cluster
    finally:
        cluster.kill_all()


def client(project: Cluster) -> subprocess.CompletedProcess[str]:
    """The tutorial's client, run in the project directory (its worker.py on sys.path)."""
    return subprocess.run([sys.executable, "-c", CLIENT], cwd=project.path, env=project.env(),
                          capture_output=True, text=True, timeout=90)


def test_the_shadowing_files_do_shadow(project: Cluster) -> None:
    # the control: in this directory `import worker` is the user's file
    proc = subprocess.run([sys.executable, "-c", "import worker"], cwd=project.path,
                          capture_output=True, text=True, timeout=30)
    assert "the project's own worker.py was imported" in proc.stderr


@pytest.mark.timeout(120)
def test_qworker_runs_the_project_app(project: Cluster) -> None:
    with open(project.path / "node.log", "wb") as log:
        node = subprocess.Popen([sys.executable, "-m", "qmulti", "-A", "tasks", "-n", "w0@%h",
                                 "-c", "1"], cwd=project.path, env=project.env(),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        done = client(project)
        assert done.returncode == 0, done.stderr + (project.path / "node.log").read_text()
        assert done.stdout.split() == ["8"]
    finally:
        node.terminate()
        node.wait(timeout=60)
    log_text = (project.path / "node.log").read_text()
    assert node.returncode == 0, log_text
    assert "own" not in log_text


@pytest.mark.timeout(180)
def test_qmulti_start_finds_the_project_app(project: Cluster) -> None:
    start = project.qmulti("start", "w1", "-A", "tasks", "-c", "1")
    assert start.returncode == 0, start.stdout + start.stderr
    assert "w1@" in start.stdout and ": OK (pid" in start.stdout
    done = client(project)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["8"]
    stop = project.qmulti("stopwait", "w1", "--timeout", "60")
    assert stop.returncode == 0, stop.stdout + stop.stderr
    wait_for(lambda: not project.processes(), 30, "the node to exit")
    assert not project.pidfile("w1").exists()
