"""The Redis store beyond the shared broker contract: URLs, credentials, outages, leases
after a lost reply, and the node registry with a real expiry."""

from __future__ import annotations

import ssl
import time
from pathlib import Path

import pytest
from redis.connection import Connection, SSLConnection, UnixDomainSocketConnection

from helpers import free_port, wait_for
from qmulti.brokers import create_broker
from qmulti.brokers.redis import RedisStore
from qmulti.brokers.redis.url import parse_redis_url
from qmulti.exceptions import BrokerConnectionError, ConfigError
from redis_server import RedisServer

pytestmark = pytest.mark.timeout(60)
Q = "celery"


# -- URLs (pure) ---------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "cls", "expect"), [
    ("redis://", Connection, {"host": "localhost", "port": 6379, "db": 0, "password": None}),
    ("redis://h", Connection, {"host": "h", "port": 6379, "db": 0}),
    ("redis://h:6380/3", Connection, {"host": "h", "port": 6380, "db": 3}),
    ("redis://:pw@h:1/2", Connection, {"host": "h", "port": 1, "db": 2, "password": "pw"}),
    ("redis://u:p%40ss@h/0", Connection, {"username": "u", "password": "p@ss"}),
    ("redis://h?password=q&db=4", Connection, {"password": "q", "db": 4}),
    ("redis://h/?virtual_host=5", Connection, {"db": 5}),
    ("rediss://h:6390/1", SSLConnection, {"host": "h", "port": 6390, "db": 1}),
    ("rediss://h?ssl_cert_reqs=none", SSLConnection, {"ssl_cert_reqs": ssl.CERT_NONE}),
    ("redis+socket:///run/r.sock", UnixDomainSocketConnection, {"path": "/run/r.sock", "db": 0}),
    ("redis+socket:///run/r.sock?db=2&password=x", UnixDomainSocketConnection,
     {"path": "/run/r.sock", "db": 2, "password": "x"}),
    ("unix:///run/r.sock?virtual_host=1", UnixDomainSocketConnection, {"db": 1}),
])
def test_url_forms(url: str, cls: type, expect: dict[str, object]) -> None:
    target = parse_redis_url(url)
    assert target.connection_class is cls
    for key, value in expect.items():
        assert target.kwargs[key] == value, key


@pytest.mark.parametrize("url", [
    "redis://:s3cret@h:notaport/0",
    "redis://:s3cret@h:6379/notadb",
    "redis://:s3cret@h/0/1",
    "redis+socket://",
    "rediss://:s3cret@h?ssl_cert_reqs=maybe",
])
def test_malformed_url_is_a_config_error_with_the_password_masked(url: str) -> None:
    with pytest.raises(ConfigError) as err:
        create_broker(url)
    text = str(err.value)
    assert "s3cret" not in text and "\n" not in text
    assert "bad redis URL" in text


def test_the_constructor_does_no_io_and_ignores_unknown_options() -> None:
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    store = RedisStore(url, pool_limit=3, max_deliveries=2, prefetch=9, whatever=True)
    assert store.max_deliveries == 2 and store._link.pool_limit == 3
    assert "s3cret" not in repr(store)
    store.close()


# -- credentials and outages ---------------------------------------------------------------

def test_unreachable_is_a_connection_error_at_once_with_the_url_masked() -> None:
    port = free_port()
    store = RedisStore(f"redis://:s3cret@127.0.0.1:{port}/0", connect_timeout=2)
    start = time.monotonic()
    with pytest.raises(BrokerConnectionError) as err:
        store.publish(Q, "m1", b"x")
    assert time.monotonic() - start < 3.0
    text = str(err.value)
    assert f"127.0.0.1:{port}" in text and "***" in text
    assert "s3cret" not in text and "\n" not in text


def test_password_server(tmp_path: Path) -> None:
    with RedisServer(tmp_path, password="s3cret") as server:
        good = RedisStore(server.url)
        good.publish(Q, "m1", b"x")
        assert good.stats().queues == {Q: 1}
        for url in (f"redis://:wrongpw@127.0.0.1:{server.port}/0",
                    f"redis://127.0.0.1:{server.port}/0"):
            with pytest.raises(ConfigError) as err:
                RedisStore(url).claim([Q], "n#1", "c", 1, 0)
            text = str(err.value)
            assert f"127.0.0.1:{server.port}" in text, text
            assert "wrongpw" not in text and "s3cret" not in text and "\n" not in text
        good.close()


def test_unix_socket_url(tmp_path: Path) -> None:
    with RedisServer(tmp_path, unixsocket=True) as server:
        assert server.socket_path is not None
        for url in (f"redis+socket://{server.socket_path}", f"unix://{server.socket_path}?db=1"):
            store = RedisStore(url)
            store.publish(Q, "m1", b"x")
            assert [d.mid for d in store.claim([Q], "n#1", "c", 5, 0)] == ["m1"]
            store.close()


