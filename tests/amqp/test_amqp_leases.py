"""The contract rules RabbitMQ keeps its own way, each tested as it holds on amqp://.

- A lease ends when its connection closes (RabbitMQ returns unacked messages at once),
  not when a heartbeat expires: `requeue_dead_nodes` has nothing to take back and
  `heartbeat` never reports the node reaped.
- Delivery counts are RabbitMQ's: every return counts, a nack without begin too.
- Counts read at once may lag an ack or a ladder hop by a moment: these tests poll.
- A channel that is gone (a reconnect) fences its deliveries: every call returns LOST.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from helpers import wait_for
from qmulti.brokers.base import LOST, OK

Q = "celery"
NODE = "w1@host#100.1"
OTHER = "w2@host#200.1"

pytestmark = pytest.mark.timeout(60)


def mids(store: Any, limit: int = 100, timeout: float = 0, node: str = NODE) -> list[str]:
    return [d.mid for d in store.claim([Q], node, "c1.1", limit, timeout)]


def test_a_closed_connection_gives_its_leases_back_at_once(store_factory: Any) -> None:
    a, b = store_factory(), store_factory()
    a.heartbeat(NODE, {"name": "w1"})
    for i in range(3):
        a.publish(Q, f"m{i}", b"x")
    assert mids(a, 2) == ["m0", "m1"]
    assert mids(b, node=OTHER) == ["m2"]  # a's two are held while a lives
    assert b.requeue_dead_nodes(0.0) == 0  # nothing is taken by time
    a.close()
    got = b.claim([Q], OTHER, "c1.1", 10, 5)
    assert [d.mid for d in got] == ["m0", "m1"] and [d.deliveries for d in got] == [1, 1]


def test_every_call_on_a_channel_that_is_gone_is_lost(store_factory: Any) -> None:
    a, b = store_factory(), store_factory()
    a.publish(Q, "m0", b"x")
    (stale,) = a.claim([Q], NODE, "c1.1", 1, 0)
    a.link.close()  # as a dropped connection: the server returns m0
    (current,) = b.claim([Q], OTHER, "c1.1", 1, 5)
    assert current.mid == "m0"
    for call in (lambda: a.begin(stale), lambda: a.ack([stale]), lambda: a.nack([stale]),
                 lambda: a.dead_letter(stale, "stale"),
                 lambda: a.reschedule(stale, Q, "retry", b"r", None),
                 lambda: a.start(stale, "t0", b"s", None, None)):
        assert call() == LOST
    assert b.ack([current]) == OK
    assert mids(b, timeout=0.3, node=OTHER) == []  # no retry was published, m0 is gone


def test_every_return_counts_a_delivery(store_factory: Any) -> None:
    store = store_factory(max_deliveries=2)
    store.publish(Q, "m0", b"x")
    for expected in (0, 1):
        (d,) = store.claim([Q], NODE, "c1.1", 1, 0)
        assert d.deliveries == expected
        store.nack([d])
    assert mids(store) == []  # the third claim dead-letters it
    wait_for(lambda: store.stats().dead == 1, 10, "m0 in celery.dead")
    (dead,) = store.dead_letters()
    assert dead.mid == "m0" and "2 times" in dead.reason


def test_ack_nack_dead_letter_twice_act_once(store: Any) -> None:
    for mid in ("m0", "m1", "m2", "m3"):
        store.publish(Q, mid, b"x")
    d0, d1, d2 = store.claim([Q], NODE, "c1.1", 3, 0)
    assert [store.ack([d0]), store.ack([d0])] == [OK, LOST]
    assert [store.nack([d1]), store.nack([d1])] == [OK, LOST]
    assert [store.dead_letter(d2, "bad"), store.dead_letter(d2, "bad")] == [OK, LOST]
    wait_for(lambda: [d.mid for d in store.dead_letters()] == ["m2"], 10, "one dead letter")
    assert mids(store) == ["m1", "m3"]


def test_due_eta_goes_to_the_tail(store: Any) -> None:
    store.publish(Q, "past", b"x", eta=time.time() - 10)
    store.publish(Q, "soon", b"x", eta=time.time() + 0.2)
    store.publish(Q, "a", b"x")
    assert mids(store, 1) == ["past"]
    wait_for(lambda: store.stats().queues.get(Q) == 2, 15, "the eta message in its queue")
    store.publish(Q, "b", b"x")
    assert mids(store) == ["a", "soon", "b"]


def test_long_delays_wait_in_the_ladder(store: Any) -> None:
    """Delays spread over the ladder's levels wait there, counted as scheduled, and never
    arrive before their time."""
    store.publish("warm-up", "w", b"", eta=time.time() + 0.05)  # declares the ladder
    wait_for(lambda: store.claim(["warm-up"], NODE, "c1.1", 1, 0.1), 10, "the warm-up")
    now = time.time()
    etas = {f"d{i}": now + 5.0 + 0.37 * i for i in range(6)}
    for mid, eta in etas.items():
        store.publish(Q, mid, mid.encode(), eta=eta)
    assert store.stats().scheduled == 6 and mids(store) == []
    seen: dict[str, float] = {}

    def collect() -> bool:
        for d in store.claim([Q], NODE, "c1.1", 10, 0.2):
            seen[d.mid] = time.time()
            store.ack([d])
        return len(seen) == 6
    wait_for(collect, 30, "every delayed message")
    for mid, at in seen.items():
        assert at >= etas[mid] - 0.002, (mid, at - etas[mid])
        assert at < etas[mid] + 3.0


def test_a_delay_declares_only_the_rungs_it_passes_through(store: Any) -> None:
    """About 2.5 s is 80 units of 1/32 s (0b1010000): this connection declares only the
    rungs of the delay's set bits (bit 6 is the highest whatever the publish's lag, units
    64..81), and the server has none of the rungs that no test's delay reaches (12 and up:
    over two minutes), where the eager ladder had all 28."""
    from qmulti.brokers.amqp import topology
    from qmulti.brokers.amqp.inspection import probe

    eta = time.time() + 2.5
    store.publish(Q, "m0", b"x", eta=eta)
    rungs = store._ladder.rungs
    assert any(rungs == {k for k in range(7) if units >> k & 1} for units in range(64, 82)), rungs
    high = probe(store, [topology.level_name(k) for k in range(12, topology.LEVELS)])
    assert high == [None] * (topology.LEVELS - 12)
    assert store.stats().scheduled == 1
    (d,) = wait_for(lambda: store.claim([Q], NODE, "c1.1", 1, 0.2), 10, "m0")
    assert d.mid == "m0" and time.time() >= eta


def test_a_lease_survives_silence_longer_than_the_heartbeat(store_factory: Any) -> None:
    """heartbeat=1: a connection that says nothing for ~2 s is closed by RabbitMQ. The
    link's thread keeps it while the owner thread is busy elsewhere (a running task)."""
    store = store_factory(heartbeat=1)
    store.publish(Q, "m0", b"x")
    (d,) = store.claim([Q], NODE, "c1.1", 1, 0)
    generation = store.link.generation
    began = time.monotonic()
    wait_for(lambda: time.monotonic() - began > 5, 10, "five heartbeat intervals",
             interval=0.5)
    assert store.link.generation == generation
    assert store.ack([d]) == OK


