"""The Redis store under Sentinel, in one process: URLs, discovery, following the master
through a failover (killed, and a manual one that demotes it), WAIT, get() waiters."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sentinel_cluster import MASTER_NAME, PASSWORD, SentinelCluster

from helpers import wait_for
from qmulti import App
from qmulti.brokers import create_broker
from qmulti.brokers.redis.durable import ReplicationError
from qmulti.brokers.redis.sentinel import parse_sentinel_url
from qmulti.exceptions import BrokerConnectionError, ConfigError
from qmulti.supervisor import brokerinfo
from qmulti.urls import mask_url, parse_url

MOVED = "Redis master 'mymaster' is now at"


def test_urls_parse_mask_and_refuse_what_is_missing() -> None:
    url = "sentinel://:pw1@h1:26380/2;sentinel://u:pw2@h2;sentinel://h3:26381"
    spec = parse_sentinel_url(url, {"master_name": "m", "sentinel_kwargs": {"password": "x"}})
    assert spec.sentinels == (("h1", 26380), ("h2", 26379), ("h3", 26381))
    assert spec.kwargs == {"password": "pw1", "username": None, "db": 2}
    assert spec.sentinel_kwargs == {"password": "x"}
    assert parse_url(url).kind == "redis"
    masked = mask_url(url)
    assert "pw1" not in masked and "pw2" not in masked and masked.count("***") == 2
    assert "pw1" not in repr(spec) and "pw1" not in repr(create_broker(url, master_name="m"))
    with pytest.raises(ConfigError, match="master_name") as info:
        create_broker(url)
    assert "pw1" not in str(info.value)
    with pytest.raises(ConfigError, match="sentinel://host:port"):
        create_broker("sentinel://:pw@h1;redis://h2", master_name="m")
    with pytest.raises(ConfigError, match="database must be a number"):
        create_broker("sentinel://h1/x", master_name="m")
    with pytest.raises(ConfigError, match="wait_replicas"):
        create_broker("sentinel://h1", master_name="m", wait_replicas=-1)


def _moves(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(MOVED)]


@pytest.mark.timeout(150)
def test_a_store_follows_the_master_through_a_kill_and_a_manual_failover(
        cluster: SentinelCluster, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="qmulti")
    app = App("t", broker=cluster.url,
              broker_transport_options=cluster.options(failover_timeout=30))
    store: Any = app.broker
    waiter_store = create_broker(cluster.url, **cluster.options(failover_timeout=30))
    store.publish("q", "m1", b"one")
    store.heartbeat("other-node", {"name": "other"})
    old = cluster.master.port
    assert store._link.address == ("127.0.0.1", old)

    # A get() waiter that blocks across the failover gets the result stored after it.
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(waiter_store.wait("t1", 60)))
    waiter.start()
    time.sleep(0.3)  # the waiter is blocked in BRPOPLPUSH on the old master
    cluster.master.kill()
    started = time.monotonic()
    store.publish("q", "m2", b"two")  # waits for the new master, no error
    new = cluster.wait_promoted(old)
    assert time.monotonic() - started < 30
    assert store._link.address == ("127.0.0.1", new.port)
    store.set("t1", "SUCCESS", b'{"status": "SUCCESS"}', None)
    waiter.join(60)
    assert got == [b'{"status": "SUCCESS"}']
    assert store.stats().queues == {"q": 2}
    assert len(_moves(caplog)) == 1, _moves(caplog)  # one line per process, two links
    # Right after the move nobody is reaped: every node gets one expiry to heartbeat.
    # An expiry between the two ages: the heartbeat is older, the move more recent.
    since_move = time.monotonic() - store._link.switched_at
    beat_age = store.clock() - store.stats().nodes[0].heartbeat
    assert beat_age - since_move > 1.0  # the failover itself took that long
    expiry = (since_move + beat_age) / 2
    assert store.requeue_dead_nodes(expiry=expiry) == 0
    assert [n.node_id for n in store.stats().nodes] == ["other-node"]  # not judged
    fresh = create_broker(cluster.url, **cluster.options())  # never saw the old master
    fresh.requeue_dead_nodes(expiry=expiry)
    assert store.stats().nodes == []  # the same call without the move judges it
    fresh.close()

    # The old master comes back: Sentinel makes it the new one's replica.
    cluster.master.start()
    caplog.clear()

    def rejoined() -> bool:
        return cluster.master.client().info("replication").get("master_link_status") == "up"
    wait_for(rejoined, 60, "the old master back as a replica", interval=0.2)
    # A manual failover demotes the master in place (no kill): the store sees READONLY
    # or a closed connection, asks again and carries on.
    new.client().ping()
    cluster.sentinels[0].client().sentinel_failover(MASTER_NAME)
    back = cluster.wait_promoted(new.port)
    assert back.port == old
    wait_for(lambda: new.client().info("replication")["role"] == "slave", 30,
             "the demoted master to turn replica", interval=0.1)
    for n in range(20):
        store.publish("q", f"after-{n}", b"x")
    assert store.stats().queues == {"q": 22}
    assert len(_moves(caplog)) == 1
    assert all(PASSWORD not in r.getMessage() for r in caplog.records)
    waiter_store.close()


@pytest.mark.timeout(120)
def test_wait_replicas_confirms_a_publish_or_says_why_not(cluster: SentinelCluster,
                                                           tmp_path: Path) -> None:
    # `qmulti status -b sentinel://...` with no app to name the master: the only one.
    info = brokerinfo.gather(cluster.url, str(tmp_path))
    footer = "\n".join(brokerinfo.footer(info))
    assert (f"redis master: mymaster at 127.0.0.1:{cluster.master.port}  replicas: "
            f"127.0.0.1:{cluster.replica.port}") in footer, footer
    assert PASSWORD not in footer + json.dumps(info.as_dict())
    store: Any = create_broker(cluster.url, **cluster.options(
        wait_replicas=1, wait_timeout_ms=300, failover_timeout=2))
    started = time.monotonic()
    for n in range(50):
        store.publish("q", f"m{n}", b"x")
    assert time.monotonic() - started < 10  # WAIT returns as soon as the replica has it
    assert cluster.replica.client().hlen("{qmulti:q}:msgs") == 50  # on the replica already
    cluster.replica.kill()
    started = time.monotonic()
    with pytest.raises(ReplicationError) as info:
        store.publish("q", "lonely", b"x")
    took = time.monotonic() - started
    assert 1.5 < took < 10, took  # re-sent for failover_timeout, then one clear error
    assert isinstance(info.value, BrokerConnectionError)
    assert "0 of 1 replica(s)" in str(info.value) and PASSWORD not in str(info.value)
    assert store.stats().queues == {"q": 51}  # on the master, stored once for every re-send
