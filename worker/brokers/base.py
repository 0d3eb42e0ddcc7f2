"""The broker interface: messages with leases, as every broker implements it.

A message is opaque bytes (see `worker.protocol`). Its life:

    publish --> ready (or scheduled until its eta) --claim--> leased to (node, consumer)
    leased --begin--> running (delivery count + 1) --finish--> stored result, removed
    leased/running --nack or release--> ready again, at the head of its queue
    ready with deliveries >= max_deliveries --claim--> dead-lettered (a poison message)

Leases are fenced. Each claim gives every delivery a token, and `begin`, `start`,
`finish`, `ack`, `nack`, `reschedule` and `dead_letter` act only while that token is the
message's current lease; otherwise they change nothing and return LOST. So a node that
stalled past its expiry, whose messages were requeued and leased elsewhere, cannot ack,
restart or dead-letter them on its return. Each of those calls is also idempotent (a
re-send after a lost reply changes nothing more), which is what lets a consumer retry
them. A stored final state (SUCCESS, FAILURE, REVOKED) is never overwritten: not by a
later STARTED, nor by a second final state, whoever writes it.

Leases never expire by time while their node is alive; only `requeue_dead_nodes` takes
back the leases of a node whose heartbeat is older than the expiry. That is what lets
a task run for an hour without being delivered twice. Every implementation makes each
state change atomic (one SQLite transaction, one Lua script) and passes
`tests/worker/test_broker_contract.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qmulti.brokers.control_base import ControlChannel
from qmulti.brokers.events_base import EventStream

DEFAULT_MAX_DELIVERIES = 5
DEFAULT_HEARTBEAT_EXPIRY = 10.0
# How long the count of a dead node's reaps is kept after its last judgement. A node id
# names one process life, so without an end each KILLed node left its entry for good.
# A node stalled longer than this that comes back is not told by its heartbeat; its
# fenced calls still return LOST, so it runs nothing twice.
KEEP_REAPS = 3600.0

# What a fenced call returns: it acted, or the caller's lease is no longer the current one
# (requeued after its node expired, maybe leased to another node since) and nothing changed.
OK = "ok"
LOST = "lost"
# What `start` returns, on a store that checks for it (`start_sees_revoked`), when the
# task's stored result is a REVOKED mark: nothing was counted or written; do not run it.
REVOKED_MARK = "revoked"
# How long a store remembers that a task's continuations were sent, and that a chord
# fired (at least; a longer result expiry wins): longer than any re-run of a member.
CONTINUED_TTL = 86400.0
# A chord member that ends in one of these fires the chord at once: its body fails with
# ChordError without waiting for the other members.
FIRES_AT_ONCE = frozenset({"FAILURE", "REVOKED"})


def marker_ttl(ttl: float | None) -> float:
    return max(ttl or 0.0, CONTINUED_TTL)


@dataclass(frozen=True)
class Delivery:
    """One claimed message, as the consumer that holds its lease sees it."""

    mid: str
    queue: str
    body: bytes
    deliveries: int  # how many times it had been begun before this claim
    token: str = ""  # this lease's fence: made at claim, checked by every call on it


@dataclass(frozen=True)
class Message:
    """A message to publish: what `finish` sends on when its task completes."""

    queue: str
    mid: str
    body: bytes
    eta: float | None = None


@dataclass(frozen=True)
class ChordPart:
    """A task's membership in a chord (see `Broker.chord_init`): its finish adds
    `member` to the chord's set of completed members."""

    chord_id: str
    queue: str  # the body's queue (a script must be given every key it touches)
    member: str  # the id of the result the body reads for this member


@dataclass(frozen=True)
class Continuation:
    """What a task's finish publishes, in the same atomic step that stores its result and
    acks its message: the next chain step, link callbacks, a chord membership.

    Sent once per `key` (the task id): whichever delivery of the task finishes first
    under a current lease sends them; a stale finish, a second run or a duplicate message
    of the same task sends nothing."""

    key: str
    messages: tuple[Message, ...] = ()
    chord: ChordPart | None = None
    children: tuple[str, ...] = ()  # the task ids of `messages`, for AsyncResult.children


