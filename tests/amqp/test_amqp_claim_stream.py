"""A claim that may wait streams from its consumers, also with a backlog: RabbitMQ pushes
the next messages as acks free the prefetch window, and a claim takes everything that
arrived, up to its limit, with no basic.get round trip per message (a busy node's every
claim used to be basic.gets, and its consumers were never made)."""

from __future__ import annotations

from typing import Any

import pytest

from helpers import wait_for

Q = "celery"
NODE = "w1@host#100.1"
pytestmark = pytest.mark.timeout(60)


def test_a_backlog_streams_through_the_consumer_in_order(store: Any) -> None:
    for i in range(12):
        store.publish(Q, f"m{i:02}", b"x")
    seen: list[str] = []
    claims = 0
    while len(seen) < 12 and claims < 40:
        got = store.claim([Q], NODE, "c1.1", 4, 5)
        claims += 1
        assert got and len(got) <= 4
        assert store._consumers  # the first claim made the consumer: no basic.get
        seen += [d.mid for d in got]
        assert store.ack(got) == "ok"
    assert seen == [f"m{i:02}" for i in range(12)]
    assert store.claim([Q], NODE, "c1.1", 4, 0.3) == []


def test_a_give_back_returns_what_was_pushed_too(store_factory: Any) -> None:
    """Prefetched messages in the socket or the inbox go back with a nack: another
    consumer gets all of them at once."""
    holder, other = store_factory(), store_factory()
    for i in range(6):
        holder.publish(Q, f"m{i}", b"x")
    first = holder.claim([Q], NODE, "c1.1", 3, 5)  # some handed out, the rest pushed
    assert first and first[0].mid == "m0"
    assert holder.nack(first) == "ok"
    got: list[str] = []

    def all_six() -> bool:
        batch = other.claim([Q], "w2@host#200.1", "c2.1", 10, 0.5)
        got.extend(d.mid for d in batch)
        other.ack(batch)
        return len(got) == 6
    wait_for(all_six, 20, "all six at the other consumer")
    assert sorted(got) == [f"m{i}" for i in range(6)]
