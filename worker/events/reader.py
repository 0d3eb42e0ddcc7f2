"""`EventReader`: iterate the broker's event stream from a position, blocking.

The one reader API for monitors (the `qmulti events` tail, the dashboard, `Receiver`):

    reader = EventReader(app.broker, start="oldest")   # or "now", or a saved position
    for event in reader.iter(timeout=5.0):             # stops after 5 s without events
        print(reader.position, event["type"], event.get("uuid"))

`read(timeout)` returns one batch (possibly empty) and advances `position`, so a caller
that keeps the position (a web page's Last-Event-ID) resumes where it left off. A
reader that falls behind the stream's cap resumes at the oldest entry still retained.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from qmulti.brokers.events_base import OLDEST
from qmulti.events.event import decode

NOW = "now"
OLDEST_NAME = "oldest"
BATCH = 500
BLOCK_CHUNK = 1.0  # longest single blocking read: a stop request is seen this soon


class EventReader:
    """Not thread-safe; each reader owns its position. `broker` is any store with an
    event stream (`app.broker`, or `qmulti.brokers.create_broker(url)`)."""

    def __init__(self, broker: Any, start: str = NOW) -> None:
        self.broker = broker
        if start == NOW:
            self.position = broker.events_tail()
        elif start in (OLDEST_NAME, OLDEST, "", None):
            self.position = OLDEST
        else:
            self.position = str(start)
        self.stopped = False

    def read(self, timeout: float = 0.0, count: int = BATCH) -> list[dict[str, Any]]:
        """The next events (up to `count`), waiting up to `timeout` s for the first one."""
        return [e for _, e in self.entries(timeout, count)]

    def entries(self, timeout: float = 0.0,
                count: int = BATCH) -> list[tuple[str, dict[str, Any]]]:
        """As `read`, with each event's position."""
        raw = self.broker.events_read(self.position, count, timeout)
        out = []
        for position, body in raw:
            self.position = position
            event = decode(body)
            if event is not None:
                out.append((position, event))
        return out

    def iter(self, timeout: float | None = None,
             limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Events as they come; ends after `limit` events, after `timeout` seconds with
        none (None: never), or once `stop()` was called (seen within a second)."""
        seen = 0
        idle_since = time.monotonic()
        while not self.stopped:
            wait = BLOCK_CHUNK
            if timeout is not None:
                wait = min(wait, max(timeout - (time.monotonic() - idle_since), 0.0))
            batch = self.read(wait)
            if batch:
                idle_since = time.monotonic()
            elif timeout is not None and time.monotonic() - idle_since >= timeout:
                return
            for event in batch:
                yield event
                seen += 1
                if limit is not None and seen >= limit:
                    return

    __iter__ = iter

    def stop(self) -> None:
        self.stopped = True
