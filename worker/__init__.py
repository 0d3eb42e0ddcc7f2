"""qmulti's task queue API, shaped like Celery's: `from qmulti import Celery`.

Names are loaded on first use (PEP 562), so `import qmulti` costs almost nothing and
the controller (`qmulti show`, `qmulti status`) never pays for the app, the protocol or
any broker. `App` owns settings, tasks and connections; `Task`, `AsyncResult` and the
exception types are here too, so user code needs one import line, as with `celery`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qmulti.app import App, Celery, current_app, shared_task
    from qmulti.appstate import current_task
    from qmulti.canvas import (
        Signature,
        chain,
        chord,
        chunks,
        group,
        maybe_signature,
        signature,
        subtask,
        xmap,
        xstarmap,
    )
    from qmulti.config import Config, Settings
    from qmulti.exceptions import (
        ChordError,
        ConfigError,
        Ignore,
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
    from qmulti.protocol import new_id as uuid
    from qmulti.result import AsyncResult, EagerResult
    from qmulti.result_set import GroupResult, ResultSet
    from qmulti.task import ExceptionInfo, Request, Task

# name -> the module that defines it
_EXPORTS = {
    "App": "qmulti.app", "Celery": "qmulti.app", "current_app": "qmulti.app",
    "shared_task": "qmulti.app", "Config": "qmulti.config", "Settings": "qmulti.config",
    "current_task": "qmulti.appstate", "uuid": "qmulti.protocol",
    "AsyncResult": "qmulti.result", "EagerResult": "qmulti.result",
    "ExceptionInfo": "qmulti.task", "Request": "qmulti.task",
    "Task": "qmulti.task", "GroupResult": "qmulti.result_set", "ResultSet": "qmulti.result_set",
    **{name: "qmulti.canvas" for name in (
        "Signature", "chain", "chord", "chunks", "group", "maybe_signature", "signature",
        "subtask", "xmap", "xstarmap")},
    **{name: "qmulti.exceptions" for name in (
        "ChordError", "ConfigError", "Ignore", "ImproperlyConfigured",
        "MaxRetriesExceededError", "NotRegistered", "QmultiError", "Reject", "Retry",
        "SerializationError", "SoftTimeLimitExceeded",
        "TaskRevokedError", "TimeLimitExceeded", "TimeoutError")},
}
_SUBMODULES = {"canvas", "exceptions", "states", "signals", "result", "middleware", "utils"}

__all__ = [
    "App", "AsyncResult", "Celery", "ChordError", "Config", "ConfigError", "EagerResult",
    "ExceptionInfo", "GroupResult", "Ignore", "ImproperlyConfigured", "MaxRetriesExceededError",
    "NotRegistered", "QmultiError", "ResultSet", "Signature", "chain", "chord", "chunks", "group",
    "maybe_signature", "signature", "subtask", "xmap", "xstarmap",
    "Reject", "Request", "Retry", "SerializationError", "Settings", "SoftTimeLimitExceeded",
    "Task", "TaskRevokedError", "TimeLimitExceeded", "TimeoutError", "current_app",
    "current_task", "shared_task", "uuid",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is not None:
        # `uuid` is Celery's name for a new task id
        value = getattr(importlib.import_module(module), "new_id" if name == "uuid" else name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"qmulti.{name}")
    else:
        raise AttributeError(f"module 'qmulti' has no attribute {name!r}")
    globals()[name] = value  # the next lookup is a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, *_SUBMODULES})
