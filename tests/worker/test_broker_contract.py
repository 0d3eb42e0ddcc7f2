"""The broker and result backend contract (worker/brokers/base.py), run on every store.

Each test names one rule of the lease life cycle; `store_factory` (conftest) gives the
same test a memory, sqlite and redis store. A second consumer is a second instance where
the store is shared, as a second process would see it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from helpers import wait_for
from qmulti.brokers.base import Delivery

NODE = "w1@host#100.1"
OTHER = "w2@host#200.1"
Q = "celery"

pytestmark = pytest.mark.timeout(60)


def publish_n(store: Any, n: int, queue: str = Q, prefix: str = "m") -> list[str]:
    mids = [f"{prefix}{i}" for i in range(n)]
    for mid in mids:
        store.publish(queue, mid, f"body-{mid}".encode())
    return mids


def claim_mids(store: Any, limit: int = 100, queues: tuple[str, ...] = (Q,),
               node: str = NODE, consumer: str = "c1.1", timeout: float = 0) -> list[str]:
    return [d.mid for d in store.claim(list(queues), node, consumer, limit, timeout)]


def drain(store: Any, queues: tuple[str, ...] = (Q,)) -> list[Delivery]:
    """Every ready message, claimed in order by a throwaway consumer."""
    out: list[Delivery] = []
    while batch := store.claim(list(queues), "drainer#1", "d", 50, 0):
        out.extend(batch)
    return out


# -- publish and claim ---------------------------------------------------------------------

def test_fifo_within_a_queue(store: Any) -> None:
    mids = publish_n(store, 10)
    got = store.claim([Q], NODE, "c1.1", 100, 0)
    assert [d.mid for d in got] == mids
    assert got[0].body == b"body-m0" and got[0].queue == Q and got[0].deliveries == 0


def test_queues_are_tried_in_order(store: Any) -> None:
    publish_n(store, 2, "low", "l")
    publish_n(store, 2, "high", "h")
    assert claim_mids(store, 3, ("high", "low")) == ["h0", "h1", "l0"]
    assert claim_mids(store, 3, ("high", "low")) == ["l1"]
    assert claim_mids(store, 3, ("other",)) == []


def test_limit_is_respected(store: Any) -> None:
    mids = publish_n(store, 7)
    assert claim_mids(store, 3) == mids[:3]
    assert claim_mids(store, 3) == mids[3:6]
    assert claim_mids(store, 3) == mids[6:]


def test_claim_with_timeout_returns_empty_after_waiting(store: Any) -> None:
    start = time.monotonic()
    assert claim_mids(store, timeout=0) == []
    assert time.monotonic() - start < 1.0
    start = time.monotonic()
    assert claim_mids(store, timeout=0.3) == []
    assert 0.25 <= time.monotonic() - start < 5.0


def test_blocking_claim_wakes_when_another_instance_publishes(store_factory: Any) -> None:
    consumer = store_factory()
    producer = store_factory()
    got: list[str] = []

    def run() -> None:
        got.extend(claim_mids(consumer, 1, timeout=20))

    thread = threading.Thread(target=run)
    start = time.monotonic()
    thread.start()
    try:
        producer.publish(Q, "late", b"x")
    finally:
        thread.join(25)
    assert got == ["late"]
    # Woke on the message, not at the 20 s timeout (a loaded RabbitMQ can take seconds to
    # declare the quorum queue first).
    assert time.monotonic() - start < 10.0


def test_eta_waits_in_the_broker(store: Any) -> None:
    eta = time.time() + 0.3
    store.publish(Q, "later", b"x", eta=eta)
    store.publish(Q, "now", b"y")
    assert claim_mids(store) == ["now"]
    stats = store.stats()
    assert stats.scheduled == 1 and stats.queues.get(Q, 0) == 0
    got = wait_for(lambda: claim_mids(store, timeout=0.05), 15, "the eta message")
    assert got == ["later"]
    assert time.time() >= eta - 0.05
    assert store.stats().scheduled == 0


def test_blocking_claim_returns_at_the_eta(store: Any) -> None:
    eta = time.time() + 0.3
    store.publish(Q, "later", b"x", eta=eta)
    assert claim_mids(store, timeout=20) == ["later"]
    assert eta - 0.05 <= time.time() < eta + 5.0


def test_due_eta_goes_to_the_tail(store: Any) -> None:
    store.publish(Q, "past", b"x", eta=time.time() - 10)
    store.publish(Q, "soon", b"x", eta=time.time() + 0.2)
    store.publish(Q, "a", b"x")
    assert claim_mids(store, 1) == ["past"]
    wait_for(lambda: store.stats().scheduled == 0, 15, "eta to pass")
    store.publish(Q, "b", b"x")
    assert claim_mids(store) == ["a", "soon", "b"]


# -- leases --------------------------------------------------------------------------------

def test_lease_holds_against_another_consumer(store_factory: Any) -> None:
    first, second = store_factory(), store_factory()
    first.heartbeat(NODE, {})
    first.publish(Q, "m0", b"x")
    assert claim_mids(first) == ["m0"]
    assert claim_mids(second, node=OTHER, consumer="c1.1", timeout=0.5) == []
    assert second.requeue_dead_nodes(10.0) == 0  # a live node keeps its lease
    assert claim_mids(second, node=OTHER, timeout=0) == []
    assert second.stats().leased == 1


def test_nack_returns_to_the_head_in_order(store: Any) -> None:
    mids = publish_n(store, 6)
    got = store.claim([Q], NODE, "c1.1", 3, 0)
    store.nack(got)
    assert claim_mids(store) == mids
    assert store.stats().leased == 6


def test_nack_puts_back_before_messages_published_meanwhile(store: Any) -> None:
    publish_n(store, 2)
    got = store.claim([Q], NODE, "c1.1", 2, 0)
    store.publish(Q, "new", b"x")
    store.nack([got[1]])
    store.nack([got[0]])
    assert claim_mids(store) == ["m0", "m1", "new"]


def test_release_consumer_gives_back_only_its_own(store: Any) -> None:
    mids = publish_n(store, 4)
    a = claim_mids(store, 2, consumer="c1.1")
    b = claim_mids(store, 2, consumer="c2.1")
    assert store.release(NODE, "c1.1") == 2
    assert claim_mids(store, consumer="c3.1") == a == mids[:2]
    assert b == mids[2:]
    assert store.release(NODE, "c1.1") == 0
    assert store.release(NODE, "c2.1") == 2


def test_release_node_gives_back_everything_in_order(store: Any) -> None:
    mids = publish_n(store, 4)
    publish_n(store, 1, "other", "o")
    claim_mids(store, 1, consumer="c1.1")
    claim_mids(store, 2, consumer="c2.1")
    claim_mids(store, 1, ("other",), node=OTHER)
    assert store.release(NODE) == 3
    assert claim_mids(store, node="w3#1") == mids
    assert store.stats().leased == 5


def test_requeue_dead_nodes_takes_back_only_dead_nodes_leases(store_factory: Any) -> None:
    live, dying = store_factory(), store_factory()
    publish_n(live, 4)
    dying.heartbeat(OTHER, {"name": "w2"})
    live.heartbeat(NODE, {"name": "w1"})
    dead_mids = claim_mids(dying, 2, node=OTHER)
    live_mids = claim_mids(live, 2, node=NODE)
    last_beat = time.time()
    wait_for(lambda: time.time() - last_beat > 0.3, 5, "the dying node's heartbeat to age")
    live.heartbeat(NODE, {"name": "w1"})
    assert live.requeue_dead_nodes(0.2) == 2
    assert live.requeue_dead_nodes(0.2) == 0  # idempotent
    assert [n.node_id for n in live.stats().nodes] == [NODE]
    assert claim_mids(live, node="w3#1") == dead_mids
    live.release(NODE)
    assert claim_mids(live, node="w3#1") == live_mids


def test_unregister_forgets_the_node(store: Any) -> None:
    store.heartbeat(NODE, {"name": "w1", "active": 2})
    (rec,) = store.stats().nodes
    assert rec.node_id == NODE and rec.info["active"] == 2
    assert abs(rec.heartbeat - time.time()) < 5
    store.unregister(NODE)
    assert list(store.stats().nodes) == []


# -- deliveries and the dead-letter queue --------------------------------------------------

def test_begin_counts_and_dead_letters_at_max_deliveries(store_factory: Any) -> None:
    store = store_factory(max_deliveries=2)
    store.publish(Q, "poison", b"p")
    store.publish(Q, "fine", b"f")
    for expected in (0, 1):
        (d,) = store.claim([Q], NODE, "c1.1", 1, 0)
        assert (d.mid, d.deliveries) == ("poison", expected)
        store.begin(d)
        assert store.release(NODE, "c1.1") == 1
    assert claim_mids(store, 5) == ["fine"]
    stats = store.stats()
    assert stats.dead == 1 and stats.queues.get(Q, 0) == 0
    (dead,) = store.dead_letters()
    assert (dead.mid, dead.queue, dead.body) == ("poison", Q, b"p")
    assert "2" in dead.reason


def test_nack_and_release_without_begin_do_not_count(store_factory: Any) -> None:
    store = store_factory(max_deliveries=1)
    store.publish(Q, "m0", b"x")
    for _ in range(3):
        store.nack(store.claim([Q], NODE, "c1.1", 1, 0))
        claim_mids(store)
        store.release(NODE)
    (d,) = store.claim([Q], NODE, "c1.1", 1, 0)
    assert d.deliveries == 0
    assert store.stats().dead == 0


def test_ack_removes_and_ack_of_a_non_leased_message_is_a_no_op(store: Any) -> None:
    publish_n(store, 2)
    d0, d1 = store.claim([Q], NODE, "c1.1", 2, 0)
    store.ack([d0])
    store.ack([d0])  # already gone
    store.nack([d1])
    store.ack([d1])  # back in the queue, not leased: stays
    assert claim_mids(store) == ["m1"]
    store.ack([Delivery("never-published", Q, b"", 0)])
    stats = store.stats()
    assert stats.leased == 1 and stats.queues.get(Q, 0) == 0


def test_dead_letter(store: Any) -> None:
    publish_n(store, 2)
    d0, _ = store.claim([Q], NODE, "c1.1", 2, 0)
    store.dead_letter(d0, "malformed message: cannot decode")
    (dead,) = store.dead_letters()
    assert (dead.mid, dead.reason, dead.body) == ("m0", "malformed message: cannot decode",
                                                  b"body-m0")
    assert store.stats().dead == 1 and store.stats().leased == 1
    store.release(NODE)
    assert claim_mids(store) == ["m1"]


def test_dead_letters_oldest_first_with_limit(store: Any) -> None:
    publish_n(store, 3)
    for d in store.claim([Q], NODE, "c1.1", 3, 0):
        store.dead_letter(d, f"reason {d.mid}")
    assert [d.mid for d in store.dead_letters()] == ["m0", "m1", "m2"]
    assert [d.mid for d in store.dead_letters(limit=2)] == ["m0", "m1"]


def test_reschedule_replaces_the_message(store: Any) -> None:
    store.publish(Q, "try1", b"t1")
    (d,) = store.claim([Q], NODE, "c1.1", 1, 0)
    store.begin(d)
    store.reschedule(d, Q, "try2", b"t2", time.time() + 0.2)
    stats = store.stats()
    assert stats.leased == 0 and stats.scheduled == 1
    (again,) = wait_for(lambda: store.claim([Q], NODE, "c1.1", 1, 0.05), 15, "the retry")
    assert (again.mid, again.body, again.deliveries) == ("try2", b"t2", 0)
    store.reschedule(again, "other", "try3", b"t3", None)
    assert claim_mids(store, queues=("other",)) == ["try3"]


# -- the result path -----------------------------------------------------------------------

def test_start_and_finish_with_the_store_as_backend(store: Any) -> None:
    store.publish(Q, "m0", b"x")
    (d,) = store.claim([Q], NODE, "c1.1", 1, 0)
    store.start(d, "task-1", b'{"status":"STARTED"}', store, None)
    assert store.get("task-1") == b'{"status":"STARTED"}'
    assert store.wait("task-1", 0.05) is None  # STARTED is not final
    store.finish(d, "task-1", "SUCCESS", b'{"status":"SUCCESS"}', store, 60)
    assert store.get("task-1") == b'{"status":"SUCCESS"}'
    stats = store.stats()
    assert stats.leased == 0 and stats.queues.get(Q, 0) == 0
    store.release(NODE)
    assert claim_mids(store) == []


def test_start_counts_a_delivery(store: Any) -> None:
    store.publish(Q, "m0", b"x")
    (d,) = store.claim([Q], NODE, "c1.1", 1, 0)
    store.start(d, "task-1", b"{}", store, None)
    store.nack([d])
    (d,) = store.claim([Q], NODE, "c1.1", 1, 0)
    assert d.deliveries == 1


def test_start_and_finish_with_another_or_no_backend(store: Any) -> None:
    from qmulti.brokers.memory import MemoryStore

    other = MemoryStore()
    publish_n(store, 2)
    d0, d1 = store.claim([Q], NODE, "c1.1", 2, 0)
    store.start(d0, "t0", b"s", other, None)
    store.finish(d0, "t0", "FAILURE", b"f", other, None)
    assert other.get("t0") == b"f" and store.get("t0") is None
    store.start(d1, "t1", b"s", None, None)
    store.finish(d1, "t1", "SUCCESS", None, None, None)
    assert store.stats().leased == 0


def test_results_set_get_wait_forget(store: Any) -> None:
    assert store.get("t") is None
    assert store.wait("t", 0) is None
    store.set("t", "RETRY", b"retry", None)
    assert store.get("t") == b"retry"
    start = time.monotonic()
    assert store.wait("t", 0.2) is None
    assert 0.15 <= time.monotonic() - start < 5.0
    store.set("t", "FAILURE", b"failed", None)
    assert store.wait("t", 1) == b"failed"
    store.forget("t")
    assert store.get("t") is None
    store.forget("t")  # forgetting nothing is fine


def test_wait_returns_soon_after_another_instance_stores(store_factory: Any) -> None:
    waiter, writer = store_factory(), store_factory()
    got: list[bytes | None] = []
    thread = threading.Thread(target=lambda: got.append(waiter.wait("t", 20)))
    thread.start()
    try:
        writer.set("t", "STARTED", b"started", None)
        writer.set("t", "SUCCESS", b"done", None)
        stored = time.monotonic()
    finally:
        thread.join(25)
    assert got == [b"done"]
    assert time.monotonic() - stored < 2.0


def test_results_expire_after_ttl(store: Any) -> None:
    store.set("short", "SUCCESS", b"x", 0.2)
    store.set("long", "SUCCESS", b"y", 60)
    store.set("forever", "SUCCESS", b"z", None)
    assert store.get("short") == b"x"
    wait_for(lambda: store.get("short") is None, 15, "the short result to expire")
    assert store.wait("short", 0) is None
    assert store.get("long") == b"y" and store.get("forever") == b"z"


# -- inspection and purge ------------------------------------------------------------------

def test_stats_counts_every_state(store: Any) -> None:
    store.heartbeat(NODE, {"name": "w1"})
    publish_n(store, 3, "a", "a")
    publish_n(store, 2, "b", "b")
    store.publish("a", "eta", b"x", eta=time.time() + 60)
    got = store.claim(["a"], NODE, "c1.1", 2, 0)
    store.dead_letter(got[1], "bad")
    stats = store.stats()
    assert {q: n for q, n in stats.queues.items() if n} == {"a": 1, "b": 2}
    assert (stats.scheduled, stats.leased, stats.dead) == (1, 1, 1)
    assert [n.node_id for n in stats.nodes] == [NODE]


def test_purge_deletes_only_ready_messages_of_one_queue(store: Any) -> None:
    publish_n(store, 3, "a", "a")
    publish_n(store, 2, "b", "b")
    store.publish("a", "eta", b"x", eta=time.time() + 60)
    claim_mids(store, 1, ("a",))
    assert store.purge("a") == 2
    assert store.purge("a") == 0
    stats = store.stats()
    assert stats.queues.get("a", 0) == 0 and stats.queues.get("b", 0) == 2
    assert (stats.leased, stats.scheduled) == (1, 1)
