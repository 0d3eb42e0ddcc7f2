"""What qmulti declares on RabbitMQ: work queues, their dead-letter queues, the delay ladder.

Work queue `q`: a quorum queue (durable, replicated on a cluster) whose
`x-delivery-limit` is the poison limit; the server dead-letters a message returned more
often than that into `q.dead` (a durable classic queue, read only by people). The node
checks the count itself first, one delivery earlier, and records why.

Countdown/eta: a ladder of up to LEVELS quorum queues (each declared when a delay first
needs it, see `Ladder`), level k holding a message for exactly UNIT * 2**k seconds (a
queue-wide TTL, so the head is always the next to expire) and then dead-lettering it,
at-least-once, into the exchange of level k-1. A delay is written in binary in the
routing key, highest level first, then the target queue: `0.1.1.0...1.q`, and published
to the exchange of its highest set bit. Each level's topic exchange sends a key whose bit
is 1 into its queue and one whose bit is 0 straight on to the next level; level -1
(`qmulti.delay.deliver`) routes by the trailing queue name into the work queue. So a
delay costs one publish and at most LEVELS hops inside the broker, with no plugin and
nothing held by a node. Delays round up to UNIT, so a message is never early.
"""

from __future__ import annotations

import math
from typing import Any

UNIT = 1 / 32  # seconds: the ladder's resolution (a delay rounds up to it)
LEVELS = 28  # the longest ladder delay is UNIT * (2**LEVELS - 1), about 97 days
DELIVER = "qmulti.delay.deliver"


def dead_queue(queue: str) -> str:
    return f"{queue}.dead"


def level_name(k: int) -> str:
    return f"qmulti.delay.{k}" if k >= 0 else DELIVER


def longest_delay() -> float:
    return UNIT * (2**LEVELS - 1)


def delay_units(seconds: float) -> int:
    """A delay in ladder units, rounded up (never early), capped at the ladder's longest
    (the consumer sends a longer one round again)."""
    return min(max(math.ceil(seconds / UNIT), 1), 2**LEVELS - 1)


def delay_route(queue: str, units: int) -> tuple[str, str]:
    """(exchange, routing key) that delays a message by `units`: it enters at the level of
    its highest bit, since every level above would only pass it on."""
    bits = ".".join("1" if units >> k & 1 else "0" for k in range(LEVELS - 1, -1, -1))
    return level_name(units.bit_length() - 1), f"{bits}.{queue}"


def work_queue_arguments(max_deliveries: int, queue_type: str) -> dict[str, Any]:
    args: dict[str, Any] = {"x-dead-letter-exchange": "",
                            "x-dead-letter-routing-key": "", "x-queue-type": queue_type}
    if queue_type == "quorum":
        args["x-delivery-limit"] = max_deliveries
    return args


def declare_work_queue(chan: Any, queue: str, max_deliveries: int, queue_type: str) -> None:
    """The queue, its dead-letter queue, and its binding from the ladder's last exchange."""
    args = work_queue_arguments(max_deliveries, queue_type)
    args["x-dead-letter-routing-key"] = dead_queue(queue)
    chan.queue_declare(dead_queue(queue), durable=True, auto_delete=False)
    chan.queue_declare(queue, durable=True, auto_delete=False, arguments=args)


class Ladder:
    """What of the ladder this connection has declared, declared as delays first need it.

    Each rung is a quorum queue (a Raft group with its own log and processes): all 28 per
    vhost cost a busy server seconds to declare, and many vhosts of them wedged one. So a
    delay declares only the rungs of its set bits, and the exchanges from its highest bit
    down (cheap, and contiguous, so a message of any process always finds the next hop).
    A rung a message passes through holds it only if its bit is set, and the publisher of
    that message declared the rung first. Rungs stay quorum queues, not classic ones:
    only a quorum queue dead-letters at-least-once (it keeps an expired message until the
    next hop confirms it); a classic queue drops what is in flight when the server stops,
    so a restart would lose delayed tasks.
    """

    def __init__(self) -> None:
        self.top = -2  # the highest level whose exchange, and every one below, exists
        self.rungs: set[int] = set()
        self.bound: set[str] = set()  # work queues bound to the last exchange

    def prepare(self, chan: Any, queue: str, units: int) -> tuple[str, str]:
        """Declare what a delay of `units` into `queue` passes through; its route."""
        top = units.bit_length() - 1
        for k in range(self.top + 1, top + 1):
            chan.exchange_declare(level_name(k), "topic", durable=True, auto_delete=False)
            if k >= 0:
                skip = "*." * (LEVELS - 1 - k)
                chan.exchange_bind(level_name(k - 1), level_name(k), f"{skip}0.#")
        self.top = max(self.top, top)
        for k in range(top + 1):
            if units >> k & 1 and k not in self.rungs:
                declare_rung(chan, k)
                self.rungs.add(k)
        if queue not in self.bound:
            chan.queue_bind(queue, DELIVER, "*." * LEVELS + queue)
            self.bound.add(queue)
        return delay_route(queue, units)


def declare_rung(chan: Any, k: int) -> None:
    """Level k's queue: holds a message UNIT * 2**k seconds, then passes it down."""
    name = level_name(k)
    chan.queue_declare(name, durable=True, auto_delete=False, arguments={
        "x-queue-type": "quorum",
        "x-message-ttl": max(1, math.ceil(UNIT * 2**k * 1000)),
        "x-dead-letter-exchange": level_name(k - 1),
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    })
    chan.queue_bind(name, name, "*." * (LEVELS - 1 - k) + "1.#")
