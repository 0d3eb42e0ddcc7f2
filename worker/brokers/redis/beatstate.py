"""Periodic-task state in Redis: one hash of each entry's last claimed due time.

`claim_tick.lua` records the tick and publishes its message in one script, so of any
number of schedulers exactly one sends each tick; the clock is the server's (TIME), so
hosts whose clocks disagree still agree on ticks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qmulti.brokers.redis.keys import BEAT, QueueKeys


class RedisBeat:
    """Mixin of RedisStore."""

    _link: Any

    def _queue(self, queue: str) -> QueueKeys:
        raise NotImplementedError

    # -- periodic tasks ------------------------------------------------------------------
    def clock(self) -> float:
        seconds, micros = self._link.call("TIME")
        return int(seconds) + int(micros) / 1e6

    def beat_state(self) -> dict[str, float]:
        flat = self._link.call("HGETALL", BEAT) or []
        return {flat[i].decode(): float(flat[i + 1]) for i in range(0, len(flat), 2)}

    def claim_tick(self, entry: str, due: float, queue: str, mid: str, body: bytes) -> bool:
        k = self._queue(queue)
        return bool(self._link.script("claim_tick", (BEAT, k.msgs, k.ready, k.wake),
                                      (entry, repr(float(due)), mid, body)))

    def beat_forget(self, entries: Sequence[str]) -> None:
        if entries:
            self._link.call("HDEL", BEAT, *entries)
