"""What a running task knows about its message (`Request`), and a task's exception with
its traceback as handlers receive it (`ExceptionInfo`). Apart from `qmulti.task` so
that the eager runner and the node can build them without importing the task class.
"""

from __future__ import annotations

import sys
import traceback as tb_module
import types
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Request:
    """What a running task knows about its message (`self.request` in a bound task)."""

    id: str | None = None
    task: str | None = None  # the task's name
    retries: int = 0
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    delivery_info: dict[str, Any] = field(default_factory=dict)  # {'queue', 'deliveries'}
    hostname: str | None = None
    eta: float | None = None
    expires: float | None = None
    called_directly: bool = True  # False only inside Task.execute (the node, apply())
    root_id: str | None = None  # the first task of the tree this one belongs to
    parent_id: str | None = None  # the task that sent this one, if a task did
    is_eager: bool = False  # run by apply() / task_always_eager, in the caller
    ignore_result: bool = False
    children: list[str] = field(default_factory=list)  # ids of the tasks it sent

    def get(self, key: str, default: Any = None) -> Any:
        """Celery's `request.get('name', default)`."""
        return getattr(self, key, default)


class ExceptionInfo:
    """A task's exception with its formatted traceback, as failure handlers receive it.

    The traceback is kept as text so handlers can log or store it after the frames are
    gone (and so it can cross a process boundary)."""

    def __init__(self, exception: BaseException | None = None,
                 exc_type: type[BaseException] | None = None,
                 traceback: str | None = None) -> None:
        """`ExceptionInfo()` inside an except block, or `ExceptionInfo(exc, type, text)`."""
        if exception is None:
            exception = sys.exc_info()[1]
        if exception is None:
            raise ValueError("ExceptionInfo() outside an except block needs an exception")
        self.exception: BaseException = exception
        self.type: type[BaseException] = exc_type or type(exception)
        self.tb: types.TracebackType | None = exception.__traceback__
        self.traceback: str = traceback if traceback is not None else "".join(
            tb_module.format_exception(self.type, exception, exception.__traceback__))

    def __str__(self) -> str:
        return self.traceback

    def __repr__(self) -> str:
        return f"<ExceptionInfo: {self.exception!r}>"
