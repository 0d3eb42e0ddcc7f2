"""Claiming on an amqp:// broker: a mixin of `AmqpBroker` (see its docstring).

A claim that may wait starts a consumer on each queue with the claim's limit as its
prefetch and keeps it; what RabbitMQ pushed is handed out in the caller's queue order.
RabbitMQ pushes the next message as each ack frees the window, so by the next claim
they are waiting in the socket: a claim reads everything already there (up to its
limit) without a round trip, and waits only when nothing is. A claim that must not
wait, with nothing pushed, takes ready messages with `basic.get` (a round trip each).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import qmulti.brokers.amqp.topology as topology
from qmulti.brokers.amqp.link import DRAIN_CHUNK
from qmulti.brokers.amqp.messages import ETA, Held, copy_message, send_to_dead
from qmulti.brokers.base import Delivery

if TYPE_CHECKING:
    from qmulti.brokers.amqp.link import AmqpLink

# Channel generation -> the broker holding its leases, in this process. A pool child
# gives back its prefetched messages from another thread with a broker instance of its
# own; RabbitMQ takes a nack only on the channel that received the message, so such a
# nack is passed to the instance that holds it (under that link's lock).
OWNERS: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()


class AmqpConsuming:
    """Mixin of `AmqpBroker`: the claim path."""

    link: AmqpLink
    max_deliveries: int
    _held: dict[str, Held]
    _inbox: list[tuple[str, Any]]
    _consumers: dict[str, str]
    _consuming: tuple[tuple[str, ...], int] | None

    def _declare(self, chan: Any, queue: str) -> None:
        raise NotImplementedError

    def _send(self, chan: Any, queue: str, msg: Any, eta: float | None) -> None:
        raise NotImplementedError

    # -- consuming ----------------------------------------------------------------------
    def claim(self, queues: Sequence[str], node_id: str, consumer: str, limit: int,
              timeout: float) -> list[Delivery]:
        if not queues or limit <= 0:
            return []
        deadline = time.monotonic() + max(timeout, 0.0)
        want = (tuple(queues), limit)

        def enough() -> bool:
            return len(self._inbox) >= limit

        def first(chan: Any) -> list[Delivery]:
            if self._consumers and self._consuming != want:
                self._cancel(chan)  # another queue list or prefetch: consumers anew
            if timeout > 0:
                self._consume(chan, queues, limit)
            if self._consumers:
                self.link.drain_ready(enough)  # pushed since the last claim
            out = self._take(chan, queues, node_id, consumer, limit)
            if out or timeout > 0:
                return out
            return self._get(chan, queues, node_id, consumer, limit)

        out = self.link.run(first)
        while not out:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self.link.run(lambda chan: self._consume(chan, queues, limit))
            self.link.drain(min(remaining, DRAIN_CHUNK), enough)
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
        OWNERS[self.link.generation] = self
        delivery = Delivery(mid, queue, body, count, token)
        self._held[token] = Held(delivery, node_id, consumer, msg.delivery_tag,
                                 msg.properties.get("reply_to"))
        out.append(delivery)
