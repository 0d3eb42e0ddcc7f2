"""Acting on dead letters (the dashboard's retry and discard), as one interface.

Each store mixes in its own implementation (`redis/deadletters.py`,
`sqlite/deadletters.py`, `MemoryDeadLetters` below). A retry republishes a message at
the tail of its queue with its delivery count back at 0, and removes it from the
dead-letter queue in the same atomic step: a second retry of the same mid (a double
click, two dashboards) finds nothing and publishes nothing, so a retry sends once.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DeadLetterEntry:
    """A dead letter with when it was dead-lettered (unix seconds; None if unknown)."""

    mid: str
    queue: str
    reason: str
    body: bytes
    at: float | None


class MemoryDeadLetters:
    """For `MemoryStore`: its dicts under its condition variable."""

    _cond: Any
    _dead: dict[str, Any]
    _messages: dict[str, Any]
    _ready: dict[str, deque[str]]
    _dead_at: dict[str, float]

    def dead_letter_entries(self, limit: int = 100) -> list[DeadLetterEntry]:
        with self._cond:
            stamps = self.__dict__.setdefault("_dead_at", {})
            now = time.time()
            return [DeadLetterEntry(d.mid, d.queue, d.reason, d.body,
                                    stamps.setdefault(d.mid, now))
                    for d in list(self._dead.values())[:limit]]

    def retry_dead_letter(self, queue: str, mid: str) -> bool:
        from qmulti.brokers.memory import _Message

        with self._cond:
            dead = self._dead.get(mid)
            if dead is None or dead.queue != queue or mid in self._messages:
                return False
            del self._dead[mid]
            self._messages[mid] = _Message(queue, dead.body, 0.0)
            self._ready.setdefault(queue, deque()).append(mid)
            self._cond.notify_all()
            return True

    def discard_dead_letter(self, queue: str, mid: str) -> bool:
        with self._cond:
            dead = self._dead.get(mid)
            if dead is None or dead.queue != queue:
                return False
            del self._dead[mid]
            return True
