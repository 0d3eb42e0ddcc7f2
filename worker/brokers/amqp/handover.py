"""Long tasks on RabbitMQ: hand a delivery held too long over to the side store.

RabbitMQ closes a channel whose oldest unacked delivery is older than the server's
`consumer_timeout` (30 min by default; 3.10 has no per-queue `x-consumer-timeout`), and
every delivery of that channel goes back to its queue: an hour-long task would run
again elsewhere while it still runs here, and a node holding prefetched messages behind
a long task would lose them all. The node cannot stop the clock, but it can stop
holding the delivery. So, from the link's heartbeat thread (the only thread awake while
a pool child runs its task), once a lease is older than half the timeout:

- its unstarted company (prefetched, pushed) goes back to RabbitMQ at once, after the
  consumers are cancelled, so another node runs it instead of it waiting here;
- a started lease moves into the side store (the result backend when it is Redis or
  SQLite): published into a queue of its consumer's own there and claimed under this
  node's id, and only then acked on RabbitMQ. From then on that side-store lease is the
  task's lease: the finish acks it there, a retry or give-back publishes to RabbitMQ
  and then acks it. It lives while the node heartbeats (the node records are in the
  same store), so a KILLed child's lease goes back when the node's main process releases
  the child, and a dead node's when its record expires; either way `relay_held` then
  moves it back to RabbitMQ. A crash between the side-store claim and the RabbitMQ ack
  leaves both copies: the task may run once more, never zero times.

Without a side store (`rpc://` only) nothing can hold the lease: the node says so once,
with what to set, and RabbitMQ redelivers the task after its timeout, as under Celery.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from qmulti.brokers.amqp.messages import Held
from qmulti.brokers.base import Delivery

if TYPE_CHECKING:
    from qmulti.brokers.amqp.link import AmqpLink
    from qmulti.brokers.amqp.side import SideStore

log = logging.getLogger("qmulti")

HELD_PREFIX = "qmulti.amqp.held."
DEFAULT_CONSUMER_TIMEOUT = 1800.0  # RabbitMQ's own default, in seconds


def held_queue(node_id: str, consumer: str) -> str:
    """The side-store queue of one consumer's handed-over leases."""
    return f"{HELD_PREFIX}{node_id}.{consumer}"


def consumer_timeout(transport: Mapping[str, Any]) -> float:
    """`broker_transport_options={'consumer_timeout': seconds}`: the server's setting, which
    a client cannot read; 0 turns the hand-over off."""
    value = transport.get("consumer_timeout", DEFAULT_CONSUMER_TIMEOUT)
    return float(value or 0.0)


def _pack(held: Held) -> bytes:
    d = held.delivery
    head = {"queue": d.queue, "reply_to": held.reply_to, "deliveries": d.deliveries}
    return json.dumps(head).encode() + b"\n" + d.body


def _unpack(body: bytes) -> tuple[dict[str, Any], bytes]:
    head, _, rest = body.partition(b"\n")
    return json.loads(head), rest


