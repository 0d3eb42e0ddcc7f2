"""qmulti's task queue API, shaped like Celery's: `from worker import App`.

`App` owns settings, tasks and connections; `Task`, `AsyncResult` and the exception
types are re-exported so user code needs one import line, as with `celery`.
"""

from __future__ import annotations

from worker import exceptions, states
from worker.app import App
from worker.config import Config, Settings
from worker.exceptions import (
    ConfigError,
    ImproperlyConfigured,
    MaxRetriesExceededError,
    NotRegistered,
    QmultiError,
    Reject,
    Retry,
    SerializationError,
    SoftTimeLimitExceeded,
    TaskRevokedError,
    TimeLimitExceeded,
    TimeoutError,
)
from worker.result import AsyncResult
from worker.task import ExceptionInfo, Request, Task

Celery = App  # so `from worker import Celery` works in code written for Celery

__all__ = [
    "App", "AsyncResult", "Celery", "Config", "ConfigError", "ExceptionInfo",
    "ImproperlyConfigured", "MaxRetriesExceededError", "NotRegistered", "QmultiError",
    "Reject", "Request", "Retry", "SerializationError", "Settings", "SoftTimeLimitExceeded",
    "Task", "TaskRevokedError", "TimeLimitExceeded", "TimeoutError", "exceptions", "states",
]
