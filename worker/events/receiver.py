"""`Receiver`: Celery's `app.events.Receiver(connection, handlers=...)` over our stream.

    recv = app.events.Receiver(None, handlers={"task-failed": on_failed, "*": state.event})
    recv.capture(limit=None, timeout=None, wakeup=True)

A handler for the event's type runs, else the `'*'` handler. `timeout` ends the capture
after that many seconds without an event (Celery raises a socket timeout instead);
`wakeup` is accepted: nodes heartbeat every `worker_heartbeat_interval` (2 s) anyway.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from qmulti.events.reader import NOW, EventReader

Handler = Callable[[dict[str, Any]], Any]


def store_of(app: Any, connection: Any) -> Any:
    """The store to read: `connection` may be None (the app's broker), a store, a broker
    URL, or an object with a `broker` (or `default_channel`) that is one."""
    if connection is None:
        return app.broker
    if isinstance(connection, str):
        from qmulti.brokers import create_broker, store_options

        return create_broker(connection, **store_options(app.conf))
    for attr in ("broker", "default_channel"):
        inner = getattr(connection, attr, None)
        if inner is not None and hasattr(inner, "events_read"):
            return inner
    return connection


class Receiver:
    def __init__(self, app: Any, connection: Any = None,
                 handlers: Mapping[str, Handler] | None = None, start: str = NOW,
                 **_kombu_options: Any) -> None:
        self.app = app
        self.handlers = dict(handlers or {})
        self.reader = EventReader(store_of(app, connection), start)
        self.should_stop = False

    def process(self, type_: str, event: dict[str, Any]) -> None:
        handler = self.handlers.get(type_) or self.handlers.get("*")
        if handler is not None:
            handler(event)

    def itercapture(self, limit: int | None = None, timeout: float | None = None,
                    wakeup: bool = True) -> Iterator[dict[str, Any]]:
        """Each event, after its handler ran; `should_stop = True` (from a handler) ends
        the capture after that event."""
        for event in self.reader.iter(timeout=timeout, limit=limit):
            event.setdefault("local_received", time.time())
            self.process(event["type"], event)
            yield event
            if self.should_stop:
                return

    def capture(self, limit: int | None = None, timeout: float | None = None,
                wakeup: bool = True) -> None:
        for _ in self.itercapture(limit=limit, timeout=timeout, wakeup=wakeup):
            pass