class AmqpHandover:
    """Mixin of `AmqpBroker`: the hand-over, and the calls on a handed-over lease."""

    link: AmqpLink
    side: SideStore
    hand_over_after: float
    _held: dict[str, Held]
    _handed: dict[str, Held]
    _inbox: list[tuple[str, Any]]
    _consumers: dict[str, str]
    _warned_no_side: bool

    def _cancel(self, chan: Any) -> None:
        raise NotImplementedError

    def _message(self, mid: str, body: bytes, eta: float | None,
                 headers: Mapping[str, Any] | None = None) -> Any:
        raise NotImplementedError

    def _send(self, chan: Any, queue: str, msg: Any, eta: float | None) -> None:
        raise NotImplementedError

    # -- the heartbeat thread's tick (under the link's lock) ----------------------------
    def _hand_over_tick(self, chan: Any) -> None:
        now = time.monotonic()
        if not any(now - h.since >= self.hand_over_after for h in self._held.values()):
            return
        if self._consumers:
            self._cancel(chan)  # nothing more is pushed to a consumer that is busy
        for _, msg in self._inbox:
            chan.basic_reject(msg.delivery_tag, requeue=True)
        self._inbox = []
        store = self.side.store()
        for lease in list(self._held.values()):
            if not lease.started:
                chan.basic_reject(lease.tag, requeue=True)  # another node runs it now
                del self._held[lease.delivery.token]
            elif now - lease.since >= self.hand_over_after:
                if store is None:
                    self._warn_no_side(lease, now)
                else:
                    self._hand_over(chan, store, lease)

    def _hand_over(self, chan: Any, store: Any, lease: Held) -> None:
        d = lease.delivery
        queue = held_queue(lease.node_id, lease.consumer)
        store.publish(queue, d.mid, _pack(lease))
        mine: Delivery | None = None
        for got in store.claim([queue], lease.node_id, lease.consumer, 100, 0):
            if got.mid == d.mid and mine is None:
                mine = got
            else:  # an earlier incarnation's, returned: RabbitMQ's again
                self._send_back(chan, got)
                store.ack([got])
        if mine is None:
            log.warning("Task message %s: could not hold it in the side store; RabbitMQ "
                        "keeps it and may redeliver it after its consumer_timeout", d.mid)
            return
        chan.basic_ack(lease.tag)
        del self._held[d.token]
        lease.side = mine
        self._handed[d.token] = lease
        log.info("Task message %s has run %.0fs: its lease is now held in the result "
                 "backend (RabbitMQ's consumer_timeout would take it back)", d.mid,
                 time.monotonic() - lease.since)

    def _warn_no_side(self, lease: Held, now: float) -> None:
        if self._warned_no_side:
            return
        self._warned_no_side = True
        log.warning("Task message %s has run %.0fs; RabbitMQ will redeliver it after its "
                    "consumer_timeout (%.0fs) while it still runs here. Set result_backend "
                    "to redis://... or sqlite:///path so that the node can hold long tasks",
                    lease.delivery.mid, now - lease.since, self.hand_over_after * 2)

    # -- calls on a handed-over lease -----------------------------------------------------
    def _end_handed(self, lease: Held, send: Callable[[], None] | None = None) -> str:
        """End a handed-over lease: `send` what replaces its message on RabbitMQ (a
        give-back, a retry, a dead letter) first, then ack it in the side store, so a
        crash in between sends it twice, never loses it."""
        store = self.side.store()
        assert store is not None and lease.side is not None
        del self._handed[lease.delivery.token]
        if send is not None:
            send()
        return store.ack([lease.side])

    def _republish_lease(self, chan: Any, lease: Held) -> None:
        d = lease.delivery
        self._republish(chan, d.queue, d.mid, d.body, lease.reply_to)

    def _republish(self, chan: Any, queue: str, mid: str, body: bytes,
                   reply_to: str | None) -> None:
        msg = self._message(mid, body, None)
        if reply_to:
            msg.properties["reply_to"] = reply_to
        else:
            msg.properties.pop("reply_to", None)
        self._send(chan, queue, msg, None)

    # -- back to RabbitMQ: a released child's, a dead node's --------------------------------
    def _send_back(self, chan: Any, got: Delivery) -> None:
        """Publish a handed-over lease's message to its RabbitMQ queue again."""
        head, body = _unpack(got.body)
        self._republish(chan, str(head["queue"]), got.mid, body, head.get("reply_to"))

    def relay_held(self, queues: Sequence[str] | None = None) -> int:
        """Move the ready handed-over leases of `queues` (all that hold some, when None)
        back to RabbitMQ; returns how many."""
        store = self.side.store()
        if store is None:
            return 0
        if queues is None:
            queues = [q for q, n in store.stats().queues.items()
                      if q.startswith(HELD_PREFIX) and n]
        if not queues:
            return 0
        moved = self.side.move(
            queues, lambda got: self.link.run(lambda chan: self._send_back(chan, got)))
        if moved:
            log.warning("Gave %d long-running task(s) back to RabbitMQ: the node or child "
                        "that held them is gone", moved)
        return moved
