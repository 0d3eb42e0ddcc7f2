"""The task-event source, when this qmulti's nodes emit events (`-E`).

Events are the precise source (every state change, with runtimes); without them the
dashboard still works from stored results. The reader is looked up, not required,
so the dashboard runs against nodes with events off, and against a qmulti whose
event stream is not there at all.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("qmulti.dashboard")


class EventReader:
    """Wraps the API's stream reader: `read()` gives the events since the last call,
    never blocking (the collector's tick must stay short)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def read(self) -> Iterator[dict[str, Any]]:
        try:
            yield from self.stream.read(timeout=0)
        except Exception as exc:  # the broker's problem is reported by the stats read
            log.debug("event read failed: %s", exc)


def event_reader(app: Any) -> EventReader | None:
    try:
        from qmulti import events  # type: ignore[attr-defined]
    except ImportError:
        return None
    opener = getattr(events, "reader", None) or getattr(events, "EventReader", None)
    if opener is None:
        return None
    try:
        return EventReader(opener(app))
    except Exception as exc:
        log.warning("task events unavailable (%s); showing stored results only", exc)
        return None
