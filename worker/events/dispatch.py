"""`Dispatcher`: buffer events in this process and flush them from a small thread.

Emitting must stay off a task's path: `send` only appends the encoded event to a list
under a lock; a daemon thread wakes when the batch is due (`FLUSH_INTERVAL` after the
first unflushed event, or at once past `FLUSH_MAX` events) and writes the whole batch
with one `events_put` (one pipeline or one transaction) over a connection of its own.
One buffer per process keeps each sender's events in order, so a task's received,
started and succeeded arrive in that order.

A broker outage keeps the events and retries; past `BUFFER_MAX` the oldest are dropped
(counted, logged once): events are for monitors and must never grow a node without
bound. `close()` flushes what is left, so a warm stop loses nothing.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from qmulti.brokers.events_base import DEFAULT_MAXLEN
from qmulti.events.event import encode, utcoffset

log = logging.getLogger("qmulti.events")

FLUSH_INTERVAL = 0.1  # seconds an event may wait in the buffer
FLUSH_MAX = 500  # events that trigger a flush at once
BUFFER_MAX = 50_000  # events kept while the broker is away


class Dispatcher:
    """Thread-safe; made after fork (`for_process` makes a new one in a child)."""

    def __init__(self, make_store: Callable[[], Any], hostname: str,
                 maxlen: int = DEFAULT_MAXLEN, interval: float = FLUSH_INTERVAL) -> None:
        self.make_store = make_store
        self.hostname = hostname
        self.maxlen = maxlen
        self.interval = interval
        self.pid = os.getpid()
        # Celery's common fields, fixed for this process; `clock` counts its events.
        self._common = {"hostname": hostname, "utcoffset": utcoffset(), "pid": self.pid}
        self._clock = itertools.count(1)
        self.dropped = 0
        self._buf: list[bytes] = []
        self._cond = threading.Condition()
        self._flush_lock = threading.Lock()  # one flush at a time keeps the order
        self._store: Any = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._failing = False

    def send(self, type_: str, **fields: Any) -> None:
        """Queue one event; never blocks on the broker, never raises. Encoded here, outside
        the lock, so that consumer threads sharing the dispatcher do not wait on each other."""
        body = encode({"type": type_, "timestamp": time.time(), **self._common,
                       "clock": next(self._clock), **fields})
        with self._cond:
            self._buf.append(body)
            if len(self._buf) > BUFFER_MAX:
                self.dropped += len(self._buf) - BUFFER_MAX
                del self._buf[:len(self._buf) - BUFFER_MAX]
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="events", daemon=True)
                self._thread.start()
            if len(self._buf) == 1 or len(self._buf) >= FLUSH_MAX:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._buf and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                # Let a batch gather: a flush per event would cost a round trip each.
                if len(self._buf) < FLUSH_MAX:
                    self._cond.wait(self.interval)
            if not self.flush():
                with self._cond:
                    self._cond.wait(min(self.interval * 10, 1.0))  # broker away: back off

    def flush(self) -> bool:
        """Write the buffer now; False when the broker refused (the events are kept)."""
        with self._flush_lock:
            with self._cond:
                batch, self._buf = self._buf, []
            if not batch:
                return True
            try:
                if self._store is None:
                    self._store = self.make_store()
                self._store.events_put(batch, self.maxlen)
            except Exception as exc:
                with self._cond:
                    self._buf[:0] = batch  # back in front, order kept
                if not self._failing:
                    log.warning("Could not send %d event(s) (%s); keeping them and retrying",
                                len(batch), exc)
                self._failing = True
                return False
            if self._failing:
                log.warning("Sending events again")
                self._failing = False
            return True

    def close(self) -> None:
        """Flush what is left and stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
        self.flush()
        if self.dropped:
            log.warning("Dropped %d event(s) while the broker was unreachable", self.dropped)
