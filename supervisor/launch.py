"""Starting nodes and knowing they consume: the heart of `start` and `restart`.

Each node is launched as `python -m qmulti ... --detach` with its own notify
socket (a unix datagram socket in a private directory, passed as NOTIFY_SOCKET).
The launcher validates in the foreground and exits: non-zero with one stderr
line means a configuration error (bad -A), and the node is FAILED at once with
that line. Otherwise the detached node speaks on its socket: READY=1 once it
consumes (OK), or STATUS=<why> and EXIT_STATUS=<code> before it gives up
(FAILED). A node that dies without a word is seen through its pidfile: once it
holds the lock it is pinned by a pidfd, which turns readable when it exits.
All nodes are launched first and then waited for together, so three nodes take
as long as the slowest, not the sum.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from qmulti.supervisor.nodes import Node
from qmulti.supervisor.procs import Pinned, pin
from qmulti.supervisor.report import NodeResult
from qmulti.system import startsignals
from qmulti.system.environ import node_environ

LOG_TAIL_LINES = 10
# How often a launched node's pidfile is probed until it is held (then its pidfd
# tells us when it exits) and how long one wait on the sockets lasts at most.
PROBE_INTERVAL = 0.2
TICK = 0.1


def file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def log_tail(path: str, lines: int = LOG_TAIL_LINES, since: int = 0) -> list[str]:
    """The last `lines` lines of a log file written after offset `since`.

    `since` is the size before this start, so an earlier run's lines are not
    shown as the reason of this failure. Empty when the file is missing.
    """
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            if size < since:  # rotated or truncated meanwhile: all of it is new
                since = 0
            fh.seek(max(since, size - 64 * 1024))
            data = fh.read()
    except OSError:
        return []
    tail: deque[str] = deque(maxlen=lines)
    for line in data.decode("utf-8", "replace").splitlines():
        if line.strip():
            tail.append(line.rstrip())
    return list(tail)


@dataclass
class _Launch:
    """One node being started: its socket, launcher process and what it said."""

    node: Node
    pidfile: str  # absolute
    logfile: str  # absolute, the main process's file
    sock: socket.socket
    errpath: str
    log_offset: int = 0
    proc: subprocess.Popen[bytes] | None = None
    pinned: Pinned | None = None
    status: str = ""
    result: NodeResult | None = None
    next_probe: float = 0.0
    fields: dict[str, str] = field(default_factory=dict)

    def failed(self, detail: str) -> NodeResult:
        lines = [f"qworker: {line}" for line in log_tail(self.errpath, 3)
                 if detail not in line]
        lines += log_tail(self.logfile, since=self.log_offset)
        pid = self.pinned.pid if self.pinned and not self.pinned.exited() else None
        return NodeResult(self.node.name, False, "FAILED", pid, detail, tuple(lines))


def _receive(launch: _Launch) -> None:
    """Read every pending datagram from the node; decide when one is final."""
    while launch.result is None:
        try:
            data = launch.sock.recv(4096)
        except BlockingIOError:
            return
        for line in data.decode("utf-8", "replace").splitlines():
            key, sep, value = line.partition("=")
            if not sep:
                continue
            launch.fields[key] = value
            if key == "STATUS":
                launch.status = value
        if launch.fields.get("READY") == "1":
            mainpid = launch.fields.get("MAINPID", "")
            pid = int(mainpid) if mainpid.isdigit() else None
            launch.result = NodeResult(launch.node.name, True, "OK", pid)
        elif "EXIT_STATUS" in launch.fields:
            code = launch.fields["EXIT_STATUS"]
            why = launch.status or f"the node gave up with exit status {code}"
            launch.result = launch.failed(why)


def _check(launch: _Launch, now: float) -> None:
    """Watch the launcher's exit and the detached node's life between datagrams."""
    proc = launch.proc
    if proc is not None:
        code = proc.poll()
        if code is None:
            return
        launch.proc = None
        if code != 0:
            errors = log_tail(launch.errpath, 1)
            why = errors[-1] if errors else f"qworker exited with status {code}"
            launch.result = launch.failed(why)
            return
    if launch.pinned is None and now >= launch.next_probe:
        launch.next_probe = now + PROBE_INTERVAL
        _, launch.pinned = pin(launch.pidfile)
    if launch.pinned is not None and launch.pinned.exited():
        _receive(launch)  # its last words may have arrived just before it went
        if launch.result is None:
            why = launch.status or "the node exited before it consumed"
            launch.result = launch.failed(why)


def launch_and_wait(nodes: list[Node], cwd: str, timeout: float,
                    on_result: Callable[[NodeResult], None] | None = None) -> list[NodeResult]:
    """Start `nodes` (none of them running) at once; wait until each consumes or fails.

    Results come back in node order; `on_result(result)` is called as soon as
    every node before it has a result too, so lines appear in order as early as
    possible.
    """
    tmpdir = tempfile.mkdtemp(prefix="qmulti-notify-")
    launches: list[_Launch] = []
    selector = selectors.DefaultSelector()
    try:
        for index, node in enumerate(nodes):
            path = os.path.join(tmpdir, f"{index}.sock")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            sock.bind(path)
            sock.setblocking(False)
            launch = _Launch(node, os.path.join(cwd, node.pidfile),
                             os.path.join(cwd, node.main_logfile), sock,
                             os.path.join(tmpdir, f"{index}.err"))
            launch.log_offset = file_size(launch.logfile)
            launches.append(launch)
            selector.register(sock, selectors.EVENT_READ, launch)
            # Blocked across the fork/exec (the child inherits the mask) until the node's
            # entry point has its handlers: a TERM while it imports is a warm stop.
            old_mask = startsignals.block()
            try:
                with open(launch.errpath, "wb") as err:
                    launch.proc = subprocess.Popen(
                        [*node.command(), *node.argv(cwd)],
                        cwd=cwd, env=node_environ(node.env, path), stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
                    )
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        deadline = time.monotonic() + timeout
        reported = 0
        while True:
            now = time.monotonic()
            for launch in launches:
                if launch.result is None:
                    _check(launch, now)
            if on_result is not None:
                while reported < len(launches) and launches[reported].result is not None:
                    on_result(launches[reported].result)
                    reported += 1
            pending = [launch for launch in launches if launch.result is None]
            if not pending:
                break
            if now >= deadline:
                for launch in pending:
                    launch.result = launch.failed(f"not consuming after {timeout:g}s")
                continue
            for key, _ in selector.select(min(TICK, deadline - now)):
                _receive(key.data)
        return [launch.result for launch in launches if launch.result is not None]
    finally:
        for launch in launches:
            _cleanup(launch)
        selector.close()
        shutil.rmtree(tmpdir, ignore_errors=True)


def _cleanup(launch: _Launch) -> None:
    """Close what we hold; a launcher still validating at the deadline is ours to end."""
    launch.sock.close()
    if launch.proc is not None and launch.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(launch.proc.pid, signal.SIGKILL)
        launch.proc.wait()
    if launch.pinned is not None:
        launch.pinned.close()

