"""What `qmulti status` reads of RabbitMQ: ready counts by passive declare, the ladder's
depth as the scheduled count, and the dead-letter queues peeked without taking anything
(unacked gets on a throwaway channel, which returns them all, in order, when closed).

Which queues: those this process declared, `celery`, and those the nodes' records name.
Leased is what this process holds (RabbitMQ tells unacked counts only to its management
plugin).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import amqp

import qmulti.brokers.amqp.topology as topology
from qmulti.brokers.amqp.messages import REASON
from qmulti.brokers.base import BrokerStats, DeadLetter
from qmulti.exceptions import BrokerError

if TYPE_CHECKING:
    from qmulti.brokers.amqp.store import AmqpBroker


def known_queues(self: AmqpBroker, nodes: Sequence[Any]) -> list[str]:
    names = set(self._declared) | {"celery"}
    for record in nodes:
        names.update(q for q in record.info.get("queues") or () if isinstance(q, str))
    return sorted(names)

def depth(chan: Any, queue: str) -> int | None:
    try:
        return int(chan.queue_declare(queue, passive=True).message_count)
    except amqp.exceptions.NotFound:
        return None

def probe(self: AmqpBroker, names: Sequence[str]) -> list[int | None]:
    """Depths of queues that may be missing: a passive declare of a missing one closes its
    channel (never the one holding deliveries), so the next name gets a new one."""
    def run(_: Any) -> list[int | None]:
        out: list[int | None] = []
        chan = None
        try:
            for name in names:
                if chan is None or not chan.is_open:
                    chan = self.link.connection.channel()
                out.append(depth(chan, name))
        finally:
            if chan is not None and chan.is_open:
                chan.close()
        return out
    return self.link.run(run)

def stats(self: AmqpBroker) -> BrokerStats:
    rungs = {topology.level_name(k) for k in self._ladder.rungs}

    def count(what: Sequence[str]) -> list[int | None]:
        # Ours first, on the channel that acked (after the acks, counts include them, and
        # a message just delayed is read before it moves on); then what may be missing.
        mine = [n for n in what if n in self._declared or n in rungs
                or n.removesuffix(".dead") in self._declared]
        found = dict(zip(mine, self.link.run(lambda ch: [depth(ch, n) for n in mine]),
                         strict=True))
        others = [n for n in what if n not in found]
        found.update(zip(others, probe(self, others), strict=True))
        return [found[n] for n in what]
    ladder = count([topology.level_name(k) for k in range(topology.LEVELS)])
    nodes = self.side.nodes()
    queues = known_queues(self, nodes)
    depths = count(queues)
    dead = count([topology.dead_queue(q) for q in queues])
    return BrokerStats({q: d for q, d in zip(queues, depths, strict=True) if d is not None},
                       sum(n or 0 for n in ladder), len(self._held),
                       sum(n or 0 for n in dead), nodes)

def dead_letters(self: AmqpBroker, limit: int = 100) -> list[DeadLetter]:
    queues = known_queues(self, self.side.nodes())

    def peek(chan: Any) -> list[tuple[float, DeadLetter]]:
        # Unacked gets on a channel that is closed after: all go back, in order.
        found: list[tuple[float, DeadLetter]] = []
        for queue in queues:
            if depth(chan, topology.dead_queue(queue)) is None:
                continue
            while len(found) < 10 * limit:
                msg = chan.basic_get(topology.dead_queue(queue), no_ack=False)
                if msg is None:
                    break
                head = msg.properties.get("application_headers") or {}
                reason = head.get(REASON) or (
                    f"dead-lettered by RabbitMQ: {head.get('x-first-death-reason')}")
                body = msg.body if isinstance(msg.body, bytes) else bytes(msg.body)
                found.append((float(head.get("x-qmulti-at") or 0.0), DeadLetter(
                    str(msg.properties.get("message_id") or ""), queue, str(reason),
                    body)))
        return found
    try:
        found = self.link.side_channel(peek)
    except BrokerError:
        return []
    return [dl for _, dl in sorted(found, key=lambda p: p[0])[:max(limit, 0)]]