def test_restart_keeps_ready_scheduled_and_leased_messages(tmp_path: Path) -> None:
    with RedisServer(tmp_path) as server:
        store = RedisStore(server.url)
        for i in range(5):
            store.publish(Q, f"m{i}", b"x")
        store.publish(Q, "later", b"x", eta=time.time() + 3600)
        held = store.claim([Q], "n#1", "c", 2, 0)
        server.restart()
        # The same instance carries on: its idle connection is seen dead and replaced.
        stats = store.stats()
        assert (stats.queues, stats.scheduled, stats.leased) == ({Q: 3}, 1, 2)
        assert [d.mid for d in store.claim([Q], "n#1", "c", 5, 0)] == ["m2", "m3", "m4"]
        assert store.release("n#1") == 5
        assert [d.mid for d in store.claim([Q], "n#1", "c", 9, 0)] == \
            [d.mid for d in held] + ["m2", "m3", "m4"]
        store.close()


def test_outage_raises_then_the_same_instance_recovers(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url, connect_timeout=1)
    store.publish(Q, "m1", b"x")
    redis_server.stop()
    try:
        start = time.monotonic()
        with pytest.raises(BrokerConnectionError):
            store.claim([Q], "n#1", "c", 1, 0)
        with pytest.raises(BrokerConnectionError):
            store.set("t1", "SUCCESS", b"{}", 60)
        assert time.monotonic() - start < 5.0
    finally:
        redis_server.start()
    assert [d.mid for d in store.claim([Q], "n#1", "c", 1, 0)] == ["m1"]
    store.close()


# -- leases --------------------------------------------------------------------------------

def test_a_claim_whose_reply_was_lost_is_given_back_on_the_next_claim(
        redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url)
    for i in range(4):
        store.publish(Q, f"m{i}", b"x")
    kept = store.claim([Q], "n#1", "c", 1, 0)  # m0: the consumer holds it
    # The script runs but its reply never arrives (as when the server dies right after).
    k = store._queue(Q)
    store._link.script("claim", k.claim, ["n#1", "c", 2, 5, "0"])
    store._in_doubt.add((Q, "n#1", "c"))
    again = store.claim([Q], "n#1", "c", 5, 0)
    assert [d.mid for d in again] == ["m1", "m2", "m3"]
    assert store.stats().leased == 4
    store.ack(kept + again)
    assert store.stats().leased == 0
    store.close()


@pytest.mark.timeout(30)
def test_requeue_dead_nodes_with_a_real_expiry(redis_server: RedisServer) -> None:
    alive, dead = RedisStore(redis_server.url), RedisStore(redis_server.url)
    for i in range(6):
        alive.publish(Q, f"m{i}", b"x")
    dead.heartbeat("dead#1", {"name": "dead"})
    alive.heartbeat("alive#1", {"name": "alive"})
    taken = dead.claim([Q], "dead#1", "c1", 3, 0)
    mine = alive.claim([Q], "alive#1", "c1", 1, 0)
    assert alive.requeue_dead_nodes(1.0) == 0  # nobody is late yet

    def requeued() -> int:
        alive.heartbeat("alive#1", {"name": "alive"})
        return alive.requeue_dead_nodes(1.0)

    assert wait_for(requeued, 10, "the dead node's leases to go back") == 3
    assert alive.requeue_dead_nodes(1.0) == 0  # once
    assert redis_server.client().zcard("{qmulti}:reaping") == 0  # and then forgotten
    assert [n.node_id for n in alive.stats().nodes] == ["alive#1"]
    assert [d.mid for d in alive.claim([Q], "alive#1", "c2", 3, 0)] == \
        [d.mid for d in taken]
    assert alive.stats().leased == 1 + 3 and mine[0].mid == "m3"
    alive.close()
    dead.close()


def test_a_node_judged_dead_keeps_the_leases_it_takes_afterwards(
        redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url)
    for i in range(4):
        store.publish(Q, f"m{i}", b"x")
    store.heartbeat("n#1", {})
    old = store.claim([Q], "n#1", "c", 2, 0)
    # Judged dead, and the caller stops before giving anything back (a crash half way).
    store._link.script("reap_nodes", ("{qmulti}:nodes", "{qmulti}:nodeinfo",
                                      "{qmulti}:reaping", "{qmulti}:reaps",
                                      "{qmulti}:reaped_at"), ("-1", "3600"))
    # It was only slow: it comes back (and learns it was judged dead) and claims more.
    assert store.heartbeat("n#1", {}) == 1
    new = store.claim([Q], "n#1", "c", 2, 0)
    assert store.requeue_dead_nodes(3600) == 2  # the next caller finishes the job
    assert store.requeue_dead_nodes(3600) == 0
    assert [d.mid for d in store.claim([Q], "x#1", "c", 9, 0)] == [d.mid for d in old]
    assert store.stats().leased == 4  # the new leases stayed n#1's
    store.ack(new)
    store.close()


def test_wait_blocks_without_polling_and_every_waiter_wakes(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url)
    assert store.wait("t1", 0.2) is None
    store.set("t1", "STARTED", b"s", 60)
    assert store.wait("t1", 0.2) is None  # not final
    store.set("t1", "SUCCESS", b"done", 60)
    assert store.wait("t1", 0.2) == b"done" and store.get("t1") == b"done"
    store.forget("t1")
    assert store.get("t1") is None and store.wait("t1", 0.1) is None
    store.close()
