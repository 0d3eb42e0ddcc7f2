"""`memory://`: broker and result backend in one process, for tests of task code.

Thread-safe (one lock and condition), so the threads pool and a producer in the same
process share one instance. It keeps the same lease rules as the real brokers so that
the broker contract tests hold for it too.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qmulti.brokers.base import (
    DEFAULT_HEARTBEAT_EXPIRY,
    FIRES_AT_ONCE,
    KEEP_REAPS,
    LOST,
    OK,
    Broker,
    BrokerStats,
    Continuation,
    DeadLetter,
    Delivery,
    Message,
    NodeRecord,
    ResultBackend,
    marker_ttl,
)
from qmulti.brokers.browse import MemoryBrowse
from qmulti.brokers.memory_control import MemoryControl
from qmulti.brokers.memory_events import MemoryEvents
from qmulti.states import READY_STATES, REVOKED


@dataclass
class _Message:
    queue: str
    body: bytes
    eta: float
    deliveries: int = 0
    lease: tuple[str, str] | None = None  # (node_id, consumer)
    token: str = ""  # the current lease's fence
    begun: bool = False  # this lease's delivery is counted


@dataclass
class _Chord:
    size: int
    body: Message
    done: set[str]
    fired: bool = False
    expires: float | None = None  # unfired past this, it is gone (see Broker.chord_init)


class MemoryStore(MemoryBrowse, MemoryEvents, MemoryControl, Broker, ResultBackend):
    """Both interfaces over plain dicts, guarded by one condition variable."""

    def __init__(self, url: str = "memory://", max_deliveries: int | None = None) -> None:
        self.url = url
        if max_deliveries is not None:
            self.max_deliveries = max_deliveries
        self._cond = threading.Condition()
        self._messages: dict[str, _Message] = {}
        self._ready: dict[str, deque[str]] = {}
        self._scheduled: set[str] = set()
        self._dead: dict[str, DeadLetter] = {}
        self._beat: dict[str, float] = {}  # entry name -> due time of the last tick sent
        self._nodes: dict[str, NodeRecord] = {}
        self._results: dict[str, tuple[str, bytes, float | None]] = {}
        self._tokens = itertools.count(1)
        self._reaps: dict[str, int] = {}  # node_id -> times judged dead
        self._continued: set[str] = set()  # keys whose continuations were sent
        self._chords: dict[str, _Chord] = {}
        self._reaped_at: dict[str, float] = {}  # node_id -> last judged dead at (KEEP_REAPS)

    # -- broker ------------------------------------------------------------------------
    def publish(self, queue: str, mid: str, body: bytes, eta: float | None = None) -> None:
        with self._cond:
            if mid in self._messages:
                return  # a re-send: the first one stands
            due = eta or 0.0
            self._messages[mid] = _Message(queue, bytes(body), due)
            if due > time.time():
                self._scheduled.add(mid)
            else:
                self._ready.setdefault(queue, deque()).append(mid)
            self._cond.notify_all()

    def publish_many(self, messages: Sequence[Message]) -> None:
        """All under one hold of the lock: a claimer sees none or all of them."""
        with self._cond:
            for m in messages:
                self.publish(m.queue, m.mid, m.body, m.eta)

    def _move_due(self) -> float | None:
        """Move due scheduled messages; return the next eta still waiting."""
        now = time.time()
        nxt: float | None = None
        for mid in sorted(self._scheduled, key=lambda m: self._messages[m].eta):
            msg = self._messages[mid]
            if msg.eta <= now:
                self._scheduled.discard(mid)
                self._ready.setdefault(msg.queue, deque()).append(mid)
            elif nxt is None or msg.eta < nxt:
                nxt = msg.eta
        return nxt

    def claim(self, queues: Sequence[str], node_id: str, consumer: str, limit: int,
              timeout: float) -> list[Delivery]:
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._cond:
            while True:
                nxt = self._move_due()
                out = self._take(queues, node_id, consumer, limit)
                remaining = deadline - time.monotonic()
                if out or remaining <= 0:
                    return out
                if nxt is not None:
                    remaining = min(remaining, max(nxt - time.time(), 0.001))
                self._cond.wait(remaining)

    def _take(self, queues: Sequence[str], node_id: str, consumer: str,
              limit: int) -> list[Delivery]:
        out: list[Delivery] = []
        for queue in queues:
            ready = self._ready.get(queue)
            while ready and len(out) < limit:
                mid = ready.popleft()
                msg = self._messages[mid]
                if msg.deliveries >= self.max_deliveries:
                    reason = f"delivered {msg.deliveries} times without an outcome"
                    self._dead[mid] = DeadLetter(mid, msg.queue, reason, msg.body)
                    del self._messages[mid]
                    continue
                msg.lease = (node_id, consumer)
                msg.token, msg.begun = str(next(self._tokens)), False
                out.append(Delivery(mid, msg.queue, msg.body, msg.deliveries, msg.token))
        return out

    def _leased(self, delivery: Delivery) -> _Message | None:
        """The message, if the delivery's lease is its current one."""
        msg = self._messages.get(delivery.mid)
        if msg is None or msg.lease is None or msg.token != delivery.token:
            return None
        return msg

    def begin(self, delivery: Delivery) -> str:
        with self._cond:
            msg = self._leased(delivery)
            if msg is None:
                return LOST
            if not msg.begun:
                msg.begun = True
                msg.deliveries += 1
            return OK

    def ack(self, deliveries: Sequence[Delivery]) -> str:
        with self._cond:
            outcome = OK
            for d in deliveries:
                if self._leased(d) is None:
                    outcome = LOST
                else:
                    del self._messages[d.mid]
            return outcome

    def ack_and_continue(self, delivery: Delivery, state: str, then: Continuation,
                         ttl: float | None) -> str:
        with self._cond:  # re-entrant: publish takes it too
            if self._leased(delivery) is None:
                return LOST
            del self._messages[delivery.mid]
            if then.key in self._continued:
                return OK
            self._continued.add(then.key)
            for m in then.messages:
                self.publish(m.queue, m.mid, m.body, m.eta)
            part = then.chord
            chord = None if part is None else self._live_chord(part.chord_id)
            if part is not None and chord is not None and not chord.fired:
                chord.done.add(part.member)
                if chord.expires is not None:  # a chord in progress lives on
                    chord.expires = time.time() + marker_ttl(ttl)
                if len(chord.done) >= chord.size or state in FIRES_AT_ONCE:
                    chord.fired = True
                    chord.done.clear()
                    self.publish(chord.body.queue, chord.body.mid, chord.body.body,
                                 chord.body.eta)
            return OK

    def chord_init(self, chord_id: str, size: int, body: Message,
                   ttl: float | None = None) -> None:
        with self._cond:
            if self._live_chord(chord_id) is None:
                self._chords[chord_id] = _Chord(size, body, set(),
                                                expires=time.time() + ttl if ttl else None)

    def _live_chord(self, chord_id: str) -> _Chord | None:
        chord = self._chords.get(chord_id)
        if chord is not None and chord.expires is not None and chord.expires <= time.time():
            del self._chords[chord_id]
            return None
        return chord

    def nack(self, deliveries: Sequence[Delivery]) -> str:
        with self._cond:
            outcome = OK
            for d in reversed(deliveries):
                if self._leased(d) is None:
                    outcome = LOST
                else:
                    self._give_back(d.mid)
            self._cond.notify_all()
            return outcome

    def _give_back(self, mid: str) -> bool:
        msg = self._messages.get(mid)
        if msg is None or msg.lease is None:
            return False
        msg.lease = None
        self._ready.setdefault(msg.queue, deque()).appendleft(mid)
        return True

    def dead_letter(self, delivery: Delivery, reason: str) -> str:
        with self._cond:
            msg = self._leased(delivery)
            if msg is None:
                return LOST
            del self._messages[delivery.mid]
            self._dead[delivery.mid] = DeadLetter(delivery.mid, msg.queue, reason, msg.body)
            return OK

    def reschedule(self, delivery: Delivery, queue: str, mid: str, body: bytes,
                   eta: float | None) -> str:
        with self._cond:  # publish then ack, as one step (the condition's lock is an RLock)
            if self._leased(delivery) is None:
                return LOST
            self.publish(queue, mid, body, eta)
            del self._messages[delivery.mid]
            return OK

    def heartbeat(self, node_id: str, info: Mapping[str, Any]) -> int:
        with self._cond:
            self._nodes[node_id] = NodeRecord(node_id, time.time(), dict(info))
            return self._reaps.get(node_id, 0)

    def release(self, node_id: str, consumer: str | None = None) -> int:
        with self._cond:
            mids = [m for m, msg in self._messages.items() if msg.lease is not None
                    and msg.lease[0] == node_id and consumer in (None, msg.lease[1])]
            count = sum(self._give_back(m) for m in reversed(mids))
            self._cond.notify_all()
            return count

    def unregister(self, node_id: str) -> None:
        with self._cond:
            self._nodes.pop(node_id, None)
            self._reaps.pop(node_id, None)
            self._reaped_at.pop(node_id, None)

    def requeue_dead_nodes(self, expiry: float = DEFAULT_HEARTBEAT_EXPIRY,
                           keep_reaps: float = KEEP_REAPS) -> int:
        with self._cond:  # one step, so a node heartbeating meanwhile keeps its leases
            cutoff = time.time() - expiry
            dead = [n for n, rec in self._nodes.items() if rec.heartbeat < cutoff]
            count = 0
            for node_id in dead:
                count += self.release(node_id)
                self._nodes.pop(node_id, None)
                self._reaps[node_id] = self._reaps.get(node_id, 0) + 1
                self._reaped_at[node_id] = time.time()
            for node_id, when in list(self._reaped_at.items()):
                if when < time.time() - keep_reaps:  # long dead: its count goes too
                    del self._reaped_at[node_id]
                    if node_id not in self._nodes:
                        self._reaps.pop(node_id, None)
            return count

    def stats(self) -> BrokerStats:
        with self._cond:
            self._move_due()
            return BrokerStats(
                queues={q: len(d) for q, d in self._ready.items()},
                scheduled=len(self._scheduled),
                leased=sum(1 for m in self._messages.values() if m.lease is not None),
                dead=len(self._dead),
                nodes=list(self._nodes.values()),
            )

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        with self._cond:
            return list(self._dead.values())[:limit]

    def purge(self, queue: str) -> int:
        with self._cond:
            ready = self._ready.pop(queue, deque())
            for mid in ready:
                self._messages.pop(mid, None)
            return len(ready)

    # -- result backend ----------------------------------------------------------------
    def set(self, task_id: str, state: str, blob: bytes, ttl: float | None) -> None:
        with self._cond:
            found = self._lookup(task_id)
            if found is not None and found[0] in READY_STATES and \
                    (found[0], state) != (REVOKED, REVOKED):
                return  # a final state stays; only a REVOKED mark may be refined
            # None or <= 0 means never, as Celery reads result_expires
            expires = None if not ttl or ttl <= 0 else time.monotonic() + ttl
            self._results[task_id] = (state, bytes(blob), expires)
            self._cond.notify_all()

    def set_unless_ready(self, task_id: str, state: str, blob: bytes,
                         ttl: float | None) -> bool:
        with self._cond:
            found = self._lookup(task_id)
            if found is not None and found[0] in READY_STATES:
                return False
            self.set(task_id, state, blob, ttl)  # the condition is re-entrant
            return True

    def _lookup(self, task_id: str) -> tuple[str, bytes] | None:
        entry = self._results.get(task_id)
        if entry is None:
            return None
        state, blob, expires = entry
        if expires is not None and expires < time.monotonic():
            del self._results[task_id]
            return None
        return state, blob

    def get(self, task_id: str) -> bytes | None:
        with self._cond:
            found = self._lookup(task_id)
            return None if found is None else found[1]

    def wait(self, task_id: str, timeout: float | None) -> bytes | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                found = self._lookup(task_id)
                if found is not None and found[0] in READY_STATES:
                    return found[1]
                if deadline is None:
                    self._cond.wait()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def forget(self, task_id: str) -> None:
        with self._cond:
            self._results.pop(task_id, None)

    # -- periodic tasks ------------------------------------------------------------------
    def beat_state(self) -> dict[str, float]:
        with self._cond:
            return dict(self._beat)

    def claim_tick(self, entry: str, due: float, queue: str, mid: str, body: bytes) -> bool:
        with self._cond:
            if self._beat.get(entry, float("-inf")) >= due:
                return False
            self._beat[entry] = float(due)
            self.publish(queue, mid, body)
            return True

    def beat_forget(self, entries: Sequence[str]) -> None:
        with self._cond:
            for entry in entries:
                self._beat.pop(entry, None)