@dataclass(frozen=True)
class NodeRecord:
    """A node as its last heartbeat described it."""

    node_id: str
    heartbeat: float  # unix time of the last heartbeat
    info: Mapping[str, Any] = field(default_factory=dict)  # name, pid, active, finished...


@dataclass(frozen=True)
class DeadLetter:
    mid: str
    queue: str
    reason: str
    body: bytes


@dataclass(frozen=True)
class BrokerStats:
    """What `qmulti status` shows of the broker side."""

    queues: Mapping[str, int]  # ready messages per queue; an empty queue may be absent
    scheduled: int  # waiting for their eta/countdown
    leased: int  # claimed by some node
    dead: int  # in the dead-letter queue
    nodes: Sequence[NodeRecord] = ()


class Broker(EventStream, ControlChannel, ABC):
    """A message store with leases. Not thread-safe unless a subclass says so: each
    process (and each thread of the threads pool) uses its own instance, made after fork."""

    # The node's main process can read every lease of the node, and its message body,
    # from the store (`control_leased`, `control_bodies`), for `inspect reserved/active`.
    # Where it cannot (RabbitMQ: they sit on each child's own channel), the children
    # report what they hold on their status pipes instead (see pipehooks.py).
    node_reads_leases = True

    url: str
    max_deliveries: int = DEFAULT_MAX_DELIVERIES

    # -- producing -----------------------------------------------------------------------
    @abstractmethod
    def publish(self, queue: str, mid: str, body: bytes, eta: float | None = None) -> None:
        """Store a message; with an eta in the future it waits in the broker until then.
        A mid that is stored already is left as it is, so a re-sent publish is one."""

    def publish_many(self, messages: Sequence[Message]) -> None:
        """`publish` of each, as few broker calls as the store allows (a group, a chord's
        header); a store that can do it in one overrides this."""
        for m in messages:
            self.publish(m.queue, m.mid, m.body, m.eta)

    # -- consuming -----------------------------------------------------------------------
    @abstractmethod
    def claim(self, queues: Sequence[str], node_id: str, consumer: str, limit: int,
              timeout: float) -> list[Delivery]:
        """Lease up to `limit` ready messages, trying `queues` in order.

        First moves scheduled messages whose eta has passed to the tail of their queue.
        Blocks up to `timeout` seconds while none is ready (0: do not block). A message
        already begun `max_deliveries` times is dead-lettered instead of returned.
        """

    @abstractmethod
    def begin(self, delivery: Delivery) -> str:
        """Count one delivery: the task is really starting now. Counted once per lease,
        however often it is called; LOST when the lease is not current."""

    @abstractmethod
    def ack(self, deliveries: Sequence[Delivery]) -> str:
        """Remove finished messages; LOST when any of them was not leased under its token
        (that one is left alone)."""

    @abstractmethod
    def nack(self, deliveries: Sequence[Delivery]) -> str:
        """Give messages back at once, at the head of their queues, in their order; LOST
        when any was not leased under its token (that one is left alone)."""

    @abstractmethod
    def dead_letter(self, delivery: Delivery, reason: str) -> str:
        """Move a leased message to the dead-letter queue (malformed, rejected, poison)."""

    @abstractmethod
    def reschedule(self, delivery: Delivery, queue: str, mid: str, body: bytes,
                   eta: float | None) -> str:
        """Replace a leased message by a new one (a retry) in one step, only while its
        lease is current: a re-sent reschedule finds the lease gone and publishes nothing,
        so the retry exists once."""

    # -- the result path (a store that is also the backend overrides to do one trip) ----
    def start(self, delivery: Delivery, task_id: str, meta: bytes,
              backend: ResultBackend | None, ttl: float | None) -> str:
        """Begin a delivery and record STARTED for `AsyncResult.state`, unless the lease
        is lost (then nothing is written: another node has the message now)."""
        if self.begin(delivery) == LOST:
            return LOST
        if backend is not None:
            backend.set(task_id, "STARTED", meta, ttl)
        return OK

    def start_sees_revoked(self, backend: ResultBackend | None) -> bool:
        """True when `start` with `backend` answers REVOKED_MARK for a task whose stored
        result is revoke()'s mark: the node then need not read the mark first."""
        return False

    def finish(self, delivery: Delivery, task_id: str, state: str, meta: bytes | None,
               backend: ResultBackend | None, ttl: float | None,
               then: Continuation | None = None) -> str:
        """Store the outcome, then ack: a crash in between re-runs, never loses. With the
        lease lost the outcome is still stored when no final one is (the task did run),
        and LOST returned: the message belongs to whoever leased it since.

        `then` (chain, links, chord membership) is published in the ack's own atomic step,
        only when the ack succeeds and only the first time for `then.key`; a chord member
        whose add completes the chord's set (or that failed) publishes the chord body, once.
        """
        if backend is not None and meta is not None:
            backend.set(task_id, state, meta, ttl)
        if then is None:
            return self.ack([delivery])
        return self.ack_and_continue(delivery, state, then, ttl)

    def ack_and_continue(self, delivery: Delivery, state: str, then: Continuation,
                         ttl: float | None) -> str:
        """Ack `delivery` and publish `then` in one atomic step (see `finish`)."""
        raise NotImplementedError(f"{type(self).__name__} has no canvas support")

    def check_canvas(self) -> None:  # noqa: B027 - optional hook
        """Raise a one-line ConfigError if this broker cannot send a canvas's
        continuations exactly once as configured (amqp:// with rpc:// only). The
        producer calls it before it sends anything of a chain, chord or link callback."""

    def chord_init(self, chord_id: str, size: int, body: Message,
                   ttl: float | None = None) -> None:
        """Record a chord before any of its members is sent: its size and the body message
        that the member completing it publishes. A chord recorded already is left as it is
        (a re-send, or a re-run of the step that starts it). Unless `ttl` is None or 0 the
        record lives `ttl` seconds, renewed (for `marker_ttl` of the finishing task's
        ttl) by each member's finish: a chord whose producer died before sending every
        member is forgotten, not kept for ever."""
        raise NotImplementedError(f"{type(self).__name__} has no canvas support")

    # -- nodes and leases ----------------------------------------------------------------
    @abstractmethod
    def heartbeat(self, node_id: str, info: Mapping[str, Any]) -> int:
        """Record that the node is alive, with what `qmulti status` shows of it; returns
        how many times the node has been judged dead (its leases given back). A count the
        node has not seen yet is how it learns; a count, not a flag, so that a heartbeat
        whose reply was lost, or that arrived late after a network cut, loses nothing.

        A node heartbeats once before any of its consumers claims, so that every lease
        belongs to a node that `requeue_dead_nodes` can see expire."""

    @abstractmethod
    def release(self, node_id: str, consumer: str | None = None) -> int:
        """Give back every message leased to one consumer (or to the whole node when
        `consumer` is None), at once; returns how many."""

    @abstractmethod
    def unregister(self, node_id: str) -> None:
        """Forget a node that stopped cleanly (after releasing what it held)."""

    @abstractmethod
    def requeue_dead_nodes(self, expiry: float = DEFAULT_HEARTBEAT_EXPIRY,
                           keep_reaps: float = KEEP_REAPS) -> int:
        """Give back the leases of every node whose last heartbeat is older than `expiry`
        seconds, and forget those nodes; returns how many messages went back. The count
        of a node judged dead more than `keep_reaps` seconds ago that never came back
        is forgotten too."""

    # -- inspection ----------------------------------------------------------------------
    @abstractmethod
    def stats(self) -> BrokerStats:
        """Queue depths, scheduled, leased and dead-letter counts, and known nodes."""

    @abstractmethod
    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The oldest dead-lettered messages, for inspection."""

    @abstractmethod
    def purge(self, queue: str) -> int:
        """Delete every ready message of a queue; returns how many."""

    # -- periodic tasks (any number of schedulers; see qmulti.beat) -----------------------
    def clock(self) -> float:
        """The broker's time (unix seconds): every scheduler reads due times off one clock,
        so hosts whose clocks disagree still agree on ticks."""
        import time

        return time.time()

    def beat_state(self) -> dict[str, float]:
        """Entry name -> the due time of the last tick sent for it."""
        raise NotImplementedError(f"{type(self).__name__} has no periodic-task support")

    def claim_tick(self, entry: str, due: float, queue: str, mid: str, body: bytes) -> bool:
        """Send the tick (`entry`, `due`) if no tick of `entry` at or after `due` was sent:
        the claim and the publish in one atomic step. True if this call sent it. A second
        call with the same arguments sends nothing (idempotent)."""
        raise NotImplementedError(f"{type(self).__name__} has no periodic-task support")

    def beat_forget(self, entries: Sequence[str]) -> None:
        """Drop the stored state of entries no longer configured."""
        raise NotImplementedError(f"{type(self).__name__} has no periodic-task support")

    def tidy(self) -> None:  # noqa: B027 - optional hook
        """Housekeeping an idle node does now and then (SQLite: hand the write-ahead log
        back to the file system). Must be cheap and safe to skip."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the object is not used afterwards."""


