"""What both contenders share: a work dir with a generated `tasks.py`, the producer
driver, and one node process started from it.

Subclasses (celery_side, qmulti_side) say only what differs: the task module's text,
the node's command line, how readiness is known, and how progress is read off the
broker. Everything timed runs through the same code on both sides.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

from bench import procs

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


class NodeFailed(RuntimeError):
    """A node exited or never became ready; the message carries its log tail."""


class Node:
    """One node (main process + pool children) in its own process group."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path,
                 notify: socket.socket | None) -> None:
        self.proc = proc
        self.log = log
        self.notify = notify
        self.ready_seen = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check(self) -> None:
        """Raise if the node has died: a stalled measurement should say why."""
        if self.proc.poll() is not None:
            raise NodeFailed(f"node exited with {self.proc.returncode}:\n{procs.tail(self.log)}")

    def wait_ready(self, timeout: float) -> None:
        """READY=1 on the node's own notify socket (qmulti); a no-op without one."""
        if self.notify is None or self.ready_seen:
            return
        deadline = time.monotonic() + timeout
        while not self.ready_seen:
            self.check()
            left = deadline - time.monotonic()
            if left <= 0:
                raise NodeFailed(f"no READY=1 within {timeout:.0f} s:\n{procs.tail(self.log)}")
            self.notify.settimeout(min(left, 0.2))
            try:
                data = self.notify.recv(4096)
            except TimeoutError:
                continue
            if b"READY=1" in data.split(b"\n"):
                self.ready_seen = True

    def rss(self) -> tuple[int, list[int]]:
        self.check()
        return procs.tree_rss(self.pid)

    def pss(self) -> int:
        return procs.tree_pss(self.pid)

    def stop(self) -> None:
        procs.stop_group(self.proc)
        if self.notify is not None:
            self.notify.close()


class Side:
    """One contender in one work dir. `name` labels the table's columns."""

    name = "?"

    def __init__(self, root: Path, run_id: str) -> None:
        self.dir = root / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.run_id = run_id
        self._nodes = 0

    # -- what subclasses define ---------------------------------------------------------
    def tasks_source(self, broker: str, backend: str | None) -> str:
        raise NotImplementedError

    def node_argv(self, concurrency: int) -> list[str]:
        raise NotImplementedError

    def uses_notify(self) -> bool:
        return False

    @staticmethod
    def finished(broker: redis.Redis, backend: redis.Redis, count: int, results: bool) -> int:
        """How many of `count` pre-enqueued tasks are complete, read off Redis."""
        raise NotImplementedError

    @staticmethod
    def stored(backend: redis.Redis) -> int:
        """How many results the backend holds (checked once a drain has finished)."""
        raise NotImplementedError

    def multi_argv(self, command: str, names: list[str]) -> list[str]:
        """The controller's command line (`celery multi` / `qmulti`) for three nodes."""
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------
    def write_tasks(self, broker: str, backend: str | None) -> None:
        (self.dir / "tasks.py").write_text(self.tasks_source(broker, backend))
        for stale in self.dir.glob("__pycache__"):
            for f in stale.iterdir():
                f.unlink()

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return procs.bench_env(self.run_id, extra)

    def driver(self, *args: str, timeout: float = 600.0) -> dict[str, Any]:
        """Run one producer measurement in a fresh process; its last line is JSON."""
        env = self.env({"PYTHONPATH": str(REPO)})
        log = self.dir / "driver.log"
        proc = procs.spawn([sys.executable, "-m", "bench.driver", *args], self.dir, env, log)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            procs.stop_group(proc, timeout=1)
            raise RuntimeError(f"{self.name} driver {args[0]} timed out after {timeout:.0f} s")\
                from None
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        log.unlink()
        # The figure is the last JSON line: a library may still log (a thread's warning
        # at exit, after a timed-out wait) once the driver has printed it.
        found = [ln for ln in lines if ln.startswith("{")]
        if code != 0 or not found:
            raise RuntimeError(f"{self.name} driver {args[0]} failed ({code}):\n"
                               + "\n".join(lines[-15:]))
        return json.loads(found[-1])  # type: ignore[no-any-return]

    def start_node(self, concurrency: int) -> Node:
        self._nodes += 1
        log = self.dir / f"node{self._nodes}.log"
        extra: dict[str, str] = {}
        sock: socket.socket | None = None
        if self.uses_notify():
            path = self.dir / f"notify{self._nodes}.sock"
            path.unlink(missing_ok=True)  # left by an earlier Side on this dir
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(str(path))
            extra["NOTIFY_SOCKET"] = str(path)
        proc = procs.spawn(self.node_argv(concurrency), self.dir, self.env(extra), log)
        return Node(proc, log, sock)
