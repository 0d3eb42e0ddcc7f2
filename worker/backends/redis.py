"""`redis://` as a result backend: the same class as the broker (see worker.brokers.redis),
so a node whose broker and backend are one Redis stores a result and acks in one call."""

from __future__ import annotations

from worker.brokers.redis import RedisStore

RedisBackend = RedisStore

__all__ = ["RedisBackend", "RedisStore"]
