"""Dead-letter retry and discard for `RedisStore` (see qmulti.brokers.deadletters):
each one Lua script on the queue's keys, so a retry moves the message exactly once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qmulti.brokers.deadletters import DeadLetterEntry
from qmulti.brokers.redis.keys import QueueKeys


class RedisDeadLetters:
    # RedisStore's: its connection, and its queue registry
    _link: Any
    _queue: Any
    _queues: Any

    def dead_letter_entries(self, limit: int = 100) -> list[DeadLetterEntry]:
        queues = self._queues()
        if not queues or limit <= 0:
            return []
        listed = self._link.pipeline(
            [("ZRANGE", QueueKeys.of(q).dead, 0, limit - 1, "WITHSCORES") for q in queues])
        found = sorted((float(mids[i + 1]), q, mids[i].decode())
                       for q, mids in zip(queues, listed, strict=True)
                       for i in range(0, len(mids), 2))[:limit]
        commands: list[Sequence[Any]] = []
        for _, queue, mid in found:
            k = QueueKeys.of(queue)
            commands += [("HGET", k.dead_reason, mid), ("HGET", k.dead_body, mid)]
        details = self._link.pipeline(commands) if commands else []
        return [DeadLetterEntry(mid, queue, (details[2 * i] or b"").decode(),
                                details[2 * i + 1] or b"", at / 1e6)
                for i, (at, queue, mid) in enumerate(found)]

    def retry_dead_letter(self, queue: str, mid: str) -> bool:
        k = self._queue(queue)
        return bool(self._link.script(
            "dead_retry", (k.dead, k.dead_reason, k.dead_body, k.msgs, k.deliveries, k.ready,
                           k.wake), (mid,)))

    def discard_dead_letter(self, queue: str, mid: str) -> bool:
        k = QueueKeys.of(queue)
        return bool(self._link.script("dead_discard", (k.dead, k.dead_reason, k.dead_body),
                                      (mid,)))
