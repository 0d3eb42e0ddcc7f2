"""The event stream every broker may keep: a capped, ordered log of encoded events.

Nodes started with `-E` append Celery-shaped events (see `qmulti.events`); monitors read
them from any position still retained. The stream is capped (the oldest entries are
dropped past `maxlen`), so a reader that starts late catches up on what is left, and a
monitor nobody runs costs a bounded amount of memory or disk.

Positions are opaque strings, ordered within one store. `OLDEST` asks for everything
still retained; `events_tail()` names the newest entry, so a reader that starts "now"
sees only what comes after it.
"""

from __future__ import annotations

from collections.abc import Sequence

OLDEST = "0"  # a position before every entry
DEFAULT_MAXLEN = 10_000  # entries kept: several minutes of a busy node's events


class EventStream:
    """Mixed into `Broker`; each store that keeps a stream overrides all three."""

    def events_put(self, events: Sequence[bytes], maxlen: int = DEFAULT_MAXLEN) -> None:
        """Append encoded events in the given order, in one round trip, and trim the
        stream to about `maxlen` entries (Redis trims in whole nodes, `MAXLEN ~`)."""
        raise NotImplementedError(f"{type(self).__name__} keeps no event stream")

    def events_read(self, after: str = OLDEST, count: int = 500,
                    timeout: float = 0.0) -> list[tuple[str, bytes]]:
        """Up to `count` (position, event) pairs after `after`, oldest first; blocks up to
        `timeout` seconds while there are none (0: do not block)."""
        raise NotImplementedError(f"{type(self).__name__} keeps no event stream")

    def events_tail(self) -> str:
        """The position of the newest retained event (OLDEST when there is none)."""
        raise NotImplementedError(f"{type(self).__name__} keeps no event stream")
