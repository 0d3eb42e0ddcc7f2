"""The message shapes of the amqp:// broker: a lease as this process holds it, a copy
sent round the delay ladder again, and a dead letter with its reason."""

from __future__ import annotations

import time
from typing import Any

import amqp

import qmulti.brokers.amqp.topology as topology
from qmulti.brokers.base import Delivery
from qmulti.exceptions import BrokerError

ETA = "x-qmulti-eta"  # the eta, so a delay longer than the ladder goes round again
REASON = "x-qmulti-reason"
ORIGIN = "x-qmulti-queue"


class Held:
    """What this process knows of one of its leases."""

    __slots__ = ("delivery", "node_id", "consumer", "tag", "reply_to", "since", "started",
                 "side")

    def __init__(self, delivery: Delivery, node_id: str, consumer: str, tag: int,
                 reply_to: str | None) -> None:
        self.delivery, self.node_id, self.consumer = delivery, node_id, consumer
        self.tag, self.reply_to = tag, reply_to
        self.since = time.monotonic()  # RabbitMQ's consumer_timeout counts from delivery
        self.started = False  # begun: its task runs (see handover.py)
        self.side: Delivery | None = None  # its lease in the side store, once handed over


def copy_message(msg: Any, body: bytes) -> Any:
    props = {k: v for k, v in msg.properties.items() if k != "application_headers"}
    headers = {k: v for k, v in (msg.properties.get("application_headers") or {}).items()
               if not k.startswith("x-") or k.startswith("x-qmulti")}
    return amqp.Message(body, application_headers=headers, **props)

def send_to_dead(chan: Any, queue: str, mid: str, body: bytes, reason: str) -> None:
    msg = amqp.Message(body, delivery_mode=2, message_id=mid,
                       application_headers={REASON: reason, ORIGIN: queue,
                                            "x-qmulti-at": time.time()})
    publish(chan, msg, "", topology.dead_queue(queue))


def publish(chan: Any, msg: Any, exchange: str, key: str, tries: int = 3) -> None:
    """basic.publish, returning once confirmed. A nack (a quorum queue declared a moment
    ago may have no leader yet, or one is being elected) means RabbitMQ did not take the
    message, so it is sent again, a few times, before the caller hears of it."""
    for attempt in range(1, tries + 1):
        try:
            chan.basic_publish(msg, exchange=exchange, routing_key=key)
            return
        except amqp.exceptions.MessageNacked:
            if attempt == tries:
                raise BrokerError(f"RabbitMQ refused the message {tries} times (nack)"
                                  ) from None
            time.sleep(0.05 * attempt)
