"""task-sent, from the producer, with `task_send_sent_event` (Celery's setting).

A built-in middleware whose `after_publish` queues the event in the app's own
`Dispatcher` (one per process, made on first use), so `delay()` pays for a buffer append,
not a round trip. What is still buffered is flushed at interpreter exit.
"""

from __future__ import annotations

import atexit
import os
import socket
from datetime import datetime, timezone
from typing import Any

from qmulti.events.event import safe_repr
from qmulti.middleware import Middleware


def _sender(app: Any) -> Any:
    """The app's dispatcher for this process (kept on the app: no module state)."""
    held = app.__dict__.get("_sent_events")
    if held is not None and held[0] == os.getpid():
        return held[1]
    from qmulti.events.dispatch import Dispatcher

    def store() -> Any:
        if str(app.conf.broker_url or "").startswith("memory:"):
            return app.broker
        from qmulti.brokers import create_broker, store_options

        return create_broker(app.conf.broker_url, **store_options(app.conf))

    maxlen = int(getattr(app.conf, "event_stream_maxlen", 0) or 10_000)
    dispatcher = Dispatcher(store, socket.gethostname(), maxlen)
    app.__dict__["_sent_events"] = (os.getpid(), dispatcher)
    atexit.register(dispatcher.close)
    return dispatcher


class SentEvents(Middleware):
    def __init__(self, enabled: bool = False) -> None:
        self.enabled = bool(enabled)

    def active_hooks(self) -> list[str]:
        return ["after_publish"] if self.enabled else []

    def after_publish(self, app: Any, message: Any) -> None:
        from qmulti import appstate

        parent = appstate.running_request.get()
        parent_id = root_id = None
        if parent is not None:
            parent_id, root_id = parent.id, parent.root_id or parent.id
        eta = None if message.eta is None else datetime.fromtimestamp(
            message.eta, timezone.utc).isoformat()
        expires = None if message.expires is None else datetime.fromtimestamp(
            message.expires, timezone.utc).isoformat()
        _sender(app).send("task-sent", uuid=message.id, name=message.task,
                          args=safe_repr(tuple(message.args)),
                          kwargs=safe_repr(dict(message.kwargs)), retries=message.retries,
                          eta=eta, expires=expires, queue=message.queue, exchange="",
                          routing_key=message.queue, root_id=root_id, parent_id=parent_id)
