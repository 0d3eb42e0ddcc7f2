"""Dead-letter retry and discard for `RedisStore` (see qmulti.brokers.deadletters):
each one Lua script on the queue's keys, so a retry moves the message exactly once."""

from __future__ import annotations

from typing import Any

from qmulti.brokers.deadletters import DeadLetterEntry
from qmulti.brokers.redis.keys import QueueKeys


class RedisDeadLetters:
    # RedisStore's: its connection, and its queue registry
    _link: Any
    _queue: Any
    _queues: Any

    def dead_letter_entries(self, limit: int = 100) -> list[DeadLetterEntry]:
        found = self.dead_letters(limit)  # type: ignore[attr-defined]
        stamps = self._link.pipeline(
            [("ZSCORE", QueueKeys.of(d.queue).dead, d.mid) for d in found]) if found else []
        return [DeadLetterEntry(d.mid, d.queue, d.reason, d.body,
                                None if at is None else float(at) / 1e6)
                for d, at in zip(found, stamps, strict=True)]

    def retry_dead_letter(self, queue: str, mid: str) -> bool:
        k = self._queue(queue)
        return bool(self._link.script(
            "dead_retry", (k.dead, k.dead_reason, k.dead_body, k.msgs, k.deliveries, k.ready,
                           k.wake), (mid,)))

    def discard_dead_letter(self, queue: str, mid: str) -> bool:
        k = QueueKeys.of(queue)
        return bool(self._link.script("dead_discard", (k.dead, k.dead_reason, k.dead_body),
                                      (mid,)))