class ResultBackend(ABC):
    """Results by task id. Each process uses its own instance, made after fork."""

    url: str

    @abstractmethod
    def set(self, task_id: str, state: str, blob: bytes, ttl: float | None) -> None:
        """Store the latest state of a task, expiring `ttl` seconds later (None or <= 0:
        never). A stored final state stays: writing over it is a no-op, except that a
        REVOKED may replace a REVOKED (revoke()'s mark, then the node's verdict)."""

    def set_unless_ready(self, task_id: str, state: str, blob: bytes,
                         ttl: float | None) -> bool:
        """Store an interim state (a task's `update_state`) unless a final one is stored
        already; False when it was not stored. Stores override this to check and write
        in one step (a REVOKED mark may land between a separate read and write)."""
        from qmulti.protocol import decode_result
        from qmulti.states import READY_STATES

        current = self.get(task_id)
        if current is not None and decode_result(current, frozenset({"json", "pickle"})).get(
                "status") in READY_STATES:
            return False
        self.set(task_id, state, blob, ttl)
        return True

    def set_started(self, task_id: str, blob: bytes, ttl: float | None) -> bool:
        """STARTED for a task about to run, unless revoke()'s REVOKED mark is stored:
        False then (nothing written; the task must not run). A stored outcome stays, as
        `set` keeps it. Only a store that reads the mark in the same call without
        decoding it (Redis: the state is the value's first line) overrides this; the
        default writes and never reads, so a broker must not rely on it (see
        `Broker.start_sees_revoked`): decoding a stored document here would have to
        trust whatever serializer wrote it."""
        self.set(task_id, "STARTED", blob, ttl)
        return True

    @classmethod
    def reads_mark_on_start(cls) -> bool:
        return cls.set_started is not ResultBackend.set_started

    @abstractmethod
    def get(self, task_id: str) -> bytes | None:
        """The latest stored document, or None if there is none (PENDING)."""

    @abstractmethod
    def wait(self, task_id: str, timeout: float | None) -> bytes | None:
        """Block until the task has a final state (SUCCESS, FAILURE, REVOKED) and return its
        document; None if `timeout` seconds pass first. Push-based where the store allows."""

    def get_many(self, task_ids: Sequence[str]) -> list[bytes | None]:
        """Several documents at once (a chord body reads all its members'); stores
        override this to make it one round trip."""
        return [self.get(t) for t in task_ids]

    @abstractmethod
    def forget(self, task_id: str) -> None:
        """Delete the stored result."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the object is not used afterwards."""
