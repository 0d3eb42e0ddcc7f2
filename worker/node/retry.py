"""The broker calls a consumer re-sends while the broker is unreachable, and only those.

A reply lost on the wire leaves the caller unsure whether its call ran, so only calls
that are idempotent may be re-sent: a read (`get`), a result write (`set`: the same
document twice, and a final state is never replaced), and the fenced calls on a leased
message (`start`, `finish`, `ack`, `nack`, `reschedule`, `dead_letter`), which act under
the lease's token once and find nothing left to do the second time. Nothing else is
retried here (`claim` has its own recovery in each store).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from qmulti.brokers.base import LOST
from qmulti.exceptions import BrokerConnectionError

T = TypeVar("T")
# How long a child keeps retrying to store an outcome while the broker is unreachable
# before it gives up (exits; the node releases the lease and the task runs again).
STORE_PATIENCE = 60.0


class GaveUp(BrokerConnectionError):
    """The broker stayed unreachable for STORE_PATIENCE: the consumer leaves (one log
    line, no traceback) and its lease goes back when its node releases or expires it."""


def retrying(rt: Any, call: Callable[[], T]) -> T:
    """Re-send an idempotent broker call while the broker is unreachable, with capped
    backoff; one warning for the outage, not one per try."""
    log: logging.Logger = rt.log
    deadline = time.monotonic() + STORE_PATIENCE
    delay = 0.1
    tries = 0
    while True:
        try:
            return call()
        except BrokerConnectionError as exc:
            tries += 1
            if time.monotonic() >= deadline:
                raise GaveUp(f"broker unreachable for {STORE_PATIENCE:g}s ({exc}); giving up "
                             "(the task goes back to the queue)") from None
            level = logging.WARNING if tries == 1 else logging.DEBUG
            log.log(level, "Broker unreachable (%s); retrying for up to %gs", exc,
                    STORE_PATIENCE)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def settle(rt: Any, what: str, call: Callable[[], str]) -> str:
    """A fenced call that ends a delivery (finish, ack, nack, reschedule, dead-letter),
    re-sent as `retrying` does. LOST on the first try means the lease was taken back
    while the task ran (this node was judged dead): another node has the message now,
    and a final result stored first stands. LOST after a re-send usually means the first
    try did the work and only its reply was lost."""
    attempts = 0

    def counted() -> str:
        nonlocal attempts
        attempts += 1
        return call()

    outcome = retrying(rt, counted)
    if outcome == LOST and attempts == 1:
        rt.log.warning("%s: its lease was taken back while it ran (this node was judged "
                       "dead); the message is another node's now, and the first final "
                       "result stored stands", what)
    return outcome
