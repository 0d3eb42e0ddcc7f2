"""Settings that reach the Redis connection: `broker_transport_options` (`socket_timeout`,
`socket_connect_timeout`), `broker_connection_timeout` and `broker_pool_limit`, through
the one path every process connects by (`qmulti.brokers.connect`)."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest

from qmulti import App
from qmulti.brokers import connect, store_options
from qmulti.brokers.redis.conn import DEFAULT_SOCKET_TIMEOUT
from qmulti.exceptions import BrokerConnectionError
from redis_server import RedisServer


def link_of(store: Any) -> Any:
    return store._link  # the RedisLink holding the pool's timeouts


def test_the_settings_reach_the_link(redis_server: RedisServer) -> None:
    app = App("t", broker=redis_server.url, broker_connection_timeout=2,
              broker_pool_limit=3, broker_transport_options={"socket_timeout": 1.5})
    assert store_options(app.conf) == {"max_deliveries": app.conf.broker_max_deliveries,
                                       "pool_limit": 3, "connect_timeout": 2,
                                       "socket_timeout": 1.5,
                                       "heartbeat": app.conf.broker_heartbeat,
                                       "transport_options": {"socket_timeout": 1.5}}
    for store in (app.broker, app.backend, *connect(app.conf), *connect(app.conf, app.broker.url)):
        link = link_of(store)
        assert (link.socket_timeout, link.connect_timeout, link.pool_limit) == (1.5, 2.0, 3)
        assert link._pool.limit == 3
        assert (link._pool.endpoint.socket_timeout, link._pool.endpoint.connect_timeout) == (1.5, 2)


def test_socket_connect_timeout_wins_and_defaults_stay(redis_server: RedisServer) -> None:
    app = App("t", broker=redis_server.url, broker_connection_timeout=2,
              broker_transport_options={"socket_connect_timeout": 0.5})
    assert link_of(app.broker).connect_timeout == 0.5
    assert link_of(app.broker).socket_timeout == DEFAULT_SOCKET_TIMEOUT == 10.0
    plain = App("t", broker=redis_server.url)
    assert link_of(plain.broker).socket_timeout == DEFAULT_SOCKET_TIMEOUT


@pytest.mark.timeout(60)
def test_socket_timeout_bounds_a_call_to_a_stopped_server(redis_server: RedisServer) -> None:
    app = App("t", broker=redis_server.url, broker_transport_options={"socket_timeout": 1})

    @app.task
    def add(a: int, b: int) -> int:
        return a + b

    assert app.backend.get("nothing") is None  # connected before the freeze
    assert redis_server.proc is not None
    os.kill(redis_server.proc.pid, signal.SIGSTOP)
    try:
        for call in (lambda: app.backend.get("nothing"), lambda: add.delay(4, 4)):
            started = time.monotonic()
            with pytest.raises(BrokerConnectionError, match="timed out"):
                call()
            elapsed = time.monotonic() - started
            # the setting's 1 s, not the default 10 s (slack for a loaded machine)
            assert 0.9 <= elapsed < 4.0, elapsed
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)
    assert app.backend.get("nothing") is None  # and the store recovers once it answers
