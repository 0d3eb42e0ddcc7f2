"""The task-event source, when this qmulti's nodes emit events (`-E`).

Events are the precise source (every state change, with runtimes); without them the
dashboard still works from stored results. The reader (`qmulti.events.EventReader`)
is looked up, not required, so the dashboard runs against nodes with events off, and
against a store that keeps no event stream. It starts at the oldest event the stream
still holds, so a dashboard started late still counts what the cap kept.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("qmulti.dashboard")
BATCH = 2000  # events per tick at most: a busy stream is caught up over a few ticks


class EventSource:
    """Reads on the collector's own broker connection, never blocking (a tick stays
    short). Gives up for good when the store keeps no stream."""

    def __init__(self) -> None:
        self.reader: Any = None
        self.disabled = False

    def read(self, broker: Any) -> list[dict[str, Any]]:
        if self.disabled:
            return []
        if self.reader is None or self.reader.broker is not broker:
            try:
                from qmulti.events import EventReader  # type: ignore[attr-defined]
            except ImportError:
                self.disabled = True
                return []
            position = getattr(self.reader, "position", None)
            self.reader = EventReader(broker, position or "oldest")
        try:
            return self.reader.read(0.0, BATCH)
        except NotImplementedError:  # this store keeps no event stream
            self.disabled = True
            return []
