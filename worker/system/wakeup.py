"""The signal wake-up pipe both master loops (a node's and `qmulti supervise`) block on.

Python's C-level handler writes each signal's number to the pipe (`signal.set_wakeup_fd`),
so the Python-level handler has nothing to do: no logging, broker call or `os.kill`
ever runs inside a handler. The loop selects on `fileno()`, then `drain()`s the signal
numbers, in order, and acts on them at its own pace.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable
from typing import Any

from qmulti.system import startsignals

__all__ = ["Wakeup"]


class Wakeup:
    """One process's wake-up pipe. Both ends are non-blocking (a full pipe drops a
    wake-up, never blocks the handler) and close-on-exec (a HUP re-exec or a spawned
    node does not inherit them)."""

    def __init__(self) -> None:
        self.rfd, self.wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._old_fd: int | None = None
        self._old_handlers: dict[int, Any] = {}

    def fileno(self) -> int:
        """The read end, for `select` and `selectors`."""
        return self.rfd

    def install(self, signals: Iterable[int]) -> None:
        """Route `signals` here: each gets a handler that only lets the C-level write
        happen (the previous handlers are kept for `close`)."""
        self._old_fd = signal.set_wakeup_fd(self.wfd, warn_on_full_buffer=False)
        for sig in signals:
            self._old_handlers[sig] = signal.signal(sig, _record_only)
        # What arrived while the process was still importing (held by its entry point,
        # qmulti.system.startsignals) is drained first, in order: a TERM at start-up is
        # a warm stop like any other.
        for signum in startsignals.take():
            os.write(self.wfd, bytes([signum]))

    def drain(self) -> list[int]:
        """The signal numbers received since the last drain, oldest first."""
        data = b""
        while True:
            try:
                chunk = os.read(self.rfd, 4096)
            except BlockingIOError:
                break
            if not chunk:
                break
            data += chunk
        return list(data)

    def close(self, restore_handlers: bool = True) -> None:
        """Give the wake-up fd back and close the pipe. `restore_handlers=False` keeps the
        do-nothing handlers, so a late signal during exit cannot kill the process."""
        if self._old_fd is not None:
            signal.set_wakeup_fd(self._old_fd)
            self._old_fd = None
        if restore_handlers:
            for sig, handler in self._old_handlers.items():
                signal.signal(sig, handler)
        self._old_handlers.clear()
        for fd in (self.rfd, self.wfd):
            os.close(fd)


def _record_only(signum: int, frame: object) -> None:
    """The C-level handler already wrote `signum` to the wake-up pipe; nothing else to do."""
