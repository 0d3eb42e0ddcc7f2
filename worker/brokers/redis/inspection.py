"""Read-only views of the Redis store for `qmulti status` and operators."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from qmulti.brokers.base import BrokerStats, DeadLetter, NodeRecord
from qmulti.brokers.redis.keys import NODEINFO, NODES, QueueKeys


class RedisInspection:
    """Mixin of RedisStore: queue counts and node records in one pipeline, dead letters."""

    _link: Any

    def _queue(self, queue: str) -> QueueKeys:
        raise NotImplementedError

    def _queues(self) -> list[str]:
        raise NotImplementedError

    # -- inspection ----------------------------------------------------------------------
    def stats(self) -> BrokerStats:
        queues = self._queues()
        commands: list[Sequence[Any]] = []
        for queue in queues:
            k = self._queue(queue)
            commands += [
                self._link.eval_command("promote", (k.scheduled, k.ready, k.wake), ()),
                ("LLEN", k.ready), ("ZCARD", k.scheduled), ("HLEN", k.leased),
                ("ZCARD", k.dead),
            ]
        commands += [("ZRANGE", NODES, 0, -1, "WITHSCORES"), ("HGETALL", NODEINFO)]
        replies = self._link.pipeline(commands)
        depth: dict[str, int] = {}
        scheduled = leased = dead = 0
        for i, queue in enumerate(queues):
            _, ready, sched, held, gone = replies[5 * i: 5 * i + 5]
            depth[queue] = int(ready)
            scheduled += int(sched)
            leased += int(held)
            dead += int(gone)
        beats, flat = replies[-2], replies[-1]
        infos = dict(zip(flat[::2], flat[1::2], strict=True))
        nodes = []
        for i in range(0, len(beats), 2):
            raw = infos.get(beats[i])
            nodes.append(NodeRecord(beats[i].decode(), float(beats[i + 1]),
                                    json.loads(raw) if raw else {}))
        return BrokerStats(depth, scheduled, leased, dead, nodes)

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        queues = self._queues()
        if not queues or limit <= 0:
            return []
        listed = self._link.pipeline(
            [("ZRANGE", self._queue(q).dead, 0, limit - 1, "WITHSCORES") for q in queues])
        found = sorted((float(mids[i + 1]), q, mids[i].decode())
                       for q, mids in zip(queues, listed, strict=True)
                       for i in range(0, len(mids), 2))
        found = found[:limit]
        commands: list[Sequence[Any]] = []
        for _, queue, mid in found:
            k = self._queue(queue)
            commands += [("HGET", k.dead_reason, mid), ("HGET", k.dead_body, mid)]
        details = self._link.pipeline(commands)
        return [DeadLetter(mid, queue, (details[2 * i] or b"").decode(), details[2 * i + 1]
                           or b"") for i, (_, queue, mid) in enumerate(found)]
