"""The event stream (`-E`, `qmulti events`, the dashboard) on an amqp:// broker: the side
store's own.

Monitors read the stream back from a position, which a RabbitMQ queue cannot give (a
consumed message is gone for every other reader); the side store (`redis://` or
`sqlite:///` as result backend) keeps a capped, ordered log that any number of monitors
read independently, next to the node records they also show. With `rpc://` only there is
none: a monitor gets a one-line error naming the setting to change, and a node started
with `-E` logs that once and sends nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from qmulti.brokers.events_base import DEFAULT_MAXLEN, OLDEST
from qmulti.exceptions import ConfigError

if TYPE_CHECKING:
    from qmulti.brokers.amqp.side import SideStore

class NoSideStore(ConfigError, NotImplementedError):
    """A one-line user error (the CLI prints it) that callers probing for an optional
    capability (the dashboard's events feed) also read as "this broker has none"."""


NO_STREAM = ("events on an amqp:// broker need result_backend redis://... or "
             "sqlite:///path (rpc:// keeps nothing a monitor can read back)")


class AmqpEvents:
    """Mixin of `AmqpBroker`."""

    side: SideStore

    def _event_store(self) -> Any:
        store = self.side.store()
        if store is None:
            raise NoSideStore(NO_STREAM)
        return store

    def events_put(self, events: Sequence[bytes], maxlen: int = DEFAULT_MAXLEN) -> None:
        self._event_store().events_put(events, maxlen)

    def events_read(self, after: str = OLDEST, count: int = 500,
                    timeout: float = 0.0) -> list[tuple[str, bytes]]:
        return list(self._event_store().events_read(after, count, timeout))

    def events_tail(self) -> str:
        return str(self._event_store().events_tail())
