"""Task states, spelled as Celery spells them so that user code comparing strings works."""

from __future__ import annotations

PENDING = "PENDING"  # unknown, queued, or prefetched but not begun
STARTED = "STARTED"  # a pool child has begun it (always tracked)
RETRY = "RETRY"  # failed, and a retry waits in the broker
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
REVOKED = "REVOKED"  # revoked or expired: it will never run

READY_STATES = frozenset({SUCCESS, FAILURE, REVOKED})
EXCEPTION_STATES = frozenset({RETRY, FAILURE, REVOKED})
ALL_STATES = frozenset({PENDING, STARTED, RETRY, SUCCESS, FAILURE, REVOKED})
