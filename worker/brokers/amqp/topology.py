"""What qmulti declares on RabbitMQ: work queues, their dead-letter queues, the delay ladder.

Work queue `q`: a quorum queue (durable, replicated on a cluster) whose
`x-delivery-limit` is the poison limit; the server dead-letters a message returned more
often than that into `q.dead` (a durable classic queue, read only by people). The node
checks the count itself first, one delivery earlier, and records why.

Countdown/eta: a ladder of LEVELS quorum queues, level k holding a message for exactly
UNIT * 2**k seconds (a queue-wide TTL, so the head is always the next to expire) and then
dead-lettering it, at-least-once, into the exchange of level k-1. A delay is written in
binary in the routing key, highest level first, then the target queue:
`0.1.1.0...1.q`. Each level's topic exchange sends a key whose bit is 1 into its queue
and one whose bit is 0 straight on to the next level; level -1 (`qmulti.delay.deliver`)
routes by the trailing queue name into the work queue. So a delay costs one publish and
at most LEVELS hops inside the broker, with no plugin and nothing held by a node. Delays
round up to UNIT, so a message is never early.
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


def delay_route(queue: str, seconds: float) -> tuple[str, str]:
    """(exchange, routing key) that delays a message by at least `seconds` (capped at the
    ladder's longest delay; the consumer sends a longer one round again)."""
    units = min(max(math.ceil(seconds / UNIT), 1), 2**LEVELS - 1)
    bits = ".".join("1" if units >> k & 1 else "0" for k in range(LEVELS - 1, -1, -1))
    return level_name(LEVELS - 1), f"{bits}.{queue}"


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


def bind_delivery(chan: Any, queue: str) -> None:
    chan.queue_bind(queue, DELIVER, "*." * LEVELS + queue)


def declare_ladder(chan: Any) -> None:
    """Every level, idempotently (re-declaring an existing queue or binding is a no-op)."""
    chan.exchange_declare(DELIVER, "topic", durable=True, auto_delete=False)
    for k in range(LEVELS):
        name = level_name(k)
        chan.exchange_declare(name, "topic", durable=True, auto_delete=False)
        chan.queue_declare(name, durable=True, auto_delete=False, arguments={
            "x-queue-type": "quorum",
            "x-message-ttl": max(1, math.ceil(UNIT * 2**k * 1000)),
            "x-dead-letter-exchange": level_name(k - 1),
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        })
        skip = "*." * (LEVELS - 1 - k)
        chan.queue_bind(name, name, f"{skip}1.#")
        chan.exchange_bind(level_name(k - 1), name, f"{skip}0.#")
