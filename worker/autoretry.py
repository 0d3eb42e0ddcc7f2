"""`autoretry_for` and its backoff, with Celery's semantics (`celery.app.autoretry`).

Which exceptions retry: an instance of `autoretry_for` that is not one of
`dont_autoretry_for`, and never `Ignore`, `Reject` or `Retry` themselves. The delay:
`retry_kwargs['countdown']` if given; with `retry_backoff` (True means a factor of 1,
a number is the factor in seconds) it is `factor * 2**retries` capped at
`retry_backoff_max` (600 s), and with `retry_jitter` (on by default) a uniformly random
whole number of seconds between 0 and that, so that many tasks failing together do not
all come back at the same second. Without either, `default_retry_delay` (180 s) applies,
as with a plain `self.retry()`.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from qmulti.exceptions import Ignore, Reject, Retry

if TYPE_CHECKING:
    from qmulti.task import Task


def backoff_interval(factor: int, retries: int, maximum: int, full_jitter: bool = False) -> int:
    """Whole seconds before retry number `retries + 1` (Celery's
    `get_exponential_backoff_interval`, same arguments and results)."""
    countdown = min(maximum, factor * (2 ** retries))
    if full_jitter:
        countdown = random.randrange(countdown + 1)
    return max(0, countdown)


def wants_retry(task: Task, exc: BaseException) -> bool:
    if not task.autoretry_for or isinstance(exc, (Ignore, Reject, Retry)):
        return False
    if task.dont_autoretry_for and isinstance(exc, task.dont_autoretry_for):
        return False
    return isinstance(exc, task.autoretry_for)


def retry_options(task: Task) -> dict[str, Any]:
    """The keyword arguments `task.retry` gets for the running try."""
    options = dict(task.retry_kwargs or {})
    if task.retry_backoff:
        options["countdown"] = backoff_interval(
            factor=int(max(1.0, float(task.retry_backoff))), retries=task.request.retries,
            maximum=int(task.retry_backoff_max), full_jitter=bool(task.retry_jitter))
    return options