def test_amqp_urls_parse_and_mask() -> None:
    from qmulti.brokers.amqp.url import parse_amqp_url
    from qmulti.urls import mask_url, parse_url

    t = parse_amqp_url("amqp://guest:guest@localhost:5672//")
    assert (t.host, t.port, t.userid, t.vhost, t.ssl) == ("localhost", 5672, "guest", "/",
                                                          False)
    t = parse_amqp_url("amqps://u:p%40ss@rabbit.example/prod")
    assert (t.port, t.password, t.vhost, t.ssl) == (5671, "p@ss", "prod", True)
    assert parse_amqp_url("pyamqp://h").vhost == "/" and "p@ss" not in repr(t)
    assert parse_amqp_url("amqp://h/a%2Fb").vhost == "a/b"
    assert mask_url("amqp://u:secret@h:5672/v") == "amqp://u:***@h:5672/v"
    assert parse_url("pyamqp://h//").kind == "amqp"
    with pytest.raises(Exception, match="result backend"):
        parse_url("rpc://", "broker")


def test_an_unreachable_broker_is_a_clear_error_without_the_password() -> None:
    from helpers import free_port
    from qmulti.brokers.amqp import AmqpBroker
    from qmulti.exceptions import BrokerConnectionError

    store = AmqpBroker(f"amqp://guest:s3cret@127.0.0.1:{free_port()}//", connect_timeout=2)
    with pytest.raises(BrokerConnectionError) as caught:
        store.publish(Q, "m0", b"x")
    assert "cannot reach RabbitMQ" in str(caught.value) and "s3cret" not in str(caught.value)
    store.close()


def test_another_instance_of_this_process_can_give_a_lease_back(store_factory: Any) -> None:
    """A pool child's give-back thread nacks with a broker instance of its own; the nack
    reaches the channel that holds the messages, so another node gets them at once."""
    holder, giver, other = store_factory(), store_factory(), store_factory()
    for i in range(3):
        holder.publish(Q, f"m{i}", b"x")
    got = holder.claim([Q], NODE, "c1.1", 3, 0)
    assert giver.nack(got) == OK
    assert [d.mid for d in other.claim([Q], OTHER, "c1.1", 3, 5)] == ["m0", "m1", "m2"]
    assert holder.ack(got) == LOST
