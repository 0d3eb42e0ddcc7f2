"""`--autoscale MAX,MIN`: how many pool children the node wants, from its queue depth.

The node main process asks the broker for the depth of its queues once a heartbeat
and wants one child per running or waiting task, between MIN and MAX. It grows at
once and shrinks one child at a time, only after the pool has wanted fewer for
KEEPALIVE seconds, so a bursty queue does not make children come and go. Retired
children stop warmly: a running task is never cut short by a shrink.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

KEEPALIVE = 5.0  # seconds of wanting fewer children before one is retired


@dataclass
class Autoscaler:
    high: int
    low: int
    keepalive: float = KEEPALIVE
    _fewer_since: float | None = field(default=None, repr=False)

    def want(self, current: int, busy: int, waiting: int, now: float | None = None) -> int:
        """The pool size to have now, given `busy` children and `waiting` ready messages."""
        now = time.monotonic() if now is None else now
        target = max(self.low, min(self.high, busy + waiting))
        if target >= current:
            self._fewer_since = None
            return target
        if self._fewer_since is None:
            self._fewer_since = now
            return current
        if now - self._fewer_since < self.keepalive:
            return current
        self._fewer_since = now  # the next one goes after another keepalive
        return current - 1
