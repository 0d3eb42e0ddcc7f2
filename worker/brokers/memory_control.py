"""Remote control on `memory://`: boxes in this process, for a `-P threads` node and a
caller that share one store (tests of task code)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from qmulti.brokers.base import NodeRecord
from qmulti.brokers.control_base import DEFAULT_CONTROL_TTL, deadline_left

_MAKE = threading.Lock()  # only guards making each store's condition, once


class MemoryControl:
    """Mixin of `MemoryStore`; its own condition, so a control message never wakes
    the consumers waiting for tasks."""

    _nodes: dict[str, NodeRecord]
    _messages: dict[str, Any]
    _cond: threading.Condition
    _boxes_cond: threading.Condition | None = None
    _boxes: dict[str, deque[tuple[float, bytes]]]

    def _box_cond(self) -> threading.Condition:
        if self._boxes_cond is None:
            with _MAKE:
                if self._boxes_cond is None:
                    self._boxes = {}
                    self._boxes_cond = threading.Condition()
        return self._boxes_cond

    def control_nodes(self, expiry: float) -> list[NodeRecord]:
        with self._cond:
            now = time.time()
            return [r for r in self._nodes.values() if now - r.heartbeat < expiry]

    def _box_put(self, boxes: Sequence[str], body: bytes, ttl: float) -> None:
        cond = self._box_cond()
        with cond:
            for box in boxes:
                self._boxes.setdefault(box, deque()).append((time.monotonic() + ttl, body))
            cond.notify_all()

    def _box_take(self, box: str, count: int, timeout: float) -> list[bytes]:
        cond = self._box_cond()
        deadline = time.monotonic() + timeout
        out: list[bytes] = []
        with cond:
            while len(out) < count:
                found = self._boxes.get(box)
                while found and len(out) < count:
                    expires, body = found.popleft()
                    if expires > time.monotonic():
                        out.append(body)
                if len(out) >= count:
                    break
                left = deadline_left(deadline)
                if left <= 0:
                    break
                cond.wait(left)
        return out

    def control_send(self, node_ids: Sequence[str], body: bytes,
                     ttl: float = DEFAULT_CONTROL_TTL) -> None:
        self._box_put([f"node:{n}" for n in node_ids], body, ttl)

    def control_receive(self, node_id: str, timeout: float) -> list[bytes]:
        got = self._box_take(f"node:{node_id}", 1, timeout)
        if got:
            got += self._box_take(f"node:{node_id}", 100, 0.0)
        return got

    def control_reply(self, reply_to: str, body: bytes,
                      ttl: float = DEFAULT_CONTROL_TTL) -> None:
        self._box_put([f"reply:{reply_to}"], body, ttl)

    def control_collect(self, reply_to: str, count: int, timeout: float) -> list[bytes]:
        return self._box_take(f"reply:{reply_to}", count, timeout)

    def control_forget(self, node_id: str) -> None:
        with self._box_cond():
            self._boxes.pop(f"node:{node_id}", None)

    def control_bodies(self, messages: Sequence[tuple[str, str]]) -> dict[str, bytes]:
        with self._cond:
            return {mid: self._messages[mid].body for _, mid in messages
                    if mid in self._messages}

    def control_leased(self, node_id: str) -> list[tuple[str, str, bytes]]:
        with self._cond:
            return [(m.queue, mid, m.body) for mid, m in self._messages.items()
                    if m.lease is not None and m.lease[0] == node_id]
