"""Result backends by URL scheme. The SQLite and Redis stores are broker and backend in
one class, so with no separate backend configured the broker's own store serves, and the
node stores a result and acks its message in one transaction."""

from __future__ import annotations

from typing import Any

from worker.backends.base import ResultBackend
from worker.brokers import Broker, create_broker
from worker.urls import parse_url

__all__ = ["ResultBackend", "create_backend"]


def create_backend(url: str | None, broker: Broker | None = None, **options: Any) -> ResultBackend:
    """The backend for `url`; the broker itself when `url` is empty or names the same store."""
    if broker is not None and (not url or url == broker.url) and isinstance(broker, ResultBackend):
        return broker
    parsed = parse_url(url, "result backend")
    store = create_broker(parsed.url, **options)
    if not isinstance(store, ResultBackend):  # pragma: no cover - every store is both
        raise TypeError(f"{parsed} cannot store results")
    return store
