"""A real cluster in a tmp directory: a tasks module on a SQLite broker, `qmulti` runs.

Used through the `cluster` fixture of tests/supervisor/conftest.py.

Every process the test starts inherits a unique QMULTI_TEST_TAG in its
environment, so the finalizer finds and kills all of them (nodes detach and
rename themselves, so neither parentage nor command lines would do), and the
tests can assert that nothing is left behind.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil

from helpers import processes_of

TASKS = '''
import os
import time

from qmulti import App

app = App("tasks", broker="sqlite:///{db}")


def _record(name):
    # O_APPEND: one whole line a run, whichever process writes it.
    fd = os.open({runs!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (name + "\\n").encode())
    finally:
        os.close(fd)


@app.task(name="tasks.add")
def add(x, y):
    return x + y


@app.task(name="tasks.sleep")
def sleep(seconds):
    time.sleep(seconds)
    return seconds


@app.task(name="tasks.tracked")
def tracked(n):
    _record(str(n))
    time.sleep(0.05)
    return n
'''


@dataclass
class Cluster:
    """Runs `qmulti` in `path` and knows every process it led to."""

    path: Path
    tag: str
    db: Path

    def env(self) -> dict[str, str]:
        env = dict(os.environ, QMULTI_TEST_TAG=self.tag)
        env.pop("NOTIFY_SOCKET", None)
        return env

    def qmulti(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "qmulti.supervisor", *args], cwd=self.path,
                              env=self.env(), capture_output=True, text=True, timeout=timeout)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "qmulti.supervisor", *args], cwd=self.path,
                                env=self.env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def processes(self) -> list[psutil.Process]:
        return processes_of(self.path, self.tag)

    def kill_all(self) -> None:
        procs = self.processes()
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(procs, timeout=10)

    def app(self):  # type: ignore[no-untyped-def]
        from qmulti import App

        return App("producer", broker=f"sqlite:///{self.db}")

    def pidfile(self, name: str) -> Path:
        return self.path / f"{name}.pid"


def make_cluster(tmp_path: Path) -> Cluster:
    db = tmp_path / "q.sqlite3"
    runs = tmp_path / "runs.log"
    (tmp_path / "tasks.py").write_text(textwrap.dedent(TASKS).format(db=db, runs=str(runs)))
    return Cluster(tmp_path, uuid.uuid4().hex, db)
