"""Canvas on an amqp:// broker, broker calls only, on both side stores (SQLite and Redis):
a finish sends its continuations once, a lost lease sends nothing, a chord fires once,
and the reaper relays what a dead relay left (see qmulti/brokers/amqp/canvas.py). The
same on real nodes is test_amqp_canvas.py."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from helpers import wait_for

pytestmark = pytest.mark.timeout(120)

NODE = "w1@host#100.1"
Q = "celery"


@pytest.fixture(params=["sqlite", "redis"])
def side_factory(request: pytest.FixtureRequest, store_factory: Any, tmp_path: Path) -> Any:
    """`make()`: an AmqpBroker of this test's vhost with a SQLite or a Redis side store."""
    if request.param == "redis":
        side = request.getfixturevalue("redis_server").url
    else:
        side = f"sqlite:///{tmp_path / 'side.db'}"

    def make() -> Any:
        store = store_factory(result_backend=side)
        store.heartbeat(NODE, {})
        return store
    return make


def _lease(store: Any) -> Any:
    (d,) = store.claim([Q], NODE, "c1.1", 1, 5)
    return d


def _drain(store: Any, queue: str, settle: float = 0.5) -> list[bytes]:
    """Every body that reaches `queue` until none came for `settle` seconds."""
    out: list[bytes] = []
    while got := store.claim([queue], NODE, "drain", 100, settle):
        out += [d.body for d in got]
        store.ack(got)
    return sorted(out)


def _side_is_clean(store: Any) -> None:
    from qmulti.brokers.amqp.canvas import CARRIER
    from qmulti.brokers.amqp.side import OUTBOX

    stats = store.side.store().stats()
    assert not stats.queues.get(OUTBOX) and not stats.queues.get(CARRIER), stats
    assert stats.leased == 0, stats


def test_a_finish_sends_its_continuations_once(side_factory: Any) -> None:
    from qmulti.brokers.base import LOST, OK, Continuation, Message

    store = side_factory()
    store.publish(Q, "m1", b"step1")
    d = _lease(store)
    then = Continuation("t1", (Message("next", "m2", b"step2"), Message("links", "m3", b"cb"),
                               Message("later", "m4", b"later", time.time() + 2.0)))
    assert store.finish(d, "t1", "SUCCESS", None, None, None, then) == OK
    assert store.claim(["later"], NODE, "drain", 10, 0.3) == []  # its eta is ahead
    assert store.finish(d, "t1", "SUCCESS", None, None, None, then) == LOST  # re-sent
    assert _drain(store, "next") == [b"step2"] and _drain(store, "links") == [b"cb"]
    assert _drain(store, "later", settle=3.0) == [b"later"]
    _side_is_clean(store)

    # The same task again (a duplicate message, a re-run): only the marker stops it.
    store.publish(Q, "m1-dup", b"step1")
    again = Continuation("t1", (Message("next", "m2-again", b"step2"),))
    assert store.finish(_lease(store), "t1", "SUCCESS", None, None, None, again) == OK
    assert _drain(store, "next") == []
    _side_is_clean(store)


def test_a_lost_lease_sends_nothing(side_factory: Any) -> None:
    from qmulti.brokers.base import LOST, OK, Continuation, Message

    a, b = side_factory(), side_factory()
    a.publish(Q, "m1", b"step1")
    stale = _lease(a)
    a.link.close()  # a dropped connection: RabbitMQ has m1 back
    then = Continuation("t1", (Message("next", "m2", b"step2"),))
    assert a.ack_and_continue(stale, "SUCCESS", then, None) == LOST
    assert b.ack_and_continue(_lease(b), "SUCCESS", then, None) == OK
    assert _drain(b, "next") == [b"step2"]


def test_a_chord_fires_once(side_factory: Any) -> None:
    from qmulti.brokers.base import OK, ChordPart, Continuation, Message

    store = side_factory()
    store.chord_init("c1", 3, Message("bodies", "body-mid", b"the-body"))
    store.chord_init("c1", 9, Message("bodies", "other", b"not-this"))  # re-sent: ignored
    store.chord_init("c2", 3, Message("bodies", "body2", b"failed-body"))
    for member in ("t0", "t1", "t0", "t2", "t2"):  # t0 and t2 finish twice
        store.publish(Q, f"m-{member}-{time.monotonic()}", b"member")
        part = ChordPart("c1", "bodies", member)
        assert store.finish(_lease(store), member, "SUCCESS", None, None, None,
                            Continuation(member, (), part)) == OK
    store.publish(Q, "f0", b"member")  # a failed member fires c2 at once
    assert store.finish(_lease(store), "f0", "FAILURE", None, None, None,
                        Continuation("f0", (), ChordPart("c2", "bodies", "f0"))) == OK
    assert _drain(store, "bodies") == [b"failed-body", b"the-body"]
    _side_is_clean(store)


def test_the_reaper_relays_what_a_dead_relay_left(side_factory: Any) -> None:
    from qmulti.brokers.amqp.side import OUTBOX, outbox_body

    store = side_factory()
    side = store.side.store()
    dead = "amqp-relay@gone#1.1"
    side.heartbeat(dead, {"kind": "relay"})
    side.publish(OUTBOX, "left", outbox_body("next", b"step2"))
    side.publish(OUTBOX, "left-later", outbox_body("next", b"later", time.time() + 0.5))
    assert len(side.claim([OUTBOX], dead, "relay", 10, 0)) == 2  # then it died
    at = time.time()
    wait_for(lambda: time.time() - at > 0.4, 5, "the dead relay's record to age")
    assert store.requeue_dead_nodes(0.3) == 0  # nothing of RabbitMQ's, but relayed:
    assert _drain(store, "next", settle=2.0) == [b"later", b"step2"]
    _side_is_clean(store)
