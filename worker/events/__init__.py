"""Celery's event stream: what nodes started with `-E` report, and how to read it.

- `EventReader(broker, start="now"|"oldest"|position)`: iterate events, blocking with a
  timeout (`reader.read(timeout)`, `reader.iter(timeout=None, limit=None)`).
- `app.events.Receiver(connection, handlers={...})`.capture(limit, timeout, wakeup) and
  `app.events.State()`, shaped as Celery's.
- Event types and fields are Celery's (`qmulti.events.event.EVENT_TYPES`); each event is
  a dict with `type`, `timestamp`, `hostname`, `utcoffset`, `pid`, `clock` and its own
  fields (`uuid`, `name`, `args`, `result`, `runtime`, `exception`, ...).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qmulti.events.event import EVENT_TYPES, TASK_EVENTS, WORKER_EVENTS
    from qmulti.events.reader import NOW, OLDEST_NAME, EventReader
    from qmulti.events.receiver import Receiver
    from qmulti.events.state import State

# Loaded on first use, as `qmulti` itself: the producer's built-in task-sent hook lives
# in this package, and `import qmulti` must not load a broker module for it.
_LAZY = {"EVENT_TYPES": "event", "TASK_EVENTS": "event", "WORKER_EVENTS": "event",
         "NOW": "reader", "OLDEST_NAME": "reader", "EventReader": "reader",
         "Receiver": "receiver", "State": "state"}

__all__ = ["EVENT_TYPES", "NOW", "OLDEST_NAME", "TASK_EVENTS", "WORKER_EVENTS", "EventReader",
           "Events", "Receiver", "State"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'qmulti.events' has no attribute {name!r}")
    return getattr(importlib.import_module(f"qmulti.events.{module}"), name)


class Events:
    """`app.events`: the entry points bound to one app."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def Receiver(self, connection: Any = None, handlers: Any = None,  # noqa: N802
                 **options: Any) -> Receiver:
        from qmulti.events.receiver import Receiver

        return Receiver(self.app, connection, handlers, **options)

    def State(self, **options: Any) -> State:  # noqa: N802
        from qmulti.events.state import State

        return State(**options)

    def reader(self, start: str = "now") -> EventReader:
        from qmulti.events.reader import EventReader

        return EventReader(self.app.broker, start)
