"""The broker contract, canvas part: continuations sent in `finish`, exactly once.

Same `store_factory` as `test_broker_contract.py` (memory, sqlite, redis). A finish that
carries continuations publishes them in the step that stores the result and acks; a
second finish of the same task (re-sent call, second delivery, duplicate message) or a
stale one (lease lost) publishes nothing; a chord's body goes out once, when its set of
finished members is complete, however often a member finishes.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from helpers import wait_for
from qmulti.brokers.base import LOST, OK, ChordPart, Continuation, Delivery, Message

A = "wa@host#100.1"
B = "wb@host#200.1"
Q = "celery"

pytestmark = pytest.mark.timeout(60)


def lease(store: Any, node: str = A, queues: tuple[str, ...] = (Q,)) -> Delivery:
    (d,) = store.claim(list(queues), node, "c1.1", 1, 0)
    return d


def ready(store: Any, queue: str) -> int:
    return int(store.stats().queues.get(queue, 0))


def bodies(store: Any, queue: str) -> list[bytes]:
    out = []
    while True:
        got = store.claim([queue], A, "drain", 100, 0)
        if not got:
            return sorted(out)
        out += [d.body for d in got]
        store.ack(got)


def test_a_finish_publishes_its_continuations_once_however_often_it_is_sent(
        store_factory: Any) -> None:
    store = store_factory()
    store.heartbeat(A, {})
    store.publish(Q, "m1", b"step1")
    d = lease(store)
    then = Continuation("t1", (Message("next", "m2", b"step2"), Message("links", "m3", b"cb"),
                               Message("next", "m4", b"later", time.time() + 60)))
    assert store.finish(d, "t1", "SUCCESS", b"r1", store, None, then) == OK
    assert store.get("t1") == b"r1"
    assert ready(store, Q) == 0 and ready(store, "next") == 1 and ready(store, "links") == 1
    assert store.stats().scheduled == 1
    # re-sent after a lost reply: the lease is gone, nothing more is published
    assert store.finish(d, "t1", "SUCCESS", b"r1", store, None, then) == LOST
    assert ready(store, "next") == 1 and ready(store, "links") == 1
    assert store.stats().scheduled == 1


def test_a_duplicate_message_of_the_same_task_continues_nothing_more(
        store_factory: Any) -> None:
    store = store_factory()
    store.heartbeat(A, {})
    store.publish(Q, "m1", b"step1")
    store.publish(Q, "m1-dup", b"step1")  # the same task published twice
    then = Continuation("t1", (Message("next", "m2", b"step2"),))
    for _ in range(2):
        d = lease(store)
        assert store.finish(d, "t1", "SUCCESS", b"r1", store, None, then) == OK
        # a new mid for the next step each time: only the marker stops the second
        then = Continuation("t1", (Message("next", "m2-again", b"step2"),))
    assert bodies(store, "next") == [b"step2"]


def test_a_stale_finish_publishes_nothing_and_the_new_holder_continues(
        store_factory: Any) -> None:
    a, b = store_factory(), store_factory()
    a.publish(Q, "m1", b"step1")
    a.heartbeat(A, {})
    stale = lease(a)
    at = time.time()
    wait_for(lambda: time.time() - at > 0.45, 5, "A's heartbeat to age")
    b.heartbeat(B, {})
    assert b.requeue_dead_nodes(0.3) == 1
    current = lease(b, B)
    then = Continuation("t1", (Message("next", "m2", b"step2"),))
    assert a.finish(stale, "t1", "SUCCESS", b"by-a", a, None, then) == LOST
    assert ready(b, "next") == 0
    assert b.finish(current, "t1", "SUCCESS", b"by-b", b, None, then) == OK
    assert ready(b, "next") == 1
    assert b.get("t1") == b"by-a"  # the first outcome stands


def test_a_finish_with_the_result_stored_elsewhere_still_continues(
        store_factory: Any) -> None:
    store = store_factory()
    store.heartbeat(A, {})
    store.publish(Q, "m1", b"step1")
    d = lease(store)
    then = Continuation("t1", (Message("next", "m2", b"step2"),))
    assert store.finish(d, "t1", "SUCCESS", None, None, None, then) == OK
    assert store.get("t1") is None and ready(store, "next") == 1 and ready(store, Q) == 0


def _members(store: Any, n: int) -> None:
    for i in range(n):
        store.publish(Q, f"m{i}", f"member{i}".encode())


def test_a_chord_fires_once_when_its_set_is_complete_despite_a_member_run_twice(
        store_factory: Any) -> None:
    store = store_factory()
    store.heartbeat(A, {})
    body = Message("bodies", "body-mid", b"the-body")
    store.chord_init("c1", 3, body)
    store.chord_init("c1", 99, Message("bodies", "other", b"not-this"))  # re-sent: ignored
    _members(store, 3)
    store.publish(Q, "m0-dup", b"member0")  # member 0 published twice

    def finish(mid_index: int, member: str) -> str:
        d = lease(store)
        part = ChordPart("c1", "bodies", member)
        return store.finish(d, member, "SUCCESS", b"r", store, None,
                            Continuation(member, (), part))

    assert finish(0, "t0") == OK
    assert finish(1, "t1") == OK
    assert ready(store, "bodies") == 0
    assert finish(2, "t0") == OK  # the duplicate: t0 again, the set is still {t0, t1}
    assert ready(store, "bodies") == 0
    assert finish(3, "t2") == OK
    assert bodies(store, "bodies") == [b"the-body"]
    # a member finishing after the body fired (another duplicate) fires nothing
    store.publish(Q, "m2-dup", b"member2")
    d = lease(store)
    assert store.finish(d, "t2-again", "SUCCESS", b"r", store, None,
                        Continuation("t2-again", (), ChordPart("c1", "bodies", "t2"))) == OK
    assert ready(store, "bodies") == 0


def test_a_failed_member_fires_the_chord_at_once_and_only_once(store_factory: Any) -> None:
    store = store_factory()
    store.heartbeat(A, {})
    store.chord_init("c2", 3, Message("bodies", "body2", b"body"))
    _members(store, 3)
    for i, state in enumerate(("FAILURE", "SUCCESS", "FAILURE")):
        d = lease(store)
        assert store.finish(d, f"t{i}", state, b"r", store, None,
                            Continuation(f"t{i}", (), ChordPart("c2", "bodies", f"t{i}"))) == OK
        assert ready(store, "bodies") == 1
    assert bodies(store, "bodies") == [b"body"]


def test_get_many_reads_results_in_order(store_factory: Any) -> None:
    store = store_factory()
    store.set("x", "SUCCESS", b"one", None)
    store.set("z", "FAILURE", b"three", None)
    assert store.get_many(["x", "y", "z"]) == [b"one", None, b"three"]


def test_publish_many_is_publish_each(store_factory: Any) -> None:
    store = store_factory()
    later = Message("other", "p-later", b"y", time.time() + 60)
    store.publish_many([Message(Q, f"p{i}", b"x") for i in range(5)]
                       + [Message(Q, "p0", b"again"), later])
    assert ready(store, Q) == 5 and store.stats().scheduled == 1
    assert bodies(store, Q) == [b"x"] * 5  # a re-sent mid is one message, the first


def test_a_chord_left_incomplete_is_forgotten_after_its_life_unless_it_progresses(
        store_factory: Any) -> None:
    """A producer that died before sending every member leaves a chord that can never
    fire: its record goes after `ttl`; a member's finish renews it."""
    store = store_factory()
    store.heartbeat(A, {})
    store.chord_init("lost", 1, Message("bodies", "lost-body", b"never"), ttl=0.3)
    store.chord_init("slow", 2, Message("bodies", "slow-body", b"slow"), ttl=0.6)
    _members(store, 1)
    assert store.finish(lease(store), "s0", "SUCCESS", b"r", store, None,
                        Continuation("s0", (), ChordPart("slow", "bodies", "s0"))) == OK
    start = time.monotonic()
    wait_for(lambda: time.monotonic() - start > 0.8, timeout=5, what="both lives over")
    store.publish(Q, "late-lost", b"m")
    store.publish(Q, "late-slow", b"m")
    assert store.finish(lease(store), "l0", "SUCCESS", b"r", store, None,
                        Continuation("l0", (), ChordPart("lost", "bodies", "l0"))) == OK
    assert ready(store, "bodies") == 0  # forgotten: nothing fires
    assert store.finish(lease(store), "s1", "SUCCESS", b"r", store, None,
                        Continuation("s1", (), ChordPart("slow", "bodies", "s1"))) == OK
    assert bodies(store, "bodies") == [b"slow"]  # renewed by s0's finish, so it fired
    # an expired chord id can be recorded afresh (a producer re-sending it later)
    store.chord_init("lost", 1, Message("bodies", "new-body", b"new"), ttl=60)
    store.publish(Q, "again", b"m")
    assert store.finish(lease(store), "l1", "SUCCESS", b"r", store, None,
                        Continuation("l1", (), ChordPart("lost", "bodies", "l1"))) == OK
    assert bodies(store, "bodies") == [b"new"]
