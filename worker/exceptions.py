"""One error hierarchy for the whole worker package.

Entry points (`qworker`, `qmulti`) map these to exit codes and a one-line message;
everything below them raises, never prints or exits.
"""

from __future__ import annotations

from typing import Any


class QmultiError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(QmultiError):
    """The configuration is wrong; a restart with the same settings fails again (exit 78)."""


class ImproperlyConfigured(ConfigError):
    """Celery's name for a configuration error, kept so user code catching it works."""


class UsageError(QmultiError):
    """The command line is wrong (exit 64 for qworker)."""


class BrokerError(QmultiError):
    """The broker refused or failed an operation."""


class BrokerConnectionError(BrokerError):
    """The broker cannot be reached right now; it may come back, so callers may retry."""


class BackendError(QmultiError):
    """The result backend refused or failed an operation."""


class SerializationError(QmultiError):
    """A value cannot be encoded (for example a non-JSON argument under `json`)."""


class ContentDisallowed(SerializationError):
    """A message uses a content type that `accept_content` does not allow (pickle)."""


class MalformedMessage(QmultiError):
    """A broker message cannot be decoded; the node dead-letters it and carries on."""


class NotRegistered(QmultiError, KeyError):
    """No task of that name is registered in the app."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class TimeoutError(QmultiError, TimeoutError):  # Celery's name, on purpose
    """`AsyncResult.get(timeout=...)` ran out before the task was ready."""


class TaskRevokedError(QmultiError):
    """The task was revoked or expired before it ran."""


class WorkerLostError(QmultiError):
    """The process running the task died; the task was given back or failed."""


class TimeLimitExceeded(QmultiError):
    """The task ran past its hard time limit and its pool child was killed."""


class SoftTimeLimitExceeded(QmultiError):
    """Raised inside a task when its soft time limit passes, so it can clean up."""


class Retry(QmultiError):
    """Raised by `Task.retry()` to tell the node to schedule another try.

    `when` is the unix time of the next try once `Task.retry` has made it. A task that
    raises `Retry(exc=e, when=...)` itself may give, as in Celery, a countdown in
    seconds or a datetime; the node turns that into a `Task.retry` call, so that
    `max_retries` still holds."""

    def __init__(self, message: str | None = "", exc: BaseException | None = None,
                 when: Any = None, **_celery_only: Any) -> None:
        super().__init__(message or "")
        self.exc = exc
        self.when = when
        self.scheduled = False  # True once Task.retry has turned `when` into unix time
        self.countdown: float | None = None  # the delay Task.retry chose, for the log


class Ignore(QmultiError):
    """Raised by a task so the node stores no outcome and just acks the message (the
    task may have stored a state of its own with `update_state`)."""


class Reject(QmultiError):
    """Raised by a task to refuse its message (dead-lettered, not retried)."""

    def __init__(self, reason: str = "", requeue: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.requeue = requeue


class MaxRetriesExceededError(QmultiError):
    """`Task.retry()` was called after `max_retries` tries."""


class ChordError(QmultiError):
    """A chord's body did not run because a header task failed (named in the message)."""
