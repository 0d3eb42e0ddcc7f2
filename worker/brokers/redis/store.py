"""`redis://`: the production broker and result backend, in one class.

Every state change of a message is one Lua script (`lua/*.lua`, each headed by its KEYS
and ARGV); this module only picks keys and arguments and shapes the replies. A lease's
token is the first 22 characters of its `leased` value (claim time and index), so the
fence costs no extra key or round trip. Round trips per task on the hot path: claim 1
per batch, start 1, finish 1 (result + ack + canvas continuations; + WAIT in the same
trip under wait_replicas).

Blocking without polling: each queue has a `wake` list that holds at most one token
while its ready list may be non-empty (every script that adds to a ready list ensures
the token; a claim that leaves messages behind passes it on). An idle consumer blocks
in BLPOP on the wake lists, bounded by the next eta, then claims.

Needs Redis >= 6.2 (LPOP with a count, float timeouts). Keys: `keys.py`; canvas: `canvas.py`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from qmulti.brokers.base import (
    DEFAULT_HEARTBEAT_EXPIRY,
    DEFAULT_MAX_DELIVERIES,
    KEEP_REAPS,
    LOST,
    OK,
    REVOKED_MARK,
    Broker,
    Continuation,
    Delivery,
    ResultBackend,
    marker_ttl,
)
from qmulti.brokers.redis.beatstate import RedisBeat
from qmulti.brokers.redis.browse import RedisBrowse
from qmulti.brokers.redis.canvas import RedisCanvas
from qmulti.brokers.redis.canvas import eta_arg as _eta_arg
from qmulti.brokers.redis.canvas import ttl_ms as _ttl_ms
from qmulti.brokers.redis.control import RedisControl
from qmulti.brokers.redis.durable import Durability, Publish, waited
from qmulti.brokers.redis.events import RedisEvents
from qmulti.brokers.redis.inspection import RedisInspection
from qmulti.brokers.redis.keys import (
    NODEINFO,
    NODES,
    QUEUES,
    REAPED_AT,
    REAPING,
    REAPS,
    QueueKeys,
    notify_key,
    result_key,
)
from qmulti.brokers.redis.sentinel import open_link
from qmulti.exceptions import BrokerConnectionError
from qmulti.states import READY_STATES

BLOCK_CHUNK = 5.0  # longest single blocking call: re-checks state, bounds a lost wake-up
NOTIFY_TTL = 10.0  # seconds a final result waits in its notify list for a late waiter


class RedisStore(RedisBrowse, RedisEvents, RedisControl, RedisCanvas, RedisInspection,
                 RedisBeat, Broker, ResultBackend):
    """Broker and result backend over one Redis server. Not thread-safe: one instance per
    process (or thread); safe across fork, where the child makes its own connections."""

    def __init__(self, url: str, max_deliveries: int | None = DEFAULT_MAX_DELIVERIES,
                 pool_limit: int | None = None, **options: Any) -> None:
        self.url = url
        self.max_deliveries = int(max_deliveries or DEFAULT_MAX_DELIVERIES)
        connect_timeout = (options.get("connect_timeout") or options.get("connection_timeout")
                           or options.get("broker_connection_timeout"))
        self._link = open_link(url, pool_limit, connect_timeout, options)
        self._durability = Durability.of(options)  # wait_replicas (see durable.py)
        self._keys: dict[str, QueueKeys] = {}
        self._registered: set[str] = set()  # queues this process added to QUEUES
        self._pid = os.getpid()
        # Claim bookkeeping for lost replies: a claim script may have run although its
        # reply never arrived. The next claim of that consumer gives back its leases that
        # are not among the ones it holds (`_held`: mid -> (queue, node_id, consumer)).
        self._held: dict[str, tuple[str, str, str]] = {}
        self._in_doubt: set[tuple[str, str, str]] = set()

    def __repr__(self) -> str:
        return f"RedisStore({self._link.target.masked!r})"

    def _queue(self, queue: str) -> QueueKeys:
        keys = self._keys.get(queue)
        if keys is None:
            keys = self._keys[queue] = QueueKeys.of(queue)
        if queue not in self._registered:
            # Registered before first use, so release/stats/requeue always find it.
            self._link.call("SADD", QUEUES, queue)
            self._registered.add(queue)
        return keys

    def _queues(self) -> list[str]:
        return sorted(q.decode() for q in self._link.call("SMEMBERS", QUEUES))

    def _forget_held(self, mids: Sequence[str]) -> None:
        for mid in mids:
            self._held.pop(mid, None)

    # -- producing -----------------------------------------------------------------------
    def publish(self, queue: str, mid: str, body: bytes, eta: float | None = None) -> None:
        self._link.patient(Publish(  # tried again through a failover
            self._link, lambda: self._queue(queue), (mid, body, _eta_arg(eta)), self._durability))

    # -- consuming -----------------------------------------------------------------------
    def claim(self, queues: Sequence[str], node_id: str, consumer: str, limit: int,
              timeout: float) -> list[Delivery]:
        if os.getpid() != self._pid:  # bookkeeping of the parent is not ours
            self._pid, self._held, self._in_doubt = os.getpid(), {}, set()
        if not queues or limit <= 0:
            return []
        deadline = time.monotonic() + max(timeout, 0.0)
        wakes = [self._queue(q).wake for q in queues]
        while True:
            out, wait = self._claim_once(queues, node_id, consumer, limit)
            remaining = deadline - time.monotonic()
            if out or remaining <= 0:
                return out
            block = min(remaining, BLOCK_CHUNK, BLOCK_CHUNK if wait is None else wait)
            block = max(block, 0.001)  # BLPOP reads 0 as "forever"
            self._link.call("BLPOP", *wakes, f"{block:.3f}",
                            read_timeout=block + self._link.socket_timeout)

    def _claim_once(self, queues: Sequence[str], node_id: str, consumer: str,
                    limit: int) -> tuple[list[Delivery], float | None]:
        """One claim script per queue, in order, until `limit`; also the shortest wait
        until a scheduled message of these queues is due."""
        out: list[Delivery] = []
        wait: float | None = None
        for queue in queues:
            if len(out) >= limit:
                break
            k = self._queue(queue)
            who = (queue, node_id, consumer)
            args: list[Any] = [node_id, consumer, limit - len(out), self.max_deliveries]
            if who in self._in_doubt:
                args.append("1")
                args.extend(m for m, h in self._held.items() if h == who)
            else:
                args.append("0")
            try:
                reply = self._link.script("claim", k.claim, args)
            except BrokerConnectionError:
                self._in_doubt.add(who)
                raise
            self._in_doubt.discard(who)
            if reply[0]:
                due = float(reply[0])
                wait = due if wait is None else min(wait, due)
            for i in range(1, len(reply), 4):
                mid = reply[i].decode()
                out.append(Delivery(mid, queue, reply[i + 1], int(reply[i + 2]),
                                    reply[i + 3].decode()))
                self._held[mid] = who
        return out, wait

    def begin(self, delivery: Delivery) -> str:
        k = self._queue(delivery.queue)
        count = self._link.script("begin", (k.deliveries, k.leased),
                                  (delivery.mid, delivery.token))
        return OK if count else LOST

    def _by_queue(self, deliveries: Sequence[Delivery]) -> dict[str, list[str]]:
        """(mid, token) pairs, flat, per queue, in the given order."""
        groups: dict[str, list[str]] = {}
        for d in deliveries:
            groups.setdefault(d.queue, []).extend((d.mid, d.token))
        return groups

    def _fenced(self, script: str, deliveries: Sequence[Delivery]) -> str:
        """ack or nack: one script per queue, one round trip; LOST unless all acted."""
        commands = []
        for queue, pairs in self._by_queue(deliveries).items():
            k = self._queue(queue)
            keys = (k.msgs, k.deliveries, k.leased) if script == "ack" else k.give_back
            commands.append(self._link.eval_command(script, keys, pairs))
        done = sum(int(n) for n in self._link.pipeline(commands))
        self._forget_held([d.mid for d in deliveries])
        return OK if done == len(deliveries) else LOST

    def ack(self, deliveries: Sequence[Delivery]) -> str:
        return self._fenced("ack", deliveries)

    def nack(self, deliveries: Sequence[Delivery]) -> str:
        return self._fenced("nack", deliveries)

    def dead_letter(self, delivery: Delivery, reason: str) -> str:
        k = self._queue(delivery.queue)
        moved = self._link.script("dead_letter", k.dead_letter,
                                  (delivery.mid, delivery.token, reason))
        self._forget_held([delivery.mid])
        return OK if moved else LOST

    def reschedule(self, delivery: Delivery, queue: str, mid: str, body: bytes,
                   eta: float | None) -> str:
        old, new = self._queue(delivery.queue), self._queue(queue)
        ready = self._link.script(
            "reschedule",
            (old.msgs, old.deliveries, old.leased, new.msgs, new.ready, new.scheduled,
             new.wake),
            (delivery.mid, delivery.token, mid, body, _eta_arg(eta)))
        self._forget_held([delivery.mid])
        return LOST if int(ready) < 0 else OK

    # -- the result path: one round trip each when this store is also the backend -------
    def start_sees_revoked(self, backend: ResultBackend | None) -> bool:
        return backend is self

    def start(self, delivery: Delivery, task_id: str, meta: bytes,
              backend: ResultBackend | None, ttl: float | None) -> str:
        if backend is not self:
            return super().start(delivery, task_id, meta, backend, ttl)
        k = self._queue(delivery.queue)
        count = self._link.script("start", (k.deliveries, k.leased, result_key(task_id)),
                                  (delivery.mid, delivery.token, "STARTED", meta,
                                   _ttl_ms(ttl)))
        if count == -1:
            return REVOKED_MARK
        return OK if count else LOST

    def finish(self, delivery: Delivery, task_id: str, state: str, meta: bytes | None,
               backend: ResultBackend | None, ttl: float | None,
               then: Continuation | None = None) -> str:
        if backend is not self or meta is None:
            return super().finish(delivery, task_id, state, meta, backend, ttl, then)
        notify_ms = _ttl_ms(min(NOTIFY_TTL, ttl) if ttl and ttl > 0 else NOTIFY_TTL)
        if then is not None:
            return self._finish_then(delivery, task_id, state, meta, _ttl_ms(ttl), notify_ms,
                                     then, marker_ttl(ttl))
        k = self._queue(delivery.queue)
        acked = waited(
            self._link, self._durability, "finish",
            (k.msgs, k.deliveries, k.leased, result_key(task_id), notify_key(task_id)),
            (delivery.mid, delivery.token, state, meta, _ttl_ms(ttl),
             "1" if state in READY_STATES else "0", notify_ms),
        )
        self._forget_held([delivery.mid])
        return OK if acked else LOST

    # -- nodes and leases ----------------------------------------------------------------
    def heartbeat(self, node_id: str, info: Mapping[str, Any]) -> int:
        reaps = self._link.script("heartbeat", (NODES, NODEINFO, REAPS),
                                  (node_id, json.dumps(dict(info), default=str)))
        return int(reaps)

    def _give_back(self, selectors: Sequence[tuple[str, str, str]]) -> int:
        """Run give_back.lua on every known queue in one round trip (atomic per queue)."""
        flat = [part for sel in selectors for part in sel]
        commands = [self._link.eval_command("give_back", self._queue(q).give_back, flat)
                    for q in self._queues()]
        return sum(int(n) for n in self._link.pipeline(commands))

    def release(self, node_id: str, consumer: str | None = None) -> int:
        count = self._give_back([(node_id, consumer or "", "")])
        for mid, (_, node, cons) in list(self._held.items()):
            if node == node_id and consumer in (None, cons):
                del self._held[mid]
        return count

    def unregister(self, node_id: str) -> None:
        self._link.script("unregister", (NODES, NODEINFO, REAPS, REAPED_AT), (node_id,))

    def requeue_dead_nodes(self, expiry: float = DEFAULT_HEARTBEAT_EXPIRY,
                           keep_reaps: float = KEEP_REAPS) -> int:
        if self._link.switched_within(expiry):
            return 0  # a new master: each node gets one expiry to heartbeat to it first
        reaping = self._link.script("reap_nodes", (NODES, NODEINFO, REAPING, REAPS, REAPED_AT),
                                    (repr(expiry), repr(keep_reaps)))
        if not reaping:
            return 0
        pairs = [(reaping[i].decode(), reaping[i + 1].decode())
                 for i in range(0, len(reaping), 2)]
        count = self._give_back([(node, "", judged) for node, judged in pairs])
        # Only now, with every queue done, may the nodes be forgotten (see reap_nodes.lua).
        self._link.script("forget_reaped", (REAPING,),
                          [part for pair in pairs for part in pair])
        return count

    def purge(self, queue: str) -> int:
        k = self._queue(queue)
        return int(self._link.script("purge", (k.ready, k.msgs, k.deliveries), ()))

    def close(self) -> None:
        self._link.close()

    # -- result backend ------------------------------------------------------------------
    def set(self, task_id: str, state: str, blob: bytes, ttl: float | None) -> None:
        final = state in READY_STATES
        notify_ttl = min(NOTIFY_TTL, ttl) if ttl and ttl > 0 else NOTIFY_TTL
        waited(self._link, self._durability, "set_result", (result_key(task_id),
               notify_key(task_id)), (state, blob, _ttl_ms(ttl), "1" if final else "0",
                                      _ttl_ms(notify_ttl)))

    def set_started(self, task_id: str, blob: bytes, ttl: float | None) -> bool:
        return self._link.script("set_started", (result_key(task_id),),
                                 (blob, _ttl_ms(ttl))) != -1

    def set_unless_ready(self, task_id: str, state: str, blob: bytes,
                         ttl: float | None) -> bool:
        return bool(self._link.script("set_progress", (result_key(task_id),),
                                      (state, blob, _ttl_ms(ttl))))

    def _lookup(self, task_id: str) -> tuple[str, bytes] | None:
        value = self._link.call("GET", result_key(task_id))
        if value is None:
            return None
        state, _, blob = value.partition(b"\n")
        return state.decode(), blob

    def get(self, task_id: str) -> bytes | None:
        found = self._lookup(task_id)
        return None if found is None else found[1]

    def wait(self, task_id: str, timeout: float | None) -> bytes | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        notify = notify_key(task_id)
        while True:
            found = self._link.patient(lambda: self._lookup(task_id), deadline)
            if found is not None and found[0] in READY_STATES:
                return found[1]
            block = BLOCK_CHUNK
            if deadline is not None:
                block = min(block, deadline - time.monotonic())
                if block <= 0:
                    return None
            block = max(block, 0.001)
            # Rotating the list into itself leaves the document for every other waiter.
            doc = self._link.patient(lambda b=block: self._link.call("BRPOPLPUSH", notify, notify,
                f"{b:.3f}", read_timeout=b + self._link.socket_timeout), deadline)
            if doc is not None:
                return doc

    def forget(self, task_id: str) -> None:
        self._link.call("DEL", result_key(task_id), notify_key(task_id))
