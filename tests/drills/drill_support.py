"""What the fault drills share: a tasks project on a private Redis, nodes run through
`qmulti` or `python -m qmulti`, and cleanup that finds every process a drill led to.

The drills prove the contract's promises with figures, so they need the same few things:
a tasks module whose runs leave a trace in a file (to count re-runs), a way to read
results straight from the store (not through a producer App that would add its own
retries), and a finalizer that kills whatever a drill started even when nodes have
detached and renamed themselves.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from helpers import processes_of

ROOT = Path(__file__).resolve().parents[2]

TASKS = '''
import os
import time

from qmulti import App

app = App("tasks"{broker})
app.conf.update(worker_heartbeat_interval={beat!r}, worker_heartbeat_expiry={expiry!r})
RUNS = {runs!r}


@app.task(name="tasks.add")
def add(x, y):
    return x + y


@app.task(name="tasks.tracked")
def tracked(n, seconds=0.0):
    # O_APPEND: one whole line a run, whichever process writes it.
    fd = os.open(RUNS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (str(n) + "\\n").encode())
    finally:
        os.close(fd)
    if seconds:
        time.sleep(seconds)
    return n


@app.task(name="tasks.stamped")
def stamped(n, seconds=0.0):
    # As tracked, with the wall-clock time the run began: "n time".
    fd = os.open(RUNS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, ("%s %.6f\\n" % (n, time.time())).encode())
    finally:
        os.close(fd)
    if seconds:
        time.sleep(seconds)
    return n


@app.task(name="tasks.boom")
def boom(msg):
    raise ValueError(msg)
'''


def write_tasks(root: Path, broker_url: str | None, beat: float = 0.5,
                expiry: float = 3.0) -> Path:
    """The project's tasks.py; `broker_url=None` leaves the URL to QMULTI_BROKER_URL."""
    runs = root / "runs.log"
    broker = "" if broker_url is None else f", broker={broker_url!r}"
    (root / "tasks.py").write_text(textwrap.dedent(TASKS).format(
        broker=broker, beat=beat, expiry=expiry, runs=str(runs)))
    return runs


def run_counts(runs: Path) -> Counter[str]:
    """How many times each tracked task body ran."""
    if not runs.exists():
        return Counter()
    return Counter(line for line in runs.read_text().splitlines() if line)


def run_starts(runs: Path) -> dict[str, list[float]]:
    """When each `stamped` task body began, every run of it, in order."""
    out: dict[str, list[float]] = {}
    if runs.exists():
        for line in runs.read_text().splitlines():
            n, _, at = line.partition(" ")
            if at:
                out.setdefault(n, []).append(float(at))
    return out


def result_doc(store: Any, task_id: str) -> dict[str, Any] | None:
    blob = store.get(task_id)
    return None if blob is None else json.loads(blob)


def statuses(store: Any, task_ids: list[str]) -> Counter[str]:
    out: Counter[str] = Counter()
    for task_id in task_ids:
        doc = result_doc(store, task_id)
        out["PENDING" if doc is None else str(doc.get("status"))] += 1
    return out


def envelope(task_id: str, task: str, args: list[Any], queue: str = "celery",
             **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"v": 1, "mid": uuid.uuid4().hex, "id": task_id, "task": task,
                           "ct": "json", "payload": [args, {}], "queue": queue,
                           "eta": None, "expires": None, "retries": 0}
    doc.update(extra)
    return doc


@dataclass
class Project:
    """A tmp project directory; every process a drill starts works in it or carries the
    tag, so `kill_all` finds them all (nodes detach and retitle themselves)."""

    path: Path
    tag: str

    @classmethod
    def make(cls, path: Path) -> Project:
        path.mkdir(parents=True, exist_ok=True)
        return cls(path, uuid.uuid4().hex)

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ, QMULTI_TEST_TAG=self.tag)
        for key in ("NOTIFY_SOCKET", "QMULTI_BROKER_URL", "QMULTI_RESULT_BACKEND"):
            env.pop(key, None)
        env.update(extra)
        return env

    def qmulti(self, *args: str, timeout: float = 90,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "qmulti.supervisor", *args], cwd=self.path,
                              env=env or self.env(), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def popen_qmulti(self, *args: str, env: dict[str, str] | None = None,
                     out: Path | None = None) -> subprocess.Popen[bytes]:
        sink = open(out or self.path / f"qmulti-{uuid.uuid4().hex[:6]}.out", "wb")  # noqa: SIM115
        with sink:
            return subprocess.Popen([sys.executable, "-m", "qmulti.supervisor", *args],
                                    cwd=self.path, env=env or self.env(), stdin=subprocess.DEVNULL,
                                    stdout=sink, stderr=sink, start_new_session=True)

    def processes(self) -> list[psutil.Process]:
        return processes_of(self.path, self.tag)

    def node_mains(self) -> dict[str, psutil.Process]:
        """Live node main processes by node name (from their titles)."""
        out = {}
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                words = proc.cmdline()
                title = " ".join(words)
                if title.startswith("qworker: ") and " main" in title:
                    out[title.split()[1]] = proc
        return out

    def kill_all(self) -> None:
        procs = self.processes()
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(procs, timeout=10)


class Node:
    """One foreground `python -m qmulti`, READY=1 read from its own notify socket.

    `prefix` runs it under another command (`ip netns exec NS`); its notify socket is then
    a file, since abstract socket names are private to a network namespace."""

    def __init__(self, project: Project, *args: str, env: dict[str, str] | None = None,
                 prefix: tuple[str, ...] = ()) -> None:
        self.out = project.path / f"node-{uuid.uuid4().hex[:6]}.log"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        environ = env or project.env()
        self.sock_dir: str | None = None
        if prefix:
            self.sock_dir = tempfile.mkdtemp(prefix="qmn", dir="/tmp")
            address = self.sock_dir + "/notify.sock"
            environ["NOTIFY_SOCKET"] = address
        else:
            address = f"\0qmulti-drill-{uuid.uuid4().hex}"
            environ["NOTIFY_SOCKET"] = "@" + address[1:]
        self.sock.bind(address)
        with open(self.out, "wb") as sink:
            self.proc = subprocess.Popen([*prefix, sys.executable, "-m", "qmulti", *args],
                                         cwd=project.path, env=environ,
                                         stdin=subprocess.DEVNULL, stdout=sink, stderr=sink,
                                         start_new_session=True)

    def log(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30.0) -> None:
        self.sock.settimeout(0.2)
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while "READY=1" not in seen:
            if self.proc.poll() is not None:
                raise AssertionError(f"node exited {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"node not ready after {timeout}s:\n{self.log()}")
            with contextlib.suppress(TimeoutError):
                seen += self.sock.recv(65536).decode().splitlines()

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self.sock.close()
        if self.sock_dir is not None:
            shutil.rmtree(self.sock_dir, ignore_errors=True)
