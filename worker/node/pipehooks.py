"""How a consumer tells the node main process what it runs: the status pipe.

Lines: `U` (up), `X <reason>` (cannot start), `B <mid> <queue> <token|-> <task_id>
<time_limit|-> <name>` (a task begins), `E` (its outcome is stored). In a prefork child
the same hooks set the process title and arm the soft time limit.

Where the node cannot read its leases from the broker (`Broker.node_reads_leases` is
False: RabbitMQ), each claim is also reported, so that `inspect reserved` and `inspect
active` show the messages with their arguments: `P` followed by `<mid> <queue> <body>`
per claimed message, the body in base64 (`-` past BODY_LIMIT), replacing the last list;
written together with the next line (the first task's `B`), so it costs no wake-up.
"""

from __future__ import annotations

import base64
import os
import signal
from collections.abc import Sequence
from typing import Any

from qmulti.brokers.base import Delivery
from qmulti.node import proctitle
from qmulti.node.execute import Running

BODY_LIMIT = 32 * 1024  # a larger body is shown without its arguments


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
        self._reported = False  # the last `reserved` line listed something
        self._claimed = ""  # a `P` line not written yet

    def _write(self, line: str) -> None:
        if self._claimed:  # the claim's line rides with the first task's: one wake-up
            line, self._claimed = self._claimed + "\n" + line, ""
        os.write(self.fd, line.encode("utf-8", "replace") + b"\n")

    def up(self) -> None:
        self._write("U")

    def failed(self, reason: str) -> None:
        """The child cannot start: one line of why, for the node's log and `qmulti start`."""
        self._write("X " + " ".join(reason.split()))

    def reserved(self, broker: Any, batch: Sequence[Delivery]) -> None:
        """The claimed batch, for `inspect` (only where the broker cannot tell)."""
        if broker.node_reads_leases or not (batch or self._reported):
            return
        self._reported = bool(batch)  # an idle claim after an empty one says nothing
        if not batch:
            self._claimed = ""
            self._write("P")  # now: an idle child writes nothing else to carry it
            return
        parts = ["P"]
        for d in batch:
            body = (base64.b64encode(d.body).decode() if len(d.body) <= BODY_LIMIT
                    else "-")
            parts += [d.mid, d.queue, body]
        self._claimed = " ".join(parts)  # sent with the next line (its first `B`)

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
