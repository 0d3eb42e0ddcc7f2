"""Real nodes for the remote-control tests: a project in a tmp dir, nodes started in
their own UTS namespace (a hostname of their own: another "host") when the machine
allows it, or side by side on this host, and the `qmulti` command line.

Readiness is the feature under test itself: a node is up once it answers a ping."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from helpers import wait_for

TASKS = '''
import os, time
from qmulti import App

app = App('tasks', broker={url!r})
app.conf.update(worker_heartbeat_interval=0.5, worker_heartbeat_expiry=3.0,
                task_default_queue='default')

@app.task
def add(a, b):
    return a + b

@app.task
def slow(seconds, value=None):
    time.sleep(seconds)
    return value if value is not None else os.getpid()
'''


def write_project(root: Path, url: str) -> None:
    (root / "tasks.py").write_text(textwrap.dedent(TASKS.format(url=url)))


def producer(root: Path, url: str) -> Any:
    from qmulti import App

    return App("producer", broker=url, task_default_queue="default", set_as_current=False,
               worker_heartbeat_expiry=3.0)


def uts_unavailable() -> str | None:
    """Why UTS namespaces cannot be used here, or None."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return "no unshare(1) on this machine"
    probe = subprocess.run([unshare, "-u", "sh", "-c", "hostname qmulti-probe && hostname"],
                           capture_output=True, text=True, timeout=10)
    if probe.returncode != 0 or probe.stdout.strip() != "qmulti-probe":
        return f"UTS namespaces not permitted: {probe.stderr.strip() or probe.stdout.strip()}"
    return None


class Node:
    """One `qworker` process (`python -m qmulti`), maybe under `unshare -u` with its own
    hostname; its stderr goes to a file, its process group is killed at close."""

    def __init__(self, root: Path, name: str, *args: str, host: str | None = None) -> None:
        self.root = root
        self.name = name
        self.log = root / f"{name}.log"
        argv = [sys.executable, "-m", "qmulti", "-A", "tasks", "-n", name, "-l", "info",
                "--pidfile", str(root / f"{name}.pid"), *args]
        if host is not None:
            argv = ["unshare", "-u", "sh", "-c",
                    f"hostname {shlex.quote(host)} && exec {shlex.join(argv)}"]
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(argv, cwd=root, env=env, stdin=subprocess.DEVNULL,
                                         stdout=err, stderr=err, start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still running after {timeout}s:\n"
                                 f"{self.text()[-3000:]}") from None

    def close(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass


def wait_answering(app: Any, names: list[str], timeout: float = 60.0) -> None:
    """Until every named node answers a ping (it heartbeats and its loop runs)."""
    def all_answer() -> bool:
        got = app.control.inspect(destination=names, timeout=0.5).ping() or {}
        return set(got) == set(names)

    wait_for(all_answer, timeout, f"pongs from {names}", interval=0.1)


def qmulti(root: Path, *args: str, url: str | None = None, stdin: str | None = None,
           timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("QMULTI_BROKER_URL", None)
    if url is not None:
        env["QMULTI_BROKER_URL"] = url
    return subprocess.run([sys.executable, "-m", "qmulti.supervisor", *args], cwd=root,
                          env=env, capture_output=True, text=True, timeout=timeout,
                          input=stdin if stdin is not None else "")


def elapsed_since(start: float) -> float:
    return time.monotonic() - start
