"""One event as Celery shapes it: a flat dict with `type`, `timestamp`, `hostname`,
`utcoffset`, `pid`, `clock`, then the fields of its type (docs: monitoring, "Event
Reference"). Encoded as compact JSON, one stream entry each.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

TASK_EVENTS = ("task-sent", "task-received", "task-started", "task-succeeded", "task-failed",
               "task-retried", "task-revoked", "task-rejected")
WORKER_EVENTS = ("worker-online", "worker-heartbeat", "worker-offline")
EVENT_TYPES = TASK_EVENTS + WORKER_EVENTS

SW_IDENT = "py-qmulti"
REPR_MAX = 1024  # characters of args, kwargs and results repr (Celery's saferepr is ~1k)

# One encoder, made once: json.dumps with options builds a new one per call.
_encode = json.JSONEncoder(separators=(",", ":"), default=str, ensure_ascii=False).encode


def utcoffset() -> int:
    """Hours west of UTC, as Celery's `utcoffset` field (time.timezone // 3600)."""
    return (time.altzone if time.daylight and time.localtime().tm_isdst > 0
            else time.timezone) // 3600


def safe_repr(value: Any) -> str:
    """A bounded repr that never raises: events carry reprs, not values, as Celery's."""
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not lose the event
        text = f"<unrepresentable {type(value).__name__}: {exc!r}>"
    return text if len(text) <= REPR_MAX else text[:REPR_MAX - 3] + "..."


def make(type_: str, hostname: str, clock: int, **fields: Any) -> dict[str, Any]:
    """The event dict; `fields` may override the common ones (a timestamp taken earlier)."""
    event: dict[str, Any] = {"type": type_, "timestamp": time.time(), "hostname": hostname,
                             "utcoffset": utcoffset(), "pid": os.getpid(), "clock": clock}
    event.update(fields)
    return event


def encode(event: dict[str, Any]) -> bytes:
    return _encode(event).encode()


def decode(body: bytes) -> dict[str, Any] | None:
    """The event, or None for an entry that is not one (never raises to a monitor)."""
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return event if isinstance(event, dict) and "type" in event else None
