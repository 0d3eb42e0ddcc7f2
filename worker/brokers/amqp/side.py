"""What an `amqp://` broker keeps outside RabbitMQ: node records and beat's tick claims.

RabbitMQ has no place to read a value back from (a queue can only be consumed), so node
heartbeats for `qmulti status` and beat's exactly-once tick claims live in the result
backend when that is one of our stores (`redis://`, `sqlite:///`).

A tick must be claimed and published in one step, which two systems cannot do. So the
claim puts the tick into an outbox queue of the side store in the same atomic step
(`claim_tick` of that store), and a relay then publishes it to RabbitMQ (with a confirm)
and acks it. A relay that dies in between holds a lease under its own node record, which
expires like any node's, so the next relay republishes it: the tick is never lost, and
is sent twice only when a relay died between RabbitMQ's confirm and its own ack. Canvas
continuations go through the same outbox (see `canvas.py`), with their eta.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from qmulti.brokers.base import Broker, Delivery, NodeRecord
from qmulti.exceptions import ConfigError
from qmulti.urls import parse_url

OUTBOX = "qmulti.amqp.outbox"
Publish = Callable[[str, str, bytes, "float | None"], None]
RELAY_BATCH = 50


def outbox_body(queue: str, body: bytes, eta: float | None = None) -> bytes:
    """An outbox message: `queue NUL body` (beat's ticks), or with an eta
    `NUL eta NUL queue NUL body` (a queue name is never empty, so the two never mix)."""
    if eta is None:
        return queue.encode() + b"\0" + body
    return b"\0" + repr(float(eta)).encode() + b"\0" + queue.encode() + b"\0" + body


def from_outbox(blob: bytes) -> tuple[str, bytes, float | None]:
    """(queue, body, eta) of an outbox message."""
    eta: float | None = None
    if blob.startswith(b"\0"):
        when, _, blob = blob[1:].partition(b"\0")
        eta = float(when)
    queue, _, body = blob.partition(b"\0")
    return queue.decode(), body, eta


_OPTIONS = ("connect_timeout", "socket_timeout", "pool_limit", "max_deliveries")


class _Serialized:
    """The side store with each call under one lock. Our stores are not thread-safe
    (one connection, per-process bookkeeping), and a pool child uses this one from two
    threads: its main thread (a finish, a canvas step) and the link's heartbeat thread,
    which hands long leases over while a task runs (handover.py). A call never waits on
    RabbitMQ, so holding the link's lock around it (as the hand-over does) cannot
    deadlock with a caller that holds only this one."""

    def __init__(self, store: Broker, lock: threading.RLock) -> None:
        self._store, self._lock = store, lock

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr

        def serialized(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)
        return serialized


class SideStore:
    def __init__(self, url: str | None, options: Mapping[str, Any]) -> None:
        self.url = url
        self._options = {k: v for k, v in options.items() if k in _OPTIONS}
        self._store: Any = None  # a _Serialized store
        self._pid = os.getpid()
        self._lock = threading.RLock()
        kind = parse_url(url, "result backend").kind if url else None
        self.usable = kind in ("redis", "sqlite")

    def store(self) -> Any:
        """The store (a `Broker`, its calls serialized), or None without one."""
        if not self.usable:
            return None
        if self._pid != os.getpid():  # a forked child: the parent's is not ours, nor its lock
            self._store, self._pid, self._lock = None, os.getpid(), threading.RLock()
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = _Serialized(self._connect(), self._lock)
        return self._store

    def _connect(self) -> Broker:
        parsed = parse_url(self.url, "result backend")
        if parsed.kind == "redis":
            from qmulti.brokers.redis import RedisStore

            return RedisStore(parsed.url, **self._options)
        from qmulti.brokers.sqlite import SqliteStore

        return SqliteStore(parsed.url, **self._options)

    def _required(self) -> Broker:
        store = self.store()
        if store is None:
            raise ConfigError(
                "periodic tasks on an amqp:// broker need a shared store for their tick "
                "claims: set result_backend to redis://... or sqlite:///path (rpc:// "
                "keeps nothing others can read)")
        return store

    # -- node records --------------------------------------------------------------------
    def heartbeat(self, node_id: str, info: Mapping[str, Any]) -> None:
        store = self.store()
        if store is not None:
            store.heartbeat(node_id, info)

    def unregister(self, node_id: str) -> None:
        store = self.store()
        if store is not None:
            store.unregister(node_id)

    def forget_dead(self, expiry: float) -> int:
        """How many of the dead nodes' side-store leases went back (outbox, hand-overs)."""
        store = self.store()
        if store is None:
            return 0
        return store.requeue_dead_nodes(expiry)  # also a dead relay's outbox lease

    def nodes(self) -> Sequence[NodeRecord]:
        store = self.store()
        return [] if store is None else list(store.stats().nodes)

    def clock(self) -> float:
        store = self.store()
        return time.time() if store is None else store.clock()

    # -- beat ---------------------------------------------------------------------------
    def beat_state(self, publish: Publish) -> dict[str, float]:
        store = self._required()
        self.relay(publish)
        return store.beat_state()

    def claim_tick(self, entry: str, due: float, queue: str, mid: str, body: bytes,
                   publish: Publish) -> bool:
        store = self._required()
        sent = store.claim_tick(entry, due, OUTBOX, mid, outbox_body(queue, body))
        if sent:
            self.relay(publish)
        return sent

    def beat_forget(self, entries: Sequence[str]) -> None:
        self._required().beat_forget(entries)

    def relay(self, publish: Publish) -> int:
        """Move every message in the outbox (ticks, canvas continuations) to RabbitMQ;
        returns how many."""
        def send(delivery: Delivery) -> None:
            queue, body, eta = from_outbox(delivery.body)
            publish(queue, delivery.mid, body, eta)
        return self.move([OUTBOX], send)

    def move(self, queues: Sequence[str], send: Callable[[Delivery], None]) -> int:
        """Claim what `queues` hold, `send` each message (to RabbitMQ, with its confirm)
        and ack it here; returns how many. The relay's node record is renewed at each
        batch, so a long relay is never judged dead (and its batch sent twice) while it
        works; its id names the thread too, so two relays of one process never share a
        record. A relay that dies holds its batch under that record, which expires."""
        store = self._required()
        relay_id = (f"amqp-relay@{socket.gethostname()}#{os.getpid()}"
                    f".{threading.get_ident()}")
        moved = 0
        try:
            while True:
                store.heartbeat(relay_id, {"kind": "relay"})  # a dead relay's lease expires
                batch = store.claim(list(queues), relay_id, "relay", RELAY_BATCH, 0)
                sent = []
                try:
                    for delivery in batch:
                        send(delivery)
                        sent.append(delivery)
                finally:
                    if sent:  # confirmed by RabbitMQ: out of the side store
                        store.ack(sent)
                        moved += len(sent)
                if len(batch) < RELAY_BATCH:
                    return moved
        except BaseException:
            store.release(relay_id)  # back in its queue for the next relay
            raise
        finally:
            store.unregister(relay_id)

    def close(self) -> None:
        if self._store is not None and self._pid == os.getpid():
            self._store.close()
        self._store = None
