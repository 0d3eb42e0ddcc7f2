"""The event stream of the in-process memory store: a bounded deque and a condition."""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Sequence

from qmulti.brokers.events_base import DEFAULT_MAXLEN, OLDEST


class MemoryEvents:
    """Mixin of `MemoryStore`; state made on first use, guarded by its own condition
    (never the store's, so emitting does not wait behind a blocked claim)."""

    _events_cond: threading.Condition | None = None
    _events: deque[tuple[int, bytes]]
    _event_ids: itertools.count[int]

    def _stream(self) -> threading.Condition:
        cond = self._events_cond
        if cond is None:
            self._events = deque()
            self._event_ids = itertools.count(1)
            cond = self._events_cond = threading.Condition()
        return cond

    def events_put(self, events: Sequence[bytes], maxlen: int = DEFAULT_MAXLEN) -> None:
        if not events:
            return
        cond = self._stream()
        with cond:
            for body in events:
                self._events.append((next(self._event_ids), bytes(body)))
            while len(self._events) > max(int(maxlen), 1):
                self._events.popleft()
            cond.notify_all()

    def events_read(self, after: str = OLDEST, count: int = 500,
                    timeout: float = 0.0) -> list[tuple[str, bytes]]:
        start = int(after or OLDEST)
        deadline = time.monotonic() + max(timeout, 0.0)
        cond = self._stream()
        with cond:
            while True:
                out = [(str(i), b) for i, b in self._events if i > start][:max(int(count), 1)]
                left = deadline - time.monotonic()
                if out or left <= 0:
                    return out
                cond.wait(left)

    def events_tail(self) -> str:
        with self._stream():
            return str(self._events[-1][0]) if self._events else OLDEST
