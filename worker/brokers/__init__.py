"""Brokers and result backends by URL scheme: the one place that turns settings into
connections, for the producer, the node, its pool children and the controller alike.

Each store is imported only when its URL is used, so a SQLite user never loads the
Redis client and `import qmulti` loads no broker module at all. The SQLite and Redis
stores are broker and backend in one class: with no separate backend configured the
broker's own store serves, and the node stores a result and acks in one transaction.
A separate backend (`db+postgresql://`, or another Redis or SQLite store) is written
first and the message acked after, so a crash in between re-runs, never loses.
"""

from __future__ import annotations

from typing import Any

from qmulti.brokers.base import (
    Broker,
    BrokerStats,
    DeadLetter,
    Delivery,
    NodeRecord,
    ResultBackend,
)
from qmulti.exceptions import ConfigError
from qmulti.urls import parse_url

__all__ = ["Broker", "BrokerStats", "DeadLetter", "Delivery", "NodeRecord", "ResultBackend",
           "create_backend", "create_broker"]


def create_broker(url: str | None, **options: Any) -> Broker:
    """A new broker connection for this process. Options: max_deliveries, pool_limit."""
    parsed = parse_url(url, "broker")
    if parsed.kind == "sqlite":
        from qmulti.brokers.sqlite import SqliteStore

        return SqliteStore(parsed.url, **options)
    if parsed.kind == "redis":
        from qmulti.brokers.redis import RedisStore

        return RedisStore(parsed.url, **options)
    if parsed.kind == "amqp":
        from qmulti.brokers.amqp import AmqpBroker

        return AmqpBroker(parsed.url, **options)
    from qmulti.brokers.memory import MemoryStore

    return MemoryStore(parsed.url, **{k: v for k, v in options.items() if k == "max_deliveries"})


def create_backend(url: str | None, broker: Broker | None = None, **options: Any) -> ResultBackend:
    """The backend for `url`; the broker itself when `url` is empty or names the same store."""
    if broker is not None and (not url or url == broker.url) and isinstance(broker, ResultBackend):
        return broker
    if parse_url(broker.url if broker is not None else None).kind == "amqp":
        from qmulti.brokers.amqp import backend_for

        found = backend_for(url, broker)
        if found is not None:
            return found
    parsed = parse_url(url, "result backend")
    if parsed.kind == "rpc":
        raise ConfigError("the rpc:// result backend needs an amqp:// broker")
    if broker is not None and parsed.url == broker.url and isinstance(broker, ResultBackend):
        return broker  # `db+sqlite:///x.db` beside the broker `sqlite:///x.db`: one store
    if parsed.kind == "postgres":
        from qmulti.brokers.postgres import PostgresResults

        return PostgresResults(parsed.url, **options)
    store = create_broker(parsed.url, **options)
    if not isinstance(store, ResultBackend):  # pragma: no cover - every store is both
        raise TypeError(f"{parsed} cannot store results")
    return store


# Transport options a Redis store takes as they are: Sentinel's (`sentinel://` URLs) and
# `wait_replicas` (see worker/brokers/redis/durable.py and sentinel.py).
PASSED_THROUGH = ("master_name", "sentinel_kwargs", "failover_timeout", "wait_replicas",
                  "wait_timeout_ms")


def store_options(conf: Any, which: str = "broker") -> dict[str, Any]:
    """What every store constructor takes from the settings, read in one place so the
    producer, the node, each pool child and the controller connect alike.

    `broker_transport_options` may carry Celery's `socket_timeout` and
    `socket_connect_timeout`; the latter wins over `broker_connection_timeout`. With
    `which="backend"`, the Sentinel and WAIT options come from
    `result_backend_transport_options` instead (Celery's split)."""
    transport = dict(getattr(conf, "broker_transport_options", None) or {})
    passed = transport
    if which == "backend":
        passed = dict(getattr(conf, "result_backend_transport_options", None) or {})
    connect_timeout = (transport.get("socket_connect_timeout")
                       or getattr(conf, "broker_connection_timeout", None))
    options: dict[str, Any] = {
        "max_deliveries": getattr(conf, "broker_max_deliveries", None),
        "pool_limit": getattr(conf, "broker_pool_limit", None),
        "connect_timeout": connect_timeout,
        "socket_timeout": transport.get("socket_timeout"),
        **{key: passed.get(key) for key in PASSED_THROUGH},
        # For amqp://, which keeps node records in the result backend (other stores
        # take and ignore these).
        "result_backend": getattr(conf, "result_backend", None),
        "heartbeat": getattr(conf, "broker_heartbeat", None),
        "transport_options": transport or None,
    }
    return {key: value for key, value in options.items() if value is not None}


def connect(conf: Any, broker_url: str | None = None) -> tuple[Broker, ResultBackend]:
    """This process's (broker, backend) pair from the settings: the one path from
    settings to connections. `broker_url` overrides `conf.broker_url` (the controller
    passes an absolute SQLite path)."""
    options = store_options(conf)
    broker = create_broker(broker_url or conf.broker_url, **options)
    try:
        backend = create_backend(getattr(conf, "result_backend", None), broker=broker,
                                 **store_options(conf, "backend"))
    except BaseException:
        broker.close()
        raise
    return broker, backend
