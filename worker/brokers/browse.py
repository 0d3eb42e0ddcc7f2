"""What the dashboard reads and does beyond `Broker`: browse, one interface per store.

- per-queue counts (ready, scheduled, leased, dead) and the head of each queue, and
  the node records alone (what `stats()` gives, without its per-queue reads);
- dead letters with when they died, and two actions on them: retry and discard;
- scheduled (eta/countdown) messages with their eta;
- stored results, a page at a time (the task list, until nodes emit events).

Each store mixes in its own implementation (`redis/browse.py`, `sqlite/browse.py`,
`MemoryBrowse` below); all are read-only except the two actions. A retry republishes a message at
the tail of its queue with its delivery count back at 0, and removes it from the
dead-letter queue in the same atomic step: a second retry of the same mid (a double
click, two dashboards) finds nothing and publishes nothing, so a retry sends once.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Container
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


@dataclass(frozen=True)
class ScheduledEntry:
    """A message waiting in the broker for its eta."""

    mid: str
    queue: str
    eta: float
    body: bytes


@dataclass(frozen=True)
class QueueDetail:
    """One queue's counts, and the mid at its head (the oldest ready message)."""

    ready: int
    scheduled: int
    leased: int
    dead: int
    head: str | None


# A page of stored results: the cursor to pass next (0 or "" once the pass is complete:
# the next call starts again) and (task id, document) pairs.
ResultPage = tuple[str, list[tuple[str, bytes]]]


class MemoryBrowse:
    """For `MemoryStore`: its dicts under its condition variable."""

    _cond: Any
    publish: Any  # MemoryStore's
    _dead: dict[str, Any]
    _messages: dict[str, Any]
    _ready: dict[str, deque[str]]
    _dead_at: dict[str, float]
    _scheduled: set[str]
    _nodes: dict[str, Any]
    _results: dict[str, tuple[str, bytes, float | None]]

    def dead_letter_entries(self, limit: int = 100) -> list[DeadLetterEntry]:
        with self._cond:
            stamps = self.__dict__.setdefault("_dead_at", {})
            now = time.time()
            return [DeadLetterEntry(d.mid, d.queue, d.reason, d.body,
                                    stamps.setdefault(d.mid, now))
                    for d in list(self._dead.values())[:limit]]

    def retry_dead_letter(self, queue: str, mid: str) -> bool:
        with self._cond:  # re-entrant: publish takes it again, so both are one step
            dead = self._dead.get(mid)
            if dead is None or dead.queue != queue or mid in self._messages:
                return False
            del self._dead[mid]
            self.publish(queue, mid, dead.body)  # a fresh message: delivery count 0
            return True

    def discard_dead_letter(self, queue: str, mid: str) -> bool:
        with self._cond:
            dead = self._dead.get(mid)
            if dead is None or dead.queue != queue:
                return False
            del self._dead[mid]
            return True

    def scheduled_entries(self, limit: int = 100) -> list[ScheduledEntry]:
        with self._cond:
            waiting = sorted((self._messages[m].eta, m) for m in self._scheduled
                              if m in self._messages)[:limit]
            return [ScheduledEntry(m, self._messages[m].queue, eta, self._messages[m].body)
                    for eta, m in waiting]

    def result_page(self, cursor: str = "", count: int = 500,
                    skip: Container[str] = ()) -> ResultPage:
        """`skip`: ids the caller has seen final (their documents no longer change)."""
        with self._cond:
            ids = sorted(t for t in self._results if t > cursor)[:count]
            page = [(t, self._results[t][1]) for t in ids if t not in skip]
        return (ids[-1] if len(ids) == count else "", page)

    def queue_details(self) -> dict[str, QueueDetail]:
        with self._cond:
            names = set(self._ready) | {m.queue for m in self._messages.values()} | {
                d.queue for d in self._dead.values()}
            out = {}
            for q in sorted(names):
                ready = self._ready.get(q) or deque()
                mine = [m for m in self._messages.values() if m.queue == q]
                out[q] = QueueDetail(
                    len(ready), sum(1 for mid in self._scheduled
                                    if self._messages[mid].queue == q),
                    sum(1 for m in mine if m.lease is not None),
                    sum(1 for d in self._dead.values() if d.queue == q),
                    ready[0] if ready else None)
            return out

    def node_records(self) -> list[Any]:
        with self._cond:
            return list(self._nodes.values())
