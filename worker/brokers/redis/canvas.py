"""The canvas half of the Redis store: a finish that also sends the task's continuations.

One `finish.lua` call stores the result, acks the message, and (when the ack succeeds,
the first time for this task) publishes the next chain step and link callbacks and adds
the task to its chord's set of finished members; the member that completes the set
publishes the body in that same script. The script is given every key it touches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qmulti.brokers.base import (
    FIRES_AT_ONCE,
    LOST,
    OK,
    Continuation,
    Delivery,
    Message,
    marker_ttl,
)
from qmulti.brokers.redis.durable import Durability, confirm_writes, waited
from qmulti.brokers.redis.keys import (
    QueueKeys,
    chord_keys,
    continued_key,
    notify_key,
    result_key,
)
from qmulti.states import READY_STATES


def ttl_ms(ttl: float | None) -> str:
    """Celery's meaning: None or 0 keeps the result until forgotten."""
    if ttl is None or ttl <= 0:
        return "0"
    return str(max(1, int(ttl * 1000)))


def eta_arg(eta: float | None) -> str:
    return "" if eta is None else repr(float(eta))


class RedisCanvas:
    """Mixin of RedisStore: `ack_and_continue`, `chord_init`, `get_many`."""

    _link: Any
    _durability: Durability

    def _queue(self, queue: str) -> QueueKeys:
        raise NotImplementedError

    def _forget_held(self, mids: Sequence[str]) -> None:
        raise NotImplementedError

    def _finish_then(self, delivery: Delivery, task_id: str, state: str, meta: bytes,
                     result_ms: str, notify_ms: str, then: Continuation,
                     marker: float) -> str:
        k = self._queue(delivery.queue)
        groups: dict[str, int] = {}
        argv: list[Any] = []
        for m in then.messages:
            q = groups.setdefault(m.queue, len(groups) + 1)
            argv += [q, m.mid, m.body, eta_arg(m.eta)]
        part = then.chord
        chord_id = part.chord_id if part is not None else then.key
        body_q = groups.setdefault(part.queue, len(groups) + 1) if part is not None else 0
        keys: list[str] = [k.msgs, k.deliveries, k.leased, result_key(task_id),
                           notify_key(task_id), continued_key(then.key), *chord_keys(chord_id)]
        for queue in groups:
            qk = self._queue(queue)
            keys += [qk.msgs, qk.ready, qk.scheduled, qk.wake]
        head = [delivery.mid, delivery.token, state, meta, result_ms,
                "1" if state in READY_STATES else "0", notify_ms, ttl_ms(marker),
                part.member if part is not None else "", body_q,
                "1" if state in FIRES_AT_ONCE else "0"]
        # Under wait_replicas the WAIT rides in the same round trip, as for a plain finish.
        acked = waited(self._link, self._durability, "finish", keys, head + argv)
        self._forget_held([delivery.mid])
        return OK if acked else LOST

    def ack_and_continue(self, delivery: Delivery, state: str, then: Continuation,
                         ttl: float | None) -> str:
        """The result is stored elsewhere (or not at all): ack and continue only."""
        return self._finish_then(delivery, then.key, state, b"", "0", "1", then,
                                 marker_ttl(ttl))

    def chord_init(self, chord_id: str, size: int, body: Message,
                   ttl: float | None = None) -> None:
        self._queue(body.queue)
        self._link.script("chord_init", (chord_keys(chord_id)[0],),
                          (int(size), body.mid, body.body, eta_arg(body.eta), ttl_ms(ttl)))

    def publish_many(self, messages: Sequence[Message]) -> None:
        """Many publishes (a chord's header) pipelined: each is its own atomic script."""
        for i in range(0, len(messages), 1000):
            commands = []
            for m in messages[i:i + 1000]:
                k = self._queue(m.queue)
                commands.append(self._link.eval_command(
                    "publish", (k.msgs, k.ready, k.scheduled, k.wake),
                    (m.mid, m.body, eta_arg(m.eta))))
            self._link.pipeline(commands)
        if self._durability.replicas:  # one WAIT covers every write before it
            confirm_writes(self._link, self._durability, f"{len(messages)} message(s)")

    def get_many(self, task_ids: Sequence[str]) -> list[bytes | None]:
        out: list[bytes | None] = []
        ids = list(task_ids)
        for i in range(0, len(ids), 1000):
            commands = [("GET", result_key(t)) for t in ids[i:i + 1000]]
            for value in self._link.pipeline(commands):
                out.append(None if value is None else value.partition(b"\n")[2])
        return out
