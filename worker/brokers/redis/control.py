"""Remote control on Redis: each node's inbox is a list it BLPOPs, each request's reply
box a list the caller BLPOPs; both expire (PEXPIRE on every push).

No Lua: every call is one or two commands on one key, pipelined into one round trip.
A ping costs the caller three round trips (live nodes, send, the first reply) and the
node two (its BLPOP returning, the reply), so it answers in a few milliseconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from qmulti.brokers.base import NodeRecord
from qmulti.brokers.control_base import DEFAULT_CONTROL_TTL, deadline_left
from qmulti.brokers.redis.keys import NODEINFO, NODES, QueueKeys

BLOCK_CHUNK = 5.0  # longest single BLPOP: bounds how late a stopping listener notices


def inbox_key(node_id: str) -> str:
    return f"{{qmulti}}:control:{node_id}"


def reply_key(reply_to: str) -> str:
    return f"qmulti:reply:{{{reply_to}}}"


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisControl:
    """Mixin of `RedisStore`."""

    _link: Any
    _queue: Any
    _queues: Any

    def control_nodes(self, expiry: float) -> list[NodeRecord]:
        now, beats, flat = self._link.pipeline(
            [("TIME",), ("ZRANGE", NODES, 0, -1, "WITHSCORES"), ("HGETALL", NODEINFO)])
        clock = int(now[0]) + int(now[1]) / 1e6
        infos = dict(zip(flat[::2], flat[1::2], strict=True))
        out = []
        for i in range(0, len(beats), 2):
            beat = float(beats[i + 1])
            if clock - beat >= expiry:
                continue
            raw = infos.get(beats[i])
            out.append(NodeRecord(beats[i].decode(), beat, json.loads(raw) if raw else {}))
        return out

    def control_send(self, node_ids: Sequence[str], body: bytes,
                     ttl: float = DEFAULT_CONTROL_TTL) -> None:
        commands: list[Sequence[Any]] = []
        for node_id in node_ids:
            key = inbox_key(node_id)
            commands += [("RPUSH", key, body), ("PEXPIRE", key, _ms(ttl))]
        self._link.pipeline(commands)

    def control_receive(self, node_id: str, timeout: float) -> list[bytes]:
        key = inbox_key(node_id)
        block = max(min(timeout, BLOCK_CHUNK), 0.001)  # BLPOP reads 0 as "forever"
        got = self._link.call("BLPOP", key, f"{block:.3f}",
                              read_timeout=block + self._link.socket_timeout)
        if got is None:
            return []
        rest = self._link.call("LPOP", key, 100) or []
        return [got[1], *rest]

    def control_reply(self, reply_to: str, body: bytes,
                      ttl: float = DEFAULT_CONTROL_TTL) -> None:
        key = reply_key(reply_to)
        self._link.pipeline([("RPUSH", key, body), ("PEXPIRE", key, _ms(ttl))])

    def control_collect(self, reply_to: str, count: int, timeout: float) -> list[bytes]:
        key = reply_key(reply_to)
        deadline = time.monotonic() + timeout
        out: list[bytes] = []
        while len(out) < count:
            left = deadline_left(deadline)
            if left <= 0:
                break
            block = max(min(left, BLOCK_CHUNK), 0.001)
            got = self._link.call("BLPOP", key, f"{block:.3f}",
                                  read_timeout=block + self._link.socket_timeout)
            if got is not None:
                out.append(got[1])
        return out

    def control_forget(self, node_id: str) -> None:
        self._link.call("DEL", inbox_key(node_id))

    def control_bodies(self, messages: Sequence[tuple[str, str]]) -> dict[str, bytes]:
        if not messages:
            return {}
        replies = self._link.pipeline(
            [("HGET", QueueKeys.of(queue).msgs, mid) for queue, mid in messages])
        return {mid: body for (_, mid), body in zip(messages, replies, strict=True)
                if body is not None}

    def control_leased(self, node_id: str) -> list[tuple[str, str, bytes]]:
        queues = self._queues()
        if not queues:
            return []
        leases = self._link.pipeline([("HGETALL", QueueKeys.of(q).leased) for q in queues])
        mine: list[tuple[str, str]] = []
        for queue, flat in zip(queues, leases, strict=True):
            for i in range(0, len(flat), 2):
                # lease value: token + begun flag, node_id, consumer (see claim.lua)
                parts = flat[i + 1].split(b"\n")
                if len(parts) >= 2 and parts[1].decode() == node_id:
                    mine.append((queue, flat[i].decode()))
        bodies = self.control_bodies(mine)
        return [(q, m, bodies[m]) for q, m in mine if m in bodies]
