"""How a consumer tells the node main process what it runs: the status pipe.

Lines: `U` (up), `X <reason>` (cannot start), `B <mid> <queue> <token|-> <task_id>
<time_limit|-> <name>` (a task begins), `E` (its outcome is stored). In a prefork child
the same hooks set the process title and arm the soft time limit.
"""

from __future__ import annotations

import os
import signal

from qmulti.node import proctitle
from qmulti.node.execute import Running


def rss_kib() -> int:
    """Current resident set size, not the peak: a fresh child must not inherit a verdict."""
    try:
        with open("/proc/self/statm", "rb") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        import psutil

        return int(psutil.Process().memory_info().rss // 1024)


class PipeHooks:
    """Report begin/end on a status pipe; in a prefork child also set the title and arm
    the soft time limit (SIGALRM works only in a process's main thread)."""

    def __init__(self, fd: int, node: str, index: int, in_process: bool) -> None:
        self.fd = fd
        self.node = node
        self.index = index
        self.in_process = in_process

    def _write(self, line: str) -> None:
        os.write(self.fd, line.encode("utf-8", "replace") + b"\n")

    def up(self) -> None:
        self._write("U")

    def failed(self, reason: str) -> None:
        """The child cannot start: one line of why, for the node's log and `qmulti start`."""
        self._write("X " + " ".join(reason.split()))

    def begin(self, running: Running) -> None:
        limit = "-" if running.time_limit is None else f"{running.time_limit:g}"
        self._write(f"B {running.mid} {running.queue} {running.token or '-'} "
                    f"{running.task_id} {limit} {running.name}")
        if self.in_process:
            proctitle.set_title(proctitle.child_title(self.node, self.index, running.name,
                                                      running.task_id))
            if running.soft_time_limit:
                signal.setitimer(signal.ITIMER_REAL, running.soft_time_limit)

    def returned(self) -> None:
        if self.in_process:
            signal.setitimer(signal.ITIMER_REAL, 0)

    def end(self) -> None:
        self._write("E")
        if self.in_process:
            proctitle.set_title(proctitle.child_title(self.node, self.index))
