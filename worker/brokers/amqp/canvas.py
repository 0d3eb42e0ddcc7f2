"""Canvas (chain, chord, link callbacks) on an amqp:// broker: through the side store.

A finish must ack its message and publish its continuations in one atomic step, once per
task; RabbitMQ and any other system cannot do that together. So the step happens in the
side store (`redis://` or `sqlite:///` as result backend, a full store with its own
atomic `ack_and_continue`), and RabbitMQ only follows:

1. A one-off *carrier* message is published to the side store and claimed under this
   node's id, and the side store's `ack_and_continue` acks it with the continuation
   rewritten so that every message (and a chord's body) goes to the side store's outbox
   (see `side.py`; the real queue and eta travel in the outbox message). That one script
   or transaction sets the task's "continued" marker, so only the first finish of a task
   sends anything, whatever delivery or re-run it is.
2. Only then is the RabbitMQ delivery acked. A crash before it: RabbitMQ delivers the
   message again, the task re-runs, and its finish finds the marker and sends nothing.
   (A long task's lease that the hand-over moved into the side store, `handover.py`,
   needs no carrier: it is acked with its continuation in that one step.)
3. The relay moves the outbox to RabbitMQ (confirmed publishes, the delay ladder for an
   eta) and acks it there. A relay that dies holds a lease under its own node record;
   when that expires any node's reaper gives it back and relays it again (each reaper
   tick relays what the outbox holds), so a continuation is never lost. It is sent twice
   only if a relay dies between RabbitMQ's confirm and its ack in the side store.

Carriers share one queue: any carrier serves as any process's fence, so one left by a
process that died before using it (given back when its node releases that child's
leases, or when the node's record expires) is used up by the next finish.

With `rpc://` only there is no side store: the producer refuses a canvas with a one-line
error (`check_canvas`). Celery sends chains and links over rpc:// anyway, at least once
at best; we will not promise exactly once where we cannot keep it. A message from
another producer that still carries a continuation gets it at least once (published,
then acked) with one warning per process; a chord cannot be counted without a store.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from qmulti.brokers.amqp.events import NoSideStore
from qmulti.brokers.amqp.side import OUTBOX, outbox_body
from qmulti.brokers.base import LOST, OK, Continuation, Delivery, Message
from qmulti.exceptions import BrokerError
from qmulti.protocol import new_id

if TYPE_CHECKING:
    from qmulti.brokers.amqp.messages import Held
    from qmulti.brokers.amqp.side import SideStore
    from qmulti.brokers.base import Broker

log = logging.getLogger("qmulti.brokers.amqp")

CARRIER = "qmulti.amqp.carrier"
NO_CANVAS = ("canvas (chain, chord, link callbacks) on an amqp:// broker needs "
             "result_backend redis://... or sqlite:///path (rpc:// keeps nothing that can "
             "send a task's next step exactly once)")
_CARRIER_TRIES = 5


def to_outbox(m: Message) -> Message:
    """`m` as the side store holds it until the relay sends it: ready at once."""
    return Message(OUTBOX, m.mid, outbox_body(m.queue, m.body, m.eta))


def via_outbox(then: Continuation) -> Continuation:
    chord = then.chord
    return replace(then, messages=tuple(to_outbox(m) for m in then.messages),
                   chord=None if chord is None else replace(chord, queue=OUTBOX))


class AmqpCanvas:
    """Mixin of `AmqpBroker`: `check_canvas`, `ack_and_continue`, `chord_init`, and the
    outbox relay."""

    side: SideStore
    link: Any
    _handed: dict[str, Held]
    _warned_direct = False

    def held(self, delivery: Delivery) -> Held | None:
        raise NotImplementedError

    def ack(self, deliveries: Sequence[Delivery]) -> str:
        raise NotImplementedError

    def publish(self, queue: str, mid: str, body: bytes, eta: float | None = None) -> None:
        raise NotImplementedError

    def _message(self, mid: str, body: bytes, eta: float | None) -> Any:
        raise NotImplementedError

    def _send(self, chan: Any, queue: str, msg: Any, eta: float | None) -> None:
        raise NotImplementedError

    def check_canvas(self) -> None:
        """Called by the producer before it sends anything of a canvas."""
        if self.side.store() is None:
            raise NoSideStore(NO_CANVAS)

    def chord_init(self, chord_id: str, size: int, body: Message,
                   ttl: float | None = None) -> None:
        store = self.side.store()
        if store is None:
            raise NoSideStore(NO_CANVAS)
        store.chord_init(chord_id, size, to_outbox(body), ttl)

    def ack_and_continue(self, delivery: Delivery, state: str, then: Continuation,
                         ttl: float | None) -> str:
        # A long task's lease that the hand-over moved into the side store (it moves
        # from _held to _handed, never back, and only this thread settles it): that
        # lease is acked with the continuation in the side store's own atomic step.
        handed = self._handed.get(delivery.token)
        store = self.side.store()
        if handed is not None and handed.side is not None and store is not None:
            outcome = store.ack_and_continue(handed.side, state, via_outbox(then), ttl)
            with self.link.lock:
                self._handed.pop(delivery.token, None)
            self.relay_outbox(quiet=True)
            return outcome
        lease = self.held(delivery)
        if lease is None:
            # Back in RabbitMQ (this channel is gone): whoever runs it again sends `then`.
            return LOST
        if store is None:
            return self._continue_directly(delivery, lease, then)
        outbound = via_outbox(then)
        for _ in range(_CARRIER_TRIES):
            carrier = self._carrier(store, lease)
            if store.ack_and_continue(carrier, state, outbound, ttl) == OK:
                break
            # The carrier's lease was taken back in between (the side store judged this
            # node dead): nothing was sent; another carrier, then.
        else:
            raise BrokerError(f"the side store took back {_CARRIER_TRIES} carrier leases in "
                              "a row; is this node's heartbeat reaching it?")
        # LOST: it runs again, and its finish finds the marker and sends nothing; what
        # this one sent is in the outbox all the same.
        outcome = self.ack([delivery])
        self.relay_outbox(quiet=True)
        return outcome

    def _carrier(self, store: Broker, lease: Held) -> Delivery:
        """A leased carrier of the side store, under this node's id (whose heartbeat is
        the side store's too), so that a carrier left by a dead node goes back."""
        consumer = f"carrier:{lease.consumer}"
        for _ in range(_CARRIER_TRIES):
            store.publish(CARRIER, new_id(), b"carrier")
            # Two: a carrier left over (its claimer died) is used up with this one, or
            # the queue would keep it for ever (each finish adds one and takes one).
            got = store.claim([CARRIER], lease.node_id, consumer, 2, 0)
            if got:
                if len(got) > 1:
                    store.ack(got[1:])
                return got[0]
        raise BrokerError("the side store returned no carrier to claim")

    def release_carriers(self, node_id: str, consumer: str | None) -> None:
        """Give back the carriers a dead consumer (or the stopping node) held: a child
        KILLed between claiming one and using it. Fenced, so a carrier of a live
        consumer taken by mistake only makes its finish take another."""
        store = self.side.store()
        if store is None:
            return
        try:
            store.release(node_id, None if consumer is None else f"carrier:{consumer}")
        except Exception as exc:  # they go back when the node's record expires
            log.debug("could not give back the carriers of %s: %s", consumer, exc)

    def relay_outbox(self, quiet: bool = False) -> int:
        """Send what the side store's outbox holds to RabbitMQ. `quiet`: a failure is
        logged, not raised (the message stays in the outbox for the next relay)."""
        if self.side.store() is None:
            return 0
        try:
            return self.side.relay(self.publish)
        except Exception as exc:
            if not quiet:
                raise
            log.warning("outbox relay to RabbitMQ failed (%s); the next relay sends it", exc)
            return 0

    def _continue_directly(self, delivery: Delivery, lease: Held, then: Continuation) -> str:
        """rpc:// only, a message from another producer: at least once, as Celery."""
        if not AmqpCanvas._warned_direct:
            AmqpCanvas._warned_direct = True
            log.warning("a task's continuations (chain, links) are sent at least once, not "
                        "exactly once: %s", NO_CANVAS)
        if then.chord is not None:
            log.error("task %s is a chord member, which cannot be counted: %s", then.key,
                      NO_CANVAS)

        def run(chan: Any) -> None:
            for m in then.messages:
                msg = self._message(m.mid, m.body, m.eta)
                if lease.reply_to:
                    msg.properties["reply_to"] = lease.reply_to
                self._send(chan, m.queue, msg, m.eta)
        self.link.run(run)
        return self.ack([delivery])
