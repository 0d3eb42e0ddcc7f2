"""The Redis store (`redis://`, `rediss://`, `redis+socket://`): broker and result backend
in one class, every multi-key state change one Lua script under lua/ (see store.py)."""

from qmulti.brokers.redis.store import RedisStore

__all__ = ["RedisStore"]
