"""`get_task_logger` and `get_logger`, as `celery.utils.log` has them.

A task logger stamps each record with the running task's name and id (`???` outside a
task, as Celery does), and a node formats such records as Celery's
`worker_task_log_format` does: `[time: LEVEL/node] tasks.add[<id>]: message`, so that
one grep for a task id finds what the task itself logged.
"""

from __future__ import annotations

import logging

from qmulti.appstate import running_request

TASK_LOGGER = "qmulti.task"  # the parent of every task logger


class TaskFilter(logging.Filter):
    """Adds `task_name` and `task_id` to each record (never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = running_request.get()
        if request is None:
            record.task_name, record.task_id = "???", "???"
        else:
            record.task_name, record.task_id = request.task or "???", request.id or "???"
        return True


_FILTER = TaskFilter()


def get_task_logger(name: str) -> logging.Logger:
    """A logger for task code (`logger = get_task_logger(__name__)` at module level):
    a child of `qmulti.task`, its records carrying the running task's name and id."""
    if name in (TASK_LOGGER, "qmulti"):
        raise RuntimeError(f"logger name {name!r} is reserved; use __name__")
    logger = logging.getLogger(f"{TASK_LOGGER}.{name}")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger


def get_logger(name: str) -> logging.Logger:
    """A plain logger, as `celery.utils.log.get_logger` is."""
    return logging.getLogger(name)
