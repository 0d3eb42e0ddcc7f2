"""`amqp://` (also `pyamqp://`, `amqps://`): RabbitMQ as the broker, over py-amqp.

A lease is an unacked delivery on this process's channel; its token is the channel's
generation and the delivery tag. RabbitMQ gives a channel's unacked messages back the
moment its connection closes, so a KILLed node or child loses nothing and needs no
heartbeat expiry: `requeue_dead_nodes` has no leases to take back, and `heartbeat`
never reports the node judged dead (its leases cannot be taken while its connection
lives). What RabbitMQ cannot hold (node records for `qmulti status`, beat's tick claims)
lives in the result backend when that is a store (`redis://`, `sqlite:///`): see
`side.py`.

Claiming: a claim that may wait starts a consumer on each queue with the claim's limit
as its prefetch (`worker_prefetch_multiplier`), and keeps it, so RabbitMQ streams
messages without a round trip each; what it pushed is handed out in the caller's queue
order. A claim that must not wait (and the first one) takes ready messages with
`basic.get`, queue by queue in order. A give-back (nack, release, warm stop) cancels the
consumers first and returns what they had prefetched too, so RabbitMQ hands it all to
another node at once rather than straight back to this one.

Delivery counts are RabbitMQ's (`x-delivery-count` of a quorum queue). It counts every
return, a warm stop's give-back included, not only begun deliveries as the Redis store
does; a message returned `max_deliveries` times is dead-lettered at its next claim.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import amqp

import qmulti.brokers.amqp.inspection as inspection
import qmulti.brokers.amqp.topology as topology
from qmulti.brokers.amqp.control import AmqpControl
from qmulti.brokers.amqp.link import DRAIN_CHUNK, AmqpLink
from qmulti.brokers.amqp.messages import ETA, Held, copy_message, publish, send_to_dead
from qmulti.brokers.amqp.side import SideStore
from qmulti.brokers.amqp.url import parse_amqp_url
from qmulti.brokers.base import (
    DEFAULT_HEARTBEAT_EXPIRY,
    DEFAULT_MAX_DELIVERIES,
    KEEP_REAPS,
    LOST,
    OK,
    Broker,
    BrokerStats,
    Continuation,
    DeadLetter,
    Delivery,
    ResultBackend,
)

# Channel generation -> the broker holding its leases, in this process. A pool child
# gives back its prefetched messages from another thread with a broker instance of its
# own; RabbitMQ takes a nack only on the channel that received the message, so such a
# nack is passed to the instance that holds it (under that link's lock).
_OWNERS: weakref.WeakValueDictionary[str, AmqpBroker] = weakref.WeakValueDictionary()


class AmqpBroker(AmqpControl, Broker):
    """RabbitMQ broker for one process (and its threads, under the link's lock)."""

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

    # -- consuming ----------------------------------------------------------------------
    def claim(self, queues: Sequence[str], node_id: str, consumer: str, limit: int,
              timeout: float) -> list[Delivery]:
        if not queues or limit <= 0:
            return []
        deadline = time.monotonic() + max(timeout, 0.0)
        want = (tuple(queues), limit)

        def first(chan: Any) -> list[Delivery]:
            if self._consumers and self._consuming != want:
                self._cancel(chan)  # another queue list or prefetch: consumers anew
            out = self._take(chan, queues, node_id, consumer, limit)
            return out or self._get(chan, queues, node_id, consumer, limit)

        out = self.link.run(first)
        while not out:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self.link.run(lambda chan: self._consume(chan, queues, limit))
            self.link.drain(min(remaining, DRAIN_CHUNK))
            out = self.link.run(lambda chan: self._take(chan, queues, node_id, consumer, limit))
        return out

    def _consume(self, chan: Any, queues: Sequence[str], limit: int) -> None:
        if self._consumers:
            return
        chan.basic_qos(0, limit, False)
        for queue in queues:
            self._declare(chan, queue)
            tag = chan.basic_consume(queue, callback=lambda msg, q=queue: self._inbox.append(
                (q, msg)))
            self._consumers[tag] = queue
        self._consuming = (tuple(queues), limit)

    def _cancel(self, chan: Any) -> None:
        """Stop the consumers; after each cancel-ok nothing more arrives for it."""
        for tag in list(self._consumers):
            chan.basic_cancel(tag)
            del self._consumers[tag]
        self._consuming = None

    def _take(self, chan: Any, queues: Sequence[str], node_id: str, consumer: str,
              limit: int) -> list[Delivery]:
        """What the consumers pushed, in the caller's queue order; a message of a queue
        the caller no longer reads goes straight back."""
        out: list[Delivery] = []
        order = {q: i for i, q in enumerate(queues)}
        inbox = sorted(self._inbox, key=lambda item: order.get(item[0], len(order)))
        self._inbox = []
        for queue, msg in inbox:
            if queue not in order:
                chan.basic_reject(msg.delivery_tag, requeue=True)
            elif len(out) < limit:
                self._accept(chan, queue, msg, node_id, consumer, out)
            else:
                self._inbox.append((queue, msg))  # still prefetched: the next claim's
        return out

    def _get(self, chan: Any, queues: Sequence[str], node_id: str, consumer: str,
             limit: int) -> list[Delivery]:
        """basic.get, queue by queue in order: a claim that must not wait, or the first
        claim before the consumers exist."""
        out: list[Delivery] = []
        for queue in queues:
            self._declare(chan, queue)
            while len(out) < limit:
                msg = chan.basic_get(queue, no_ack=False)
                if msg is None:
                    break
                self._accept(chan, queue, msg, node_id, consumer, out)
        return out

    def _accept(self, chan: Any, queue: str, msg: Any, node_id: str, consumer: str,
                out: list[Delivery]) -> None:
        headers = msg.properties.get("application_headers") or {}
        count = int(headers.get("x-delivery-count") or 0)
        mid = str(msg.properties.get("message_id") or "")
        body = bytes(msg.body) if not isinstance(msg.body, str) else msg.body.encode()
        if count >= self.max_deliveries:
            why = f"delivered {count} times without an outcome (max_deliveries)"
            send_to_dead(chan, queue, mid, body, why)
            chan.basic_ack(msg.delivery_tag)
            return
        eta = headers.get(ETA)
        if eta is not None and float(eta) - time.time() > topology.UNIT:
            # Past the ladder's longest delay: round again, then it is no longer ours.
            self._send(chan, queue, copy_message(msg, body), float(eta))
            chan.basic_ack(msg.delivery_tag)
            return
        token = f"{self.link.generation}:{msg.delivery_tag}"
        _OWNERS[self.link.generation] = self
        delivery = Delivery(mid, queue, body, count, token)
        self._held[token] = Held(delivery, node_id, consumer, msg.delivery_tag,
                                 msg.properties.get("reply_to"))
        out.append(delivery)

    # -- fenced calls -------------------------------------------------------------------
    def held(self, delivery: Delivery) -> Held | None:
        """The lease, if it is still this channel's."""
        found = self._held.get(delivery.token)
        if found is None or not delivery.token.startswith(self.link.generation + ":"):
            return None
        return found

    def begin(self, delivery: Delivery) -> str:
        return OK if self.held(delivery) is not None else LOST

    def _settle(self, deliveries: Sequence[Delivery], requeue: bool | None) -> str:
        def run(chan: Any) -> str:
            if requeue and self._consumers:
                # A give-back: stop the consumers first, or RabbitMQ would push the
                # messages straight back to us instead of to another node.
                self._cancel(chan)
            status = OK
            for d in deliveries:
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
            owner = _OWNERS.get(generation)
            if owner is not None and owner is not self and d.token not in self._held:
                theirs.setdefault(generation, []).append(d)
            else:
                mine.append(d)
        status = self._settle(mine, True) if mine else OK
        for generation, batch in theirs.items():
            owner = _OWNERS.get(generation)
            if owner is None or owner.nack(batch) == LOST:
                status = LOST
        return status

    def dead_letter(self, delivery: Delivery, reason: str) -> str:
        def run(chan: Any) -> str:
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
            lease = self.held(delivery)
            if lease is None:
                return LOST
            msg = self._message(mid, body, eta)
            if lease.reply_to:
                msg.properties["reply_to"] = lease.reply_to
            self._send(chan, queue, msg, eta)
            chan.basic_ack(lease.tag)
            del self._held[delivery.token]
            return OK
        return self.link.run(run)

    # -- the result path: rpc:// sends results to the caller's reply queue -------------
    def start(self, delivery: Delivery, task_id: str, meta: bytes,
              backend: ResultBackend | None, ttl: float | None) -> str:
        from qmulti.brokers.amqp.rpc import RpcBackend

        if isinstance(backend, RpcBackend):
            lease = self.held(delivery)
            if lease is None:
                return LOST
            backend.reply(lease.reply_to, task_id, "STARTED", meta)
            return OK
        return super().start(delivery, task_id, meta, backend, ttl)

    def finish(self, delivery: Delivery, task_id: str, state: str, meta: bytes | None,
               backend: ResultBackend | None, ttl: float | None,
               then: Continuation | None = None) -> str:
        from qmulti.brokers.amqp.rpc import RpcBackend

        if isinstance(backend, RpcBackend) and then is None:
            lease = self._held.get(delivery.token)
            if meta is not None and lease is not None:
                backend.reply(lease.reply_to, task_id, state, meta)
            return self.ack([delivery])
        return super().finish(delivery, task_id, state, meta, backend, ttl, then)

    def reply_to_of(self, task_id: str) -> str | None:
        """The reply queue of a task this process holds (for a backend.set by task id)."""
        for lease in self._held.values():
            if lease.delivery.mid == task_id and lease.reply_to:
                return lease.reply_to
        return None

    # -- nodes and leases ---------------------------------------------------------------
    def heartbeat(self, node_id: str, info: Mapping[str, Any]) -> int:
        self.side.heartbeat(node_id, info)
        return 0  # a live connection's leases are never taken: nothing to learn

    def release(self, node_id: str, consumer: str | None = None) -> int:
        mine = [h.delivery for h in self._held.values()
                if h.node_id == node_id and consumer in (None, h.consumer)]
        if mine:
            self.nack(mine)
        return len(mine)

    def unregister(self, node_id: str) -> None:
        self.side.unregister(node_id)

    def requeue_dead_nodes(self, expiry: float = DEFAULT_HEARTBEAT_EXPIRY,
                           keep_reaps: float = KEEP_REAPS) -> int:
        self.side.forget_dead(expiry)
        return 0  # RabbitMQ gave their messages back when their connections closed

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
