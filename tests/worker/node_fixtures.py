"""Real `python -m qmulti` processes for the node tests: a project in a tmp dir, a node
started with its own NOTIFY_SOCKET (readiness is READY=1, never a sleep), and cleanup
that kills the node's whole process group whatever the test did."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

from helpers import wait_for

TASKS = '''
import os, time
from qmulti import App

app = App('tasks', broker='sqlite:///q.sqlite3')
app.conf.update(worker_heartbeat_interval=0.5, worker_heartbeat_expiry=2.0)
{extra_config}

@app.task
def add(a, b):
    return a + b

@app.task
def pid():
    return os.getpid()

@app.task
def slow(seconds, value=None):
    time.sleep(seconds)
    return value if value is not None else os.getpid()

@app.task
def boom(msg):
    raise ValueError(msg)
{extra_tasks}
'''


def write_tasks(root: Path, extra_config: str = "", extra_tasks: str = "") -> None:
    (root / "tasks.py").write_text(TASKS.format(extra_config=textwrap.dedent(extra_config),
                                                extra_tasks=textwrap.dedent(extra_tasks)))


def producer(root: Path, **conf: Any) -> Any:
    """An App in the test process on the node's store (absolute path: the test's cwd is
    elsewhere), sending tasks by name so that no project module is imported here."""
    from qmulti import App

    app = App("producer", broker=f"sqlite:///{root / 'q.sqlite3'}", **conf)
    return app


class NodeProcess:
    """One `python -m qmulti` with stderr in a file and a private notify socket."""

    def __init__(self, root: Path, *args: str, name: str = "w1@%h", env: dict | None = None,
                 notify: bool = True, command: list[str] | None = None) -> None:
        self.root = root
        self.args = ["-n", name, *args] if name else list(args)
        self.stderr_path = root / f"stderr-{uuid.uuid4().hex[:8]}.txt"
        self.messages: list[str] = []
        self.sock: socket.socket | None = None
        environ = dict(os.environ)
        environ.pop("NOTIFY_SOCKET", None)
        if notify:
            address = f"\0qmulti-test-{uuid.uuid4().hex}"
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.sock.bind(address)
            environ["NOTIFY_SOCKET"] = "@" + address[1:]
        environ.update(env or {})
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [*(command or [sys.executable, "-m", "qmulti"]), *self.args], cwd=root,
                env=environ,
                stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True)
        self.pgid = self.proc.pid

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def _drain(self, timeout: float) -> None:
        assert self.sock is not None
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (TimeoutError, BlockingIOError):
            return
        self.messages.extend(data.decode().splitlines())

    def wait_message(self, wanted: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while wanted not in self.messages:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {wanted} after {timeout}s; notify: {self.messages}; "
                                     f"stderr:\n{self.stderr()}")
            # A failed node is reported at once; a launcher that exited 0 has detached,
            # and its daemon may still be on its way to the message: keep reading.
            if self.proc.poll() not in (None, 0) and wanted not in self.messages:
                self._drain(0.05)
                if wanted in self.messages:
                    break
                raise AssertionError(f"node exited {self.proc.returncode} before {wanted}; "
                                     f"stderr:\n{self.stderr()}")
            self._drain(0.2)

    def wait_ready(self, timeout: float = 30.0) -> NodeProcess:
        self.wait_message("READY=1", timeout)
        return self

    def send(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"node still running after {timeout}s; stderr:\n"
                                 f"{self.stderr()}") from None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        self.send(sig)
        return self.wait(timeout)

    def children(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return []

    def titles(self) -> list[str]:
        out = []
        for child in self.children():
            try:
                out.append(" ".join(child.cmdline()))
            except psutil.Error:
                pass
        return out

    def busy_children(self) -> list[psutil.Process]:
        busy = []
        for child in self.children():
            try:
                if " busy " in " ".join(child.cmdline()):
                    busy.append(child)
            except psutil.Error:
                pass
        return busy

    def close(self) -> None:
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass
        if self.sock is not None:
            self.sock.close()

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_qworker(root: Path, *args: str, timeout: float = 30.0,
                env: dict | None = None) -> subprocess.CompletedProcess[str]:
    """A node expected to fail at start: its exit code and output."""
    environ = dict(os.environ)
    environ.pop("NOTIFY_SOCKET", None)
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "qmulti", *args], cwd=root, env=environ,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def results(app: Any, ids: list[str], timeout: float = 20.0) -> list[Any]:
    return [app.AsyncResult(i).get(timeout=timeout) for i in ids]


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


__all__ = ["NodeProcess", "producer", "results", "run_qworker", "wait_for", "write_tasks",
           "group_alive"]
