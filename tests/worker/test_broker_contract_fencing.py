"""The broker contract, continued: fenced leases and idempotent calls, on every store.

Part of `test_broker_contract.py`'s suite (same `store_factory`: memory, sqlite, redis),
kept in its own file for size. Two rules: a call under a lease that is no longer the
message's current one returns LOST and changes nothing (a stale node cannot ack, restart
or retry work another node holds now), and every call applied twice has the same effect
as applied once (so a consumer may re-send it after a lost reply).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from helpers import wait_for
from qmulti.brokers.base import LOST, OK, Delivery

A = "wa@host#100.1"
B = "wb@host#200.1"
Q = "celery"
EXPIRY = 0.3

pytestmark = pytest.mark.timeout(60)


def snapshot(store: Any) -> tuple[Any, ...]:
    """Everything observable about the store, without changing it."""
    stats = store.stats()
    queues = {q: n for q, n in stats.queues.items() if n}
    return (queues, stats.scheduled, stats.leased, stats.dead,
            sorted(n.node_id for n in stats.nodes),
            [(d.mid, d.reason) for d in store.dead_letters()])


def one(store: Any, node: str = A, consumer: str = "c1.1", queues: tuple[str, ...] = (Q,),
        timeout: float = 0) -> Delivery:
    (d,) = store.claim(list(queues), node, consumer, 1, timeout)
    return d


def reap(store_factory: Any) -> tuple[Any, Any, Delivery]:
    """A claims m0 and stalls past the expiry; B heartbeats, reaps A, claims m0 anew."""
    a, b = store_factory(), store_factory()
    a.publish(Q, "m0", b"body")
    assert a.heartbeat(A, {"name": "wa"}) == 0
    a_lease = one(a)
    stalled_at = time.time()
    wait_for(lambda: time.time() - stalled_at > EXPIRY * 1.5, 5, "A's heartbeat to age")
    b.heartbeat(B, {"name": "wb"})
    assert b.requeue_dead_nodes(EXPIRY) == 1
    return a, b, a_lease


# -- fencing: the store-level repro and every other call ---------------------------

def test_a_stale_finish_is_lost_keeps_the_new_lease_and_start_keeps_the_outcome(
        store_factory: Any) -> None:
    a, b, a_lease = reap(store_factory)
    b_lease = one(b, B)
    assert b_lease.mid == a_lease.mid and b_lease.token != a_lease.token
    # A's task was running when it stalled: it may finish, and its outcome is stored
    # because none is yet; the ack is refused, so B's lease stays.
    assert a.finish(a_lease, "t0", "SUCCESS", b"by-a", a, None) == LOST
    assert b.stats().leased == 1
    assert b.get("t0") == b"by-a"
    # B (which began the same task) never regresses the result, nor replaces it.
    assert b.start(b_lease, "t0", b"started-by-b", b, None) == OK
    assert b.get("t0") == b"by-a"
    assert b.finish(b_lease, "t0", "FAILURE", b"by-b", b, None) == OK
    assert b.get("t0") == b"by-a"
    assert b.stats().leased == 0


def test_every_call_under_a_lost_lease_changes_nothing(store_factory: Any) -> None:
    a, b, stale = reap(store_factory)
    current = one(b, B)
    assert b.begin(current) == OK
    before = snapshot(b)
    for call in (lambda: a.begin(stale),
                 lambda: a.start(stale, "t0", b"started-by-a", a, None),
                 lambda: a.ack([stale]),
                 lambda: a.nack([stale]),
                 lambda: a.dead_letter(stale, "stale"),
                 lambda: a.reschedule(stale, Q, "retry-by-a", b"r", None),
                 lambda: a.reschedule(stale, "elsewhere", "retry-by-a2", b"r", None)):
        assert call() == LOST
        assert snapshot(b) == before
    assert b.get("t0") is None  # the lost start wrote no STARTED
    assert b.nack([current]) == OK
    assert one(b, B).deliveries == 1  # only B's begin counted
    assert b.claim(["elsewhere"], B, "c1.1", 10, 0) == []  # no retry was published


def test_heartbeat_counts_how_often_the_node_was_judged_dead(store_factory: Any) -> None:
    a, b, _ = reap(store_factory)
    assert b.heartbeat(B, {}) == 0
    assert a.heartbeat(A, {}) == 1  # reaped: this is how A learns it
    assert a.heartbeat(A, {}) == 1  # still 1: a lost reply cannot swallow the news
    assert sorted(n.node_id for n in b.stats().nodes) == sorted([A, B])
    a.unregister(A)
    assert a.heartbeat(A, {}) == 0


def test_a_long_dead_nodes_reaps_count_is_forgotten_unless_it_came_back(
        store_factory: Any) -> None:
    """Node ids name one process life: the count of one that never returns must not stay
    for good (one entry per KILLed node), but a node alive again keeps its count."""
    store = store_factory()
    store.heartbeat("gone", {})
    store.heartbeat("back", {})
    time.sleep(0.01)
    store.requeue_dead_nodes(expiry=0.001)  # both judged dead
    assert store.heartbeat("back", {}) == 1  # alive again
    time.sleep(0.01)
    store.requeue_dead_nodes(expiry=60, keep_reaps=0.001)  # past the keeping time
    assert store.heartbeat("back", {}) == 1  # kept: it lives and knows it was reaped
    assert store.heartbeat("gone", {}) == 0  # forgotten
    store.unregister("gone")
    store.unregister("back")


def test_a_final_state_is_never_overwritten(store: Any) -> None:
    store.set("t1", "STARTED", b"s", None)
    store.set("t1", "RETRY", b"r", None)
    assert store.get("t1") == b"r"
    store.set("t1", "SUCCESS", b"ok", None)
    for state in ("STARTED", "RETRY", "FAILURE", "REVOKED", "SUCCESS"):
        store.set("t1", state, b"late", None)
        assert store.get("t1") == b"ok"
    assert store.wait("t1", 1) == b"ok"
    store.forget("t1")
    store.set("t1", "STARTED", b"again", None)
    assert store.get("t1") == b"again"
    # revoke()'s REVOKED mark may be refined by the node's own REVOKED, and only by that.
    store.set("t2", "REVOKED", b"mark", None)
    store.set("t2", "SUCCESS", b"late", None)
    store.set("t2", "REVOKED", b"verdict", None)
    assert store.get("t2") == b"verdict"


# -- idempotency: every call applied twice has the effect of one -------------------------

def twice(store: Any, call: Callable[[], Any]) -> tuple[Any, Any]:
    first = call()
    once = snapshot(store)
    second = call()
    assert snapshot(store) == once
    return first, second


def test_publish_twice_queues_once(store: Any) -> None:
    twice(store, lambda: store.publish(Q, "m0", b"x"))
    twice(store, lambda: store.publish(Q, "later", b"y", eta=time.time() + 60))
    assert [d.mid for d in store.claim([Q], A, "c1.1", 10, 0)] == ["m0"]
    assert store.stats().scheduled == 1


def test_begin_and_start_twice_count_one_delivery(store: Any) -> None:
    store.publish(Q, "m0", b"x")
    d = one(store)
    assert twice(store, lambda: store.begin(d)) == (OK, OK)
    assert twice(store, lambda: store.start(d, "t0", b"started", store, None)) == (OK, OK)
    assert store.get("t0") == b"started"
    store.nack([d])
    again = one(store)
    assert again.deliveries == 1
    assert twice(store, lambda: store.start(again, "t0", b"started", None, None)) == (OK, OK)
    store.nack([again])
    assert one(store).deliveries == 2


def test_ack_nack_dead_letter_twice_act_once(store: Any) -> None:
    for mid in ("m0", "m1", "m2", "m3"):
        store.publish(Q, mid, b"x")
    d0, d1, d2 = store.claim([Q], A, "c1.1", 3, 0)
    assert twice(store, lambda: store.ack([d0])) == (OK, LOST)
    assert twice(store, lambda: store.nack([d1])) == (OK, LOST)
    assert twice(store, lambda: store.dead_letter(d2, "bad")) == (OK, LOST)
    assert [d.mid for d in store.dead_letters()] == ["m2"]
    assert [d.mid for d in store.claim([Q], A, "c1.1", 10, 0)] == ["m1", "m3"]


@pytest.mark.parametrize("target", [Q, "other"])
def test_reschedule_twice_makes_one_retry(store: Any, target: str) -> None:
    store.publish(Q, "try1", b"t1")
    d = one(store)
    assert twice(store, lambda: store.reschedule(d, target, "try2", b"t2", None)) == (OK, LOST)
    assert [x.mid for x in store.claim([target], A, "c1.1", 10, 0)] == ["try2"]
    assert store.stats().leased == 1


def test_finish_twice_stores_once_and_acks_once(store: Any) -> None:
    store.publish(Q, "m0", b"x")
    store.publish(Q, "m1", b"y")
    d = one(store)
    store.start(d, "t0", b"started", store, None)
    first, second = twice(store, lambda: store.finish(d, "t0", "SUCCESS", b"ok", store, None))
    assert (first, second) == (OK, LOST)
    assert store.get("t0") == b"ok"
    assert [x.mid for x in store.claim([Q], A, "c1.1", 10, 0)] == ["m1"]


def test_node_calls_twice_act_once(store: Any) -> None:
    for mid in ("m0", "m1"):
        store.publish(Q, mid, b"x")
    store.publish("gone", "g0", b"x")
    twice(store, lambda: store.heartbeat(A, {"name": "wa"}))
    one(store, consumer="c1.1")
    one(store, consumer="c2.1")
    assert twice(store, lambda: store.release(A, "c1.1")) == (1, 0)
    assert twice(store, lambda: store.release(A)) == (1, 0)
    assert twice(store, lambda: store.purge("gone")) == (1, 0)
    twice(store, lambda: store.set("t0", "SUCCESS", b"ok", None))
    twice(store, lambda: store.unregister(A))
    assert store.stats().nodes == []


def test_requeue_dead_nodes_twice_requeues_once(store_factory: Any) -> None:
    a, b, _ = reap(store_factory)
    assert b.requeue_dead_nodes(EXPIRY) == 0
    assert [d.mid for d in b.claim([Q], B, "c1.1", 10, 0)] == ["m0"]
