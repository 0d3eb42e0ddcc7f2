"""`amqp://` (also `pyamqp://`, `amqps://`): RabbitMQ as the broker, over py-amqp.

A lease is an unacked delivery on this process's channel; its token is the channel's
generation and the delivery tag. RabbitMQ gives a channel's unacked messages back the
moment its connection closes, so a KILLed node or child loses nothing and needs no
heartbeat expiry: `requeue_dead_nodes` has no leases to take back, and `heartbeat`
never reports the node judged dead (its leases cannot be taken while its connection
lives). What RabbitMQ cannot hold (node records for `qmulti status`, beat's tick claims)
lives in the result backend when that is a store (`redis://`, `sqlite:///`): see
`side.py`; so do canvas continuations on their way to RabbitMQ (`canvas.py`).

Claiming: a claim that may wait starts a consumer on each queue with the claim's limit
as its prefetch (`worker_prefetch_multiplier`), and keeps it, so RabbitMQ streams
messages without a round trip each; what it pushed is handed out in the caller's queue
order, everything already pushed taken in one claim. A claim that must not wait takes
ready messages with `basic.get`, queue by queue in order, when nothing was pushed. A
give-back (nack, release, warm stop) cancels the consumers first and returns what they
had prefetched too, so RabbitMQ hands it all to another node at once rather than
straight back to this one.

Delivery counts are RabbitMQ's (`x-delivery-count` of a quorum queue). It counts every
return, a warm stop's give-back included, not only begun deliveries as the Redis store
does; a message returned `max_deliveries` times is dead-lettered at its next claim.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import amqp

import qmulti.brokers.amqp.inspection as inspection
import qmulti.brokers.amqp.topology as topology
from qmulti.brokers.amqp.canvas import AmqpCanvas
from qmulti.brokers.amqp.consume import OWNERS, AmqpConsuming
from qmulti.brokers.amqp.control import AmqpControl
from qmulti.brokers.amqp.events import AmqpEvents
from qmulti.brokers.amqp.handover import AmqpHandover, consumer_timeout, held_queue
from qmulti.brokers.amqp.link import AmqpLink
from qmulti.brokers.amqp.messages import ETA, Held, publish, send_to_dead
from qmulti.brokers.amqp.side import SideStore
from qmulti.brokers.amqp.url import parse_amqp_url
from qmulti.brokers.base import (
    DEFAULT_HEARTBEAT_EXPIRY,
    DEFAULT_MAX_DELIVERIES,
    KEEP_REAPS,
    LOST,
    OK,
    REVOKED_MARK,
    Broker,
    BrokerStats,
    Continuation,
    DeadLetter,
    Delivery,
    ResultBackend,
)


class AmqpBroker(AmqpConsuming, AmqpHandover, AmqpControl, AmqpEvents, AmqpCanvas, Broker):
    """RabbitMQ broker for one process (and its threads, under the link's lock)."""

    node_reads_leases = False  # each child's channel holds its own

    def __init__(self, url: str, max_deliveries: int | None = DEFAULT_MAX_DELIVERIES,
                 result_backend: str | None = None, heartbeat: float | None = None,
                 transport_options: Mapping[str, Any] | None = None,
                 **options: Any) -> None:
        self.url = url
        self.max_deliveries = int(max_deliveries or DEFAULT_MAX_DELIVERIES)
        transport = dict(transport_options or {})
        self.queue_type = str(transport.get("queue_type", "quorum"))
        connect_timeout = (options.get("connect_timeout")
                           or options.get("broker_connection_timeout"))
        self.target = parse_amqp_url(url)
        self.link = AmqpLink(self.target, heartbeat, connect_timeout,
                             options.get("socket_timeout"))
        self.link.resets.append(self._on_reset)
        self.side = SideStore(result_backend, options)
        self.reply_to: str | None = None  # set by an rpc:// backend of this process
        self.before_publish: list[Callable[[Any], None]] = []  # its reply queue's listener
        self._declared: set[str] = set()  # declared on this connection (as _ladder)
        self._ladder = topology.Ladder()
        self._held: dict[str, Held] = {}  # token -> lease
        self._inbox: list[tuple[str, Any]] = []  # (queue, message) from a blocking claim
        self._consumers: dict[str, str] = {}  # consumer tag -> queue
        self._consuming: tuple[tuple[str, ...], int] | None = None  # (queues, prefetch)
        # Long tasks (handover.py): a lease this old moves to the side store.
        self.hand_over_after = consumer_timeout(transport) / 2.0
        self._handed: dict[str, Held] = {}  # token -> lease held in the side store now
        self._warned_no_side = False
        if self.hand_over_after > 0:
            self.link.ticks.append(self._hand_over_tick)
            self.link.tick_every = max(self.hand_over_after / 4.0, 0.2)

    def __repr__(self) -> str:
        return f"AmqpBroker({self.target.masked!r})"

    def _on_reset(self) -> None:
        """The channel is gone: its deliveries are back in their queues, not ours."""
        self._held.clear()
        self._inbox.clear()
        self._consumers.clear()
        self._consuming = None
        # A new connection may be to a server that lost them (a fresh data dir): anew.
        self._declared.clear()
        self._ladder = topology.Ladder()

    # -- declarations -------------------------------------------------------------------
    def _declare(self, chan: Any, queue: str) -> None:
        if queue in self._declared:
            return
        topology.declare_work_queue(chan, queue, self.max_deliveries, self.queue_type)
        self._declared.add(queue)

    # -- producing ----------------------------------------------------------------------
    def _message(self, mid: str, body: bytes, eta: float | None,
                 headers: Mapping[str, Any] | None = None) -> Any:
        props: dict[str, Any] = {"delivery_mode": 2, "message_id": mid,
                                 "content_type": "application/octet-stream"}
        head = dict(headers or {})
        if eta is not None:
            head[ETA] = repr(float(eta))
        if head:
            props["application_headers"] = head
        if self.reply_to:
            props["reply_to"] = self.reply_to
        return amqp.Message(body, **props)

    def _send(self, chan: Any, queue: str, msg: Any, eta: float | None) -> None:
        """Publish with a confirm: returns once RabbitMQ has the message."""
        self._declare(chan, queue)
        delay = 0.0 if eta is None else eta - time.time()
        if delay <= 0:
            publish(chan, msg, "", queue)
            return
        exchange, key = self._ladder.prepare(chan, queue, topology.delay_units(delay))
        publish(chan, msg, exchange, key)

    def publish(self, queue: str, mid: str, body: bytes, eta: float | None = None) -> None:
        def run(chan: Any) -> None:
            for hook in self.before_publish:
                hook(chan)
            self._send(chan, queue, self._message(mid, body, eta), eta)
        self.link.run(run)

    # -- fenced calls -------------------------------------------------------------------
    def held(self, delivery: Delivery) -> Held | None:
        """The lease, if it is still this channel's."""
        found = self._held.get(delivery.token)
        if found is None or not delivery.token.startswith(self.link.generation + ":"):
            return None
        return found

    def begin(self, delivery: Delivery) -> str:
        with self.link.lock:  # the hand-over tick gives back what is not begun
            if delivery.token in self._handed:
                return OK
            lease = self.held(delivery)
            if lease is None:
                return LOST
            lease.started = True  # from now on the hand-over keeps it
            return OK

    def _settle(self, deliveries: Sequence[Delivery], requeue: bool | None) -> str:
        def run(chan: Any) -> str:
            if requeue and self._consumers:
                # A give-back: stop the consumers first, or RabbitMQ would push the
                # messages straight back to us instead of to another node.
                self._cancel(chan)
            status = OK
            for d in deliveries:
                handed = self._handed.get(d.token)
                if handed is not None:
                    give_back = (lambda h=handed: self._republish_lease(chan, h)
                                 ) if requeue else None
                    if self._end_handed(handed, give_back) == LOST:
                        status = LOST
                    continue
                lease = self.held(d)
                if lease is None:
                    status = LOST
                    continue
                if requeue is None:
                    chan.basic_ack(lease.tag)
                else:
                    chan.basic_reject(lease.tag, requeue=requeue)
                del self._held[d.token]
            if requeue:
                for _, msg in self._inbox:  # prefetched, never handed out: back too
                    chan.basic_reject(msg.delivery_tag, requeue=True)
                self._inbox = []
            return status
        return self.link.run(run)

    def ack(self, deliveries: Sequence[Delivery]) -> str:
        return self._settle(deliveries, None)

    def nack(self, deliveries: Sequence[Delivery]) -> str:
        theirs: dict[str, list[Delivery]] = {}
        mine: list[Delivery] = []
        for d in deliveries:
            generation = d.token.rpartition(":")[0]
            owner = OWNERS.get(generation)
            if (owner is not None and owner is not self and d.token not in self._held
                    and d.token not in self._handed):
                theirs.setdefault(generation, []).append(d)
            else:
                mine.append(d)
        status = self._settle(mine, True) if mine else OK
        for generation, batch in theirs.items():
            owner = OWNERS.get(generation)
            if owner is None or owner.nack(batch) == LOST:
                status = LOST
        return status

    def dead_letter(self, delivery: Delivery, reason: str) -> str:
        def run(chan: Any) -> str:
            handed = self._handed.get(delivery.token)
            if handed is not None:
                return self._end_handed(handed, lambda: send_to_dead(
                    chan, delivery.queue, delivery.mid, delivery.body, reason))
            lease = self.held(delivery)
            if lease is None:
                return LOST
            send_to_dead(chan, delivery.queue, delivery.mid, delivery.body, reason)
            chan.basic_ack(lease.tag)
            del self._held[delivery.token]
            return OK
        return self.link.run(run)

    def reschedule(self, delivery: Delivery, queue: str, mid: str, body: bytes,
                   eta: float | None) -> str:
        def run(chan: Any) -> str:
            handed = self._handed.get(delivery.token)
            lease = self.held(delivery) if handed is None else handed
            if lease is None:
                return LOST
            msg = self._message(mid, body, eta)
            if lease.reply_to:
                msg.properties["reply_to"] = lease.reply_to
            if handed is not None:
                return self._end_handed(handed, lambda: self._send(chan, queue, msg, eta))
            self._send(chan, queue, msg, eta)
            chan.basic_ack(lease.tag)
            del self._held[delivery.token]
            return OK
        return self.link.run(run)

    # -- the result path: rpc:// sends results to the caller's reply queue -------------
    def start(self, delivery: Delivery, task_id: str, meta: bytes,
              backend: ResultBackend | None, ttl: float | None) -> str:
        from qmulti.brokers.amqp.rpc import RpcBackend

        if self.begin(delivery) == LOST:
            return LOST
        if isinstance(backend, RpcBackend):
            lease = self._held.get(delivery.token) or self._handed[delivery.token]
            backend.reply(lease.reply_to, task_id, "STARTED", meta)
            return OK
        if backend is not None and not backend.set_started(task_id, meta, ttl):
            return REVOKED_MARK  # revoke()'s mark, read in the same call as the write
        return OK

    def start_sees_revoked(self, backend: ResultBackend | None) -> bool:
        from qmulti.brokers.amqp.rpc import RpcBackend

        return (backend is not None and not isinstance(backend, RpcBackend)
                and backend.reads_mark_on_start())

    def finish(self, delivery: Delivery, task_id: str, state: str, meta: bytes | None,
               backend: ResultBackend | None, ttl: float | None,
               then: Continuation | None = None) -> str:
        from qmulti.brokers.amqp.rpc import RpcBackend

        if isinstance(backend, RpcBackend) and then is None:
            lease = self._held.get(delivery.token) or self._handed.get(delivery.token)
            if meta is not None and lease is not None:
                backend.reply(lease.reply_to, task_id, state, meta)
            return self.ack([delivery])
        return super().finish(delivery, task_id, state, meta, backend, ttl, then)

    def reply_to_of(self, task_id: str) -> str | None:
        """The reply queue of a task this process holds (for a backend.set by task id)."""
        for lease in (*self._held.values(), *self._handed.values()):
            if lease.delivery.mid == task_id and lease.reply_to:
                return lease.reply_to
        return None

    # -- nodes and leases ---------------------------------------------------------------
    def heartbeat(self, node_id: str, info: Mapping[str, Any]) -> int:
        self.side.heartbeat(node_id, info)
        return 0  # a live connection's leases are never taken: nothing to learn

    def release(self, node_id: str, consumer: str | None = None) -> int:
        mine = [h.delivery for h in (*self._held.values(), *self._handed.values())
                if h.node_id == node_id and consumer in (None, h.consumer)]
        if mine:
            self.nack(mine)
        count = len(mine) + self._release_handed(node_id, consumer)
        self.release_carriers(node_id, consumer)  # after: _release_handed counts its own
        return count

    def _release_handed(self, node_id: str, consumer: str | None) -> int:
        """A dead child's (or a stopping node's) leases in the side store: back to
        RabbitMQ (handover.py)."""
        store = self.side.store()
        if store is None or self.hand_over_after <= 0 or not store.release(node_id, consumer):
            return 0
        return self.relay_held(None if consumer is None else [held_queue(node_id, consumer)])

    def unregister(self, node_id: str) -> None:
        self.side.unregister(node_id)

    def requeue_dead_nodes(self, expiry: float = DEFAULT_HEARTBEAT_EXPIRY,
                           keep_reaps: float = KEEP_REAPS) -> int:
        reaped = self.side.forget_dead(expiry)
        # Dead nodes' long tasks, held in the side store; RabbitMQ gave the rest back
        # when their connections closed.
        moved = self.relay_held() if reaped and self.hand_over_after > 0 else 0
        self.relay_outbox()  # what a dead relay left, or a finish that died before it
        return moved

    # -- inspection (inspection.py) ----------------------------------------------------
    def stats(self) -> BrokerStats:
        return inspection.stats(self)

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        return inspection.dead_letters(self, limit)

    def purge(self, queue: str) -> int:
        def run(chan: Any) -> int:
            self._declare(chan, queue)
            return int(chan.queue_purge(queue) or 0)
        return self.link.run(run)

    # -- periodic tasks: the claim lives in the side store ------------------------------
    def clock(self) -> float:
        return self.side.clock()

    def beat_state(self) -> dict[str, float]:
        return self.side.beat_state(self.publish)

    def claim_tick(self, entry: str, due: float, queue: str, mid: str, body: bytes) -> bool:
        return self.side.claim_tick(entry, due, queue, mid, body, self.publish)

    def beat_forget(self, entries: Sequence[str]) -> None:
        self.side.beat_forget(entries)

    def close(self) -> None:
        self.link.close()
        self.side.close()
