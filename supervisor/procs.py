"""Reaching a node's processes safely: pin by pidfd, signal, wait, inspect.

A node is found through its pidfile, and only when the pidfile's lock is held
(contract section 5). Between reading the pid and signalling it the node could
exit and its pid be reused, so the pid is pinned with a pidfd and the pidfile
probed again: if the lock is still held by the same pid, the pidfd names the
node itself, and every later signal goes through the pidfd, which can never
reach another process. A pidfd also becomes readable when the process exits, so
waiting for nodes is a `poll`, not a loop of `kill(pid, 0)`.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from dataclasses import dataclass

import psutil

from qmulti.pidfiles import PidfileStatus, probe

TITLE_PREFIX = "qworker:"


@dataclass
class Pinned:
    """A running node's main process, held by a pidfd until `close()`."""

    pid: int
    fd: int

    def signal(self, sig: int) -> bool:
        """Send `sig` to the node; False when it has exited already."""
        try:
            signal.pidfd_send_signal(self.fd, sig)
        except ProcessLookupError:
            return False
        return True

    def exited(self) -> bool:
        return wait_any([self], 0.0) == [self]

    def wait(self, timeout: float) -> bool:
        """True once the process has exited; False when `timeout` ran out first."""
        return wait_any([self], timeout) == [self]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def pin(pidfile: str) -> tuple[PidfileStatus, Pinned | None]:
    """Probe `pidfile`; when a node holds it, pin that node's process.

    Returns the (last) probe status and the pinned process, or None when the
    pidfile is not held by a live process (then nothing may be signalled).
    """
    status = probe(pidfile)
    if status.state != "running" or status.pid is None:
        return status, None
    try:
        fd = os.pidfd_open(status.pid)
    except ProcessLookupError:
        return probe(pidfile), None
    again = probe(pidfile)
    if again.state == "running" and again.pid == status.pid:
        return again, Pinned(status.pid, fd)
    os.close(fd)
    return again, None


def wait_any(pinned: list[Pinned], timeout: float) -> list[Pinned]:
    """Wait up to `timeout` seconds until at least one of `pinned` exits; return those."""
    if not pinned:
        return []
    poller = select.poll()
    by_fd = {p.fd: p for p in pinned if p.fd >= 0}
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    events = poller.poll(max(0, int(timeout * 1000)))
    return [by_fd[fd] for fd, _ in events if fd in by_fd]


def children(pid: int) -> list[psutil.Process]:
    """Every descendant of `pid` (pool children and anything they started)."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def title(proc: psutil.Process) -> str:
    """The process title the node set (setproctitle rewrites the command line)."""
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


def busy_tasks(pid: int) -> list[str]:
    """`task[id]` of each pool child whose title says busy (`qworker: w1@h child 3 busy t[id]`)."""
    tasks = []
    for child in children(pid):
        words = title(child).split()
        if len(words) >= 6 and words[0] == TITLE_PREFIX and words[4] == "busy":
            tasks.append(words[5])
    return tasks


@dataclass(frozen=True)
class Usage:
    uptime: float | None
    rss: int | None  # bytes, the node and all its children
    children: int


def usage(pid: int) -> Usage:
    """Uptime, total RSS and child count of a node's process tree."""
    try:
        main = psutil.Process(pid)
        with main.oneshot():
            uptime = max(0.0, time.time() - main.create_time())
            rss = main.memory_info().rss
    except psutil.Error:
        return Usage(None, None, 0)
    kids = children(pid)
    for child in kids:
        with contextlib.suppress(psutil.Error):
            rss += child.memory_info().rss
    return Usage(uptime, rss, len(kids))


def kill_tree(target: Pinned) -> int:
    """SIGKILL the node and every descendant; returns how many descendants there were.

    Descendants are listed before the main process dies (after that they are
    re-parented and can no longer be found from it). psutil checks each one's
    start time before signalling, so a recycled pid is not hit.
    """
    kids = children(target.pid)
    for child in kids:
        with contextlib.suppress(psutil.Error):
            child.send_signal(signal.SIGKILL)
    target.signal(signal.SIGKILL)
    return len(kids)


def wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait for processes we signalled to disappear; return the ones still alive."""
    try:
        _, alive = psutil.wait_procs(procs, timeout=timeout)
    except psutil.Error:
        return []
    return list(alive)
