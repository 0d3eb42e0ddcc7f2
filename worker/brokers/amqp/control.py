"""Remote control (`app.control`, `inspect`) on an amqp:// broker: through the side store.

A request and its reply must be read back by one reader and expire unread, which
RabbitMQ queues can do but our stores already do, next to the node records that the
caller reads to find the nodes. So the inboxes and reply boxes are the side store's own
(`redis://` or `sqlite:///` as result backend). With `rpc://` there is none: sending is
a clear error, and a node's inbox listener gets nothing, without the error it would log
at every start (logged while the pool children fork, which was how children hung).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from qmulti.brokers.amqp.events import NoSideStore
from qmulti.brokers.base import NodeRecord
from qmulti.brokers.control_base import DEFAULT_CONTROL_TTL

if TYPE_CHECKING:
    from qmulti.brokers.amqp.side import SideStore


class AmqpControl:
    """Mixin of `AmqpBroker`."""

    side: SideStore

    def _control_store(self) -> Any:
        store = self.side.store()
        if store is None:
            raise NoSideStore(
                "remote control on an amqp:// broker needs result_backend redis://... or "
                "sqlite:///path (rpc:// keeps nothing others can read)")
        return store

    def control_nodes(self, expiry: float) -> list[NodeRecord]:
        return list(self._control_store().control_nodes(expiry))

    @property
    def control_blocks_safely(self) -> bool:
        store = self.side.store()  # none: the listener polls an empty inbox, slowly
        return False if store is None else bool(store.control_blocks_safely)

    def control_send(self, node_ids: Sequence[str], body: bytes,
                     ttl: float = DEFAULT_CONTROL_TTL) -> None:
        self._control_store().control_send(node_ids, body, ttl)

    def control_receive(self, node_id: str, timeout: float) -> list[bytes]:
        store = self.side.store()
        if store is None:
            return []
        return list(store.control_receive(node_id, timeout))

    def control_reply(self, reply_to: str, body: bytes,
                      ttl: float = DEFAULT_CONTROL_TTL) -> None:
        self._control_store().control_reply(reply_to, body, ttl)

    def control_collect(self, reply_to: str, count: int, timeout: float) -> list[bytes]:
        return list(self._control_store().control_collect(reply_to, count, timeout))

    def control_forget(self, node_id: str) -> None:
        store = self.side.store()
        if store is not None:
            store.control_forget(node_id)

    # A running or prefetched message sits unacked on the channel of the pool child that
    # claimed it, not in any store the node's main process can read: the children report
    # their claims instead (`node_reads_leases`, pipehooks.py).
    def control_bodies(self, messages: Sequence[tuple[str, str]]) -> dict[str, bytes]:
        return {}

    def control_leased(self, node_id: str) -> list[tuple[str, str, bytes]]:
        return []
