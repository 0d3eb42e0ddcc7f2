"""Brokers by URL scheme. Each store is imported only when its URL is used, so that a
sqlite user never imports redis-py, and so start-up stays fast."""

from __future__ import annotations

from typing import Any

from worker.brokers.base import Broker, BrokerStats, DeadLetter, Delivery, NodeRecord
from worker.urls import parse_url

__all__ = ["Broker", "BrokerStats", "DeadLetter", "Delivery", "NodeRecord", "create_broker"]


def create_broker(url: str | None, **options: Any) -> Broker:
    """A new broker connection for this process. Options: max_deliveries, pool_limit."""
    parsed = parse_url(url, "broker")
    if parsed.kind == "sqlite":
        from worker.brokers.sqlite import SqliteStore

        return SqliteStore(parsed.url, **options)
    if parsed.kind == "redis":
        from worker.brokers.redis import RedisStore

        return RedisStore(parsed.url, **options)
    from worker.brokers.memory import MemoryStore

    return MemoryStore(parsed.url, **{k: v for k, v in options.items() if k == "max_deliveries"})
