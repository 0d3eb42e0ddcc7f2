"""Task states, spelled as Celery spells them so that user code comparing strings works."""

from __future__ import annotations

PENDING = "PENDING"  # unknown, queued, or prefetched but not begun
STARTED = "STARTED"  # a pool child has begun it (always tracked)
RETRY = "RETRY"  # failed, and a retry waits in the broker
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
REVOKED = "REVOKED"  # revoked or expired: it will never run
REJECTED = "REJECTED"  # the task raised Reject (only an eager result shows it)
IGNORED = "IGNORED"  # the task raised Ignore (only an eager result shows it)

READY_STATES = frozenset({SUCCESS, FAILURE, REVOKED})
EXCEPTION_STATES = frozenset({RETRY, FAILURE, REVOKED})
PROPAGATE_STATES = frozenset({FAILURE, REVOKED})  # get() raises for these
ALL_STATES = frozenset({PENDING, STARTED, RETRY, SUCCESS, FAILURE, REVOKED})
# Any other string is a custom state a task set with `update_state` ("PROGRESS").
