"""Key names of the Redis store, in one place.

Everything of one queue shares the hash tag `{qmulti:<queue>}`, so each queue script
touches one slot (open to Redis Cluster later). The node registry shares `{qmulti}`.
A result and its notify list share `{<task_id>}`. Only `start.lua` and `finish.lua`
span two tags (queue and task): that is the one-round-trip fast path on one server.
A finish with continuations (canvas) also spans its chord's tag and the target queues'.
"""

from __future__ import annotations

from dataclasses import dataclass

QUEUES = "{qmulti}:queues"  # set of every queue ever published to or claimed from
NODES = "{qmulti}:nodes"  # zset node_id -> last heartbeat (server time, seconds)
NODEINFO = "{qmulti}:nodeinfo"  # hash node_id -> info JSON
BEAT = "{qmulti}:beat"  # hash entry name -> due time of the last tick sent
REAPING = "{qmulti}:reaping"  # zset node_id -> judged dead at (microseconds)
REAPS = "{qmulti}:reaps"  # hash node_id -> times judged dead (kept until it unregisters)


@dataclass(frozen=True)
class QueueKeys:
    """The keys of one queue."""

    ready: str  # list of mids, head = next
    scheduled: str  # zset mid -> eta
    msgs: str  # hash mid -> body
    deliveries: str  # hash mid -> times begun
    leased: str  # hash mid -> claim stamp, node_id, consumer
    wake: str  # list holding at most one token: "ready may be non-empty"
    dead: str  # zset mid -> dead-lettered at (microseconds)
    dead_reason: str  # hash mid -> reason
    dead_body: str  # hash mid -> body

    @classmethod
    def of(cls, queue: str) -> QueueKeys:
        tag = f"{{qmulti:{queue}}}"
        return cls(*(f"{tag}:{part}" for part in (
            "ready", "scheduled", "msgs", "deliveries", "leased", "wake",
            "dead", "dead:reason", "dead:body")))

    @property
    def claim(self) -> tuple[str, ...]:
        return (self.ready, self.scheduled, self.msgs, self.deliveries, self.leased,
                self.wake, self.dead, self.dead_reason, self.dead_body)

    @property
    def give_back(self) -> tuple[str, ...]:
        return (self.leased, self.ready, self.wake)

    @property
    def dead_letter(self) -> tuple[str, ...]:
        return (self.msgs, self.deliveries, self.leased, self.dead, self.dead_reason,
                self.dead_body)


def result_key(task_id: str) -> str:
    return f"qmulti:result:{{{task_id}}}"


def notify_key(task_id: str) -> str:
    return f"qmulti:notify:{{{task_id}}}"


def continued_key(task_id: str) -> str:
    """Set once a task's continuations are sent; shares the task's hash tag."""
    return f"qmulti:continued:{{{task_id}}}"


def chord_keys(chord_id: str) -> tuple[str, str]:
    """A chord's record (hash) and its set of finished members, under the chord's tag."""
    return f"qmulti:chord:{{{chord_id}}}", f"qmulti:chord:{{{chord_id}}}:done"
