"""The event stream of the Redis store: one Redis stream, capped with `MAXLEN ~`.

Each entry holds one field, `e`, the encoded event. A batch is one script call
(`lua/events_put.lua`: one command, one reply); `~` lets Redis trim whole radix-tree
nodes, which costs nothing per entry. Readers block in XREAD, so a live tail sees an
event as soon as it is flushed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qmulti.brokers.events_base import DEFAULT_MAXLEN, OLDEST

EVENTS = "{qmulti}:events"  # stream: id -> {e: encoded event}


class RedisEvents:
    """Mixin of `RedisStore`."""

    _link: Any

    def events_put(self, events: Sequence[bytes], maxlen: int = DEFAULT_MAXLEN) -> None:
        if not events:
            return
        self._link.script("events_put", (EVENTS,), (str(max(int(maxlen), 1)), *events))

    def events_read(self, after: str = OLDEST, count: int = 500,
                    timeout: float = 0.0) -> list[tuple[str, bytes]]:
        args: list[Any] = ["XREAD", "COUNT", max(int(count), 1)]
        read_timeout = None
        if timeout > 0:
            ms = max(int(timeout * 1000), 1)  # BLOCK 0 would mean forever
            args += ["BLOCK", ms]
            read_timeout = timeout + self._link.socket_timeout
        args += ["STREAMS", EVENTS, after or OLDEST]
        reply = self._link.call(*args, read_timeout=read_timeout)
        if not reply:
            return []
        out = []
        for entry_id, fields in reply[0][1]:
            values = dict(zip(fields[::2], fields[1::2], strict=True))
            out.append((entry_id.decode(), values.get(b"e", b"")))
        return out

    def events_tail(self) -> str:
        newest = self._link.call("XREVRANGE", EVENTS, "+", "-", "COUNT", 1)
        return newest[0][0].decode() if newest else OLDEST
