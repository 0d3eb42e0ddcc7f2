"""Remote control through the broker: a per-node inbox and a reply box per request.

`app.control` (qmulti.control) finds the live nodes from their heartbeat records, drops
one request into each chosen node's inbox and waits on a reply box named by the request.
A thread in each node's main process blocks on its inbox and hands the request to the
main loop, which answers. Both boxes expire on their own (`ttl`), so a node that died
with a full inbox, or a caller that gave up waiting, leaves nothing behind for long.

Everything of the control path goes through the broker, so it reaches every host that
shares it; nothing is sent to a process directly. Each store implements these methods
in its own mixin (`redis/control.py`, `sqlite/control.py`, `memory_control.py`); the
defaults here say plainly that a store has none.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qmulti.brokers.base import NodeRecord

DEFAULT_CONTROL_TTL = 60.0  # seconds an unread request or reply is kept


class ControlChannel:
    """Mixin of `Broker`: the store side of remote control."""

    # False where a blocking receive would hold a lock that a fork must not copy (SQLite):
    # the node's listener then polls with timeout 0 under its fork guard.
    control_blocks_safely = True

    def _no_control(self) -> NotImplementedError:
        return NotImplementedError(f"{type(self).__name__} has no remote-control support")

    def control_nodes(self, expiry: float) -> list[NodeRecord]:
        """The nodes whose last heartbeat is younger than `expiry` seconds, by the store's
        clock. The default reads `stats()`; stores override it with one cheap read."""
        stats = self.stats()  # type: ignore[attr-defined]
        now = self.clock()  # type: ignore[attr-defined]
        return [r for r in stats.nodes if now - r.heartbeat < expiry]

    def control_send(self, node_ids: Sequence[str], body: bytes,
                     ttl: float = DEFAULT_CONTROL_TTL) -> None:
        """Put one request into the inbox of each node id."""
        raise self._no_control()

    def control_receive(self, node_id: str, timeout: float) -> list[bytes]:
        """Take the requests waiting in this node's inbox, oldest first; blocks up to
        `timeout` seconds while there is none."""
        raise self._no_control()

    def control_reply(self, reply_to: str, body: bytes,
                      ttl: float = DEFAULT_CONTROL_TTL) -> None:
        """Add one reply to the reply box `reply_to`."""
        raise self._no_control()

    def control_collect(self, reply_to: str, count: int, timeout: float) -> list[bytes]:
        """Replies from the box `reply_to`, until `count` of them came or `timeout`
        seconds passed; what came is returned either way."""
        raise self._no_control()

    def control_forget(self, node_id: str) -> None:
        """Drop a stopping node's inbox (what it did not read is not answered)."""

    def control_bodies(self, messages: Sequence[tuple[str, str]]) -> dict[str, bytes]:
        """The bodies of (queue, mid) messages that are stored (leased or waiting), by
        mid: what `inspect active` shows of a running task's arguments."""
        raise self._no_control()

    def control_leased(self, node_id: str) -> list[tuple[str, str, bytes]]:
        """(queue, mid, body) of every message leased to the node: its prefetched and
        running tasks, for `inspect reserved`."""
        raise self._no_control()


def deadline_left(deadline: float) -> float:
    """Seconds until a monotonic deadline, never negative."""
    return max(0.0, deadline - time.monotonic())
