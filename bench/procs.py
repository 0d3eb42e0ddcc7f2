"""Starting and ending the processes a bench run owns, and nothing else.

Every process the bench starts inherits a marker environment variable unique to the
run. Daemons started by `celery multi` / `qmulti start` detach out of any process
group we could signal, and setproctitle rewrites their command lines, so the marker is
the one reliable way to find exactly our processes again at the end (and never
another helper's).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

MARKER = "QMULTI_BENCH_RUN"


def new_run_id() -> str:
    return uuid.uuid4().hex


def bench_env(run_id: str, extra: Mapping[str, str] | None = None,
              drop: Sequence[str] = ()) -> dict[str, str]:
    """The environment for a child process: ours, marked, minus anything that would
    leak into a node from the caller's shell (a stray NOTIFY_SOCKET, broker overrides)."""
    env = {k: v for k, v in os.environ.items() if k not in drop}
    for k in ("NOTIFY_SOCKET", "QMULTI_BROKER_URL", "QMULTI_RESULT_BACKEND"):
        env.pop(k, None)
    env[MARKER] = run_id
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


def spawn(argv: Sequence[str], cwd: Path, env: Mapping[str, str], log: Path,
          stdin: int | None = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """A process in its own session, so that Ctrl-C on the bench never reaches it
    half-way and it (with its pool children) can be ended as one group."""
    with open(log, "ab") as out:
        return subprocess.Popen(list(argv), cwd=cwd, env=dict(env), stdout=out,
                                stderr=subprocess.STDOUT, stdin=stdin,
                                start_new_session=True)


def stop_group(proc: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    """TERM to the main process only (a warm stop on both sides; Celery's children
    would die cold on a group TERM), then KILL whatever of the group is left."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def ours(run_id: str, root: Path) -> list[psutil.Process]:
    """Every live process of this run: it carries the marker, or it lives in, was
    started with, or holds open a file under the run's temp dir.

    The marker alone is not enough: setproctitle (Celery's daemons, our nodes) may
    overwrite the memory /proc/<pid>/environ is read from. But a daemon still holds its
    log file (and our nodes their pidfile lock) under `root`, and Celery's title keeps
    its `--pidfile=<root>/...` argument, so one of these always matches.
    """
    found = []
    me = os.getpid()
    prefix = str(root) + os.sep
    for p in psutil.process_iter(["pid"]):
        if p.pid == me:
            continue
        try:
            if _is_ours(p, run_id, prefix):
                found.append(p)
        except (psutil.Error, OSError):
            continue
    return found


def _is_ours(p: psutil.Process, run_id: str, prefix: str) -> bool:
    if p.environ().get(MARKER) == run_id:
        return True
    if (p.cwd() + os.sep).startswith(prefix) or prefix in " ".join(p.cmdline()):
        return True
    return any(f.path.startswith(prefix) for f in p.open_files())


def sweep(run_id: str, root: Path) -> int:
    """KILL every process of this run still alive; returns how many there were."""
    procs = ours(run_id, root)
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=5)
    return len(procs)


def tree_rss(pid: int) -> tuple[int, list[int]]:
    """Resident bytes of a node's main process and of each descendant (pool children):
    what `ps` shows an operator, shared copy-on-write pages counted in each process."""
    main = psutil.Process(pid)
    children = []
    for child in main.children(recursive=True):
        try:
            children.append(child.memory_info().rss)
        except psutil.Error:
            continue
    return main.memory_info().rss, children


def tree_pss(pid: int) -> int:
    """Proportional set size of a node and its descendants: shared pages split between
    the processes sharing them, so a forked pool is not charged twice for its parent."""
    main = psutil.Process(pid)
    total = 0
    for p in (main, *main.children(recursive=True)):
        try:
            total += p.memory_full_info().pss
        except (psutil.Error, AttributeError):
            continue
    return total


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until(predicate: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.01) -> float:
    """Poll until true; returns the monotonic time it became true. Raises on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
