"""The dashboard's browsing for `RedisStore` (see qmulti.brokers.browse). Retry and
discard are each one Lua script on the queue's keys, so a retry moves a message once;
the reads are pipelines, and results are paged with SCAN so that no call blocks the
server for long however many results are stored."""

from __future__ import annotations

import json
from collections.abc import Container
from typing import Any

from qmulti.brokers.base import NodeRecord
from qmulti.brokers.browse import DeadLetterEntry, QueueDetail, ResultPage, ScheduledEntry
from qmulti.brokers.redis.keys import NODEINFO, NODES, QueueKeys, result_key


class RedisBrowse:
    # RedisStore's: its connection, and its queue registry
    _link: Any
    _queue: Any
    _queues: Any

    def dead_letter_entries(self, limit: int = 100) -> list[DeadLetterEntry]:
        found = self.dead_letters(limit)  # type: ignore[attr-defined]
        stamps = self._link.pipeline(
            [("ZSCORE", QueueKeys.of(d.queue).dead, d.mid) for d in found]) if found else []
        return [DeadLetterEntry(d.mid, d.queue, d.reason, d.body,
                                None if at is None else float(at) / 1e6)
                for d, at in zip(found, stamps, strict=True)]

    def retry_dead_letter(self, queue: str, mid: str) -> bool:
        k = self._queue(queue)
        return bool(self._link.script(
            "dead_retry", (k.dead, k.dead_reason, k.dead_body, k.msgs, k.deliveries, k.ready,
                           k.wake), (mid,)))

    def discard_dead_letter(self, queue: str, mid: str) -> bool:
        k = QueueKeys.of(queue)
        return bool(self._link.script("dead_discard", (k.dead, k.dead_reason, k.dead_body),
                                      (mid,)))

    def scheduled_entries(self, limit: int = 100) -> list[ScheduledEntry]:
        queues = self._queues()
        if not queues or limit <= 0:
            return []
        listed = self._link.pipeline(
            [("ZRANGE", QueueKeys.of(q).scheduled, 0, limit - 1, "WITHSCORES") for q in queues])
        found = sorted((float(mids[i + 1]), q, mids[i].decode())
                       for q, mids in zip(queues, listed, strict=True)
                       for i in range(0, len(mids), 2))[:limit]
        bodies = self._link.pipeline(
            [("HGET", QueueKeys.of(q).msgs, mid) for _, q, mid in found]) if found else []
        return [ScheduledEntry(mid, q, eta, body or b"")
                for (eta, q, mid), body in zip(found, bodies, strict=True)]

    def result_page(self, cursor: str = "", count: int = 500,
                    skip: Container[str] = ()) -> ResultPage:
        pattern = result_key("*")
        prefix, suffix = pattern.split("*")
        nxt, keys = self._link.call("SCAN", cursor or "0", "MATCH", pattern, "COUNT", count)
        ids = [k.decode()[len(prefix):len(k) - len(suffix)] for k in keys]
        ids = [t for t in ids if t not in skip]  # final already: not worth reading again
        values = self._link.call("MGET", *(result_key(t) for t in ids)) if ids else []
        page = []
        for task_id, value in zip(ids, values, strict=True):
            if value is None:
                continue  # expired between SCAN and MGET
            _state, _, doc = bytes(value).partition(b"\n")
            page.append((task_id, doc))
        nxt = nxt.decode() if isinstance(nxt, bytes) else str(nxt)
        return ("" if nxt == "0" else nxt, page)

    def queue_details(self) -> dict[str, QueueDetail]:
        queues = self._queues()
        commands = []
        for q in queues:
            k = QueueKeys.of(q)
            commands += [("LLEN", k.ready), ("ZCARD", k.scheduled), ("HLEN", k.leased),
                         ("ZCARD", k.dead), ("LINDEX", k.ready, 0)]
        replies = self._link.pipeline(commands) if commands else []
        out = {}
        for i, q in enumerate(queues):
            ready, sched, held, dead, head = replies[5 * i: 5 * i + 5]
            out[q] = QueueDetail(int(ready), int(sched), int(held), int(dead),
                                 head.decode() if head else None)
        return out

    def node_records(self) -> list[NodeRecord]:
        beats, flat = self._link.pipeline([("ZRANGE", NODES, 0, -1, "WITHSCORES"),
                                           ("HGETALL", NODEINFO)])
        infos = dict(zip(flat[::2], flat[1::2], strict=True))
        return [NodeRecord(beats[i].decode(), float(beats[i + 1]),
                           json.loads(infos[beats[i]]) if infos.get(beats[i]) else {})
                for i in range(0, len(beats), 2)]
