"""`AsyncResult`: the caller's handle on a task's outcome, read from the result backend.

`get()` blocks in `backend.wait()`, which is push-based where the store allows it
(memory: a condition variable; Redis: a blocking read), so a result reaches the caller
as soon as it is stored instead of after a polling interval. Final results are kept in
a small per-app cache (`result_cache_max`), as Celery does, so asking twice does not
cost a second round trip.
"""

from __future__ import annotations

import signal as os_signals
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from qmulti import states
from qmulti.appstate import get_current_app
from qmulti.exceptions import TaskRevokedError, TimeoutError
from qmulti.protocol import (
    decode_result,
    encode_result,
    exception_from_dict,
    exception_to_dict,
)
from qmulti.result_cache import ResultCache

if TYPE_CHECKING:
    from qmulti.app import App

__all__ = ["AsyncResult", "EagerResult", "ResultCache"]


def _is_exception_doc(value: Any) -> bool:
    return isinstance(value, Mapping) and "exc_type" in value


class AsyncResult:
    """A task's outcome by id. Without `app`, the current app (`qmulti.current_app`)
    is used, as in Celery; `app.AsyncResult(id)` names one explicitly."""

    # The result of the step before this one in a chain (set by the canvas that made it).
    parent: Any = None

    def __init__(self, id: str, app: App | None = None, task_name: str | None = None) -> None:
        self.id = id
        self.app: App = app if app is not None else get_current_app()
        self.task_name = task_name

    @property
    def task_id(self) -> str:
        return self.id

    @property
    def children(self) -> list[AsyncResult] | None:
        """The tasks this one sent (its chain's next step, links, calls it made), as
        stored with its result; None while it has no result."""
        doc = self._doc()
        if doc is None:
            return None
        return [AsyncResult(c, app=self._app()) for c in doc.get("children") or ()]

    # -- reading ---------------------------------------------------------------------------
    def _app(self) -> App:
        return self.app

    def _doc(self) -> dict[str, Any] | None:
        """The latest result document; final ones come from (and go to) the cache."""
        app = self._app()
        cached = app.result_cache.get(self.id)
        if cached is not None:
            return cached
        blob = app.backend.get(self.id)
        return None if blob is None else self._decode(blob)

    def _decode(self, blob: bytes) -> dict[str, Any]:
        app = self._app()
        doc = decode_result(blob, app.accept_content())
        if doc.get("status") in states.READY_STATES:
            app.result_cache.put(self.id, doc)
        return doc

    @property
    def state(self) -> str:
        """PENDING when nothing is stored (unknown, queued, or prefetched but not begun)."""
        doc = self._doc()
        return str(doc.get("status") or states.PENDING) if doc else states.PENDING

    status = state

    def ready(self) -> bool:
        return self.state in states.READY_STATES

    def successful(self) -> bool:
        return self.state == states.SUCCESS

    def failed(self) -> bool:
        return self.state == states.FAILURE

    @property
    def result(self) -> Any:
        """The return value once SUCCESS; the rebuilt exception for FAILURE/RETRY/REVOKED;
        None while PENDING."""
        doc = self._doc()
        return None if doc is None else self._value(doc)

    info = result

    @property
    def traceback(self) -> str | None:
        """The remote traceback text of a failed (or retried) task."""
        doc = self._doc()
        return None if doc is None else doc.get("traceback")

    @property
    def date_done(self) -> datetime | None:
        doc = self._doc()
        if not doc or doc.get("date_done") is None or doc.get("status") not in states.READY_STATES:
            return None
        return datetime.fromtimestamp(float(doc["date_done"]), tz=timezone.utc)

    @property
    def retries(self) -> int:
        doc = self._doc()
        return int(doc.get("retries") or 0) if doc else 0

    # -- result_extended: stored with the result when that setting is on -------------------
    def _extended(self, key: str) -> Any:
        doc = self._doc()
        return None if not doc else doc.get(key)

    @property
    def name(self) -> str | None:
        """The task's name (stored with `result_extended`; else the name this handle was
        made with, if any)."""
        return self._extended("name") or self.task_name

    @property
    def args(self) -> list[Any] | None:
        return self._extended("args")

    @property
    def kwargs(self) -> dict[str, Any] | None:
        return self._extended("kwargs")

    @property
    def worker(self) -> str | None:
        """The node that ran it (w1@host)."""
        return self._extended("worker")

    @property
    def queue(self) -> str | None:
        return self._extended("queue")

    def _value(self, doc: Mapping[str, Any]) -> Any:
        status = doc.get("status")
        value = doc.get("result")
        if status in states.EXCEPTION_STATES and _is_exception_doc(value):
            exc = exception_from_dict(value)
            if doc.get("traceback") and hasattr(exc, "add_note"):
                exc.add_note("remote traceback:\n" + str(doc["traceback"]).rstrip())
            return exc
        if status == states.REVOKED:
            return TaskRevokedError(f"task {self.id} was revoked")
        return value

    # -- waiting ---------------------------------------------------------------------------
    def get(self, timeout: float | None = None, propagate: bool = True,
            interval: float = 0.5, follow_parents: bool = True, **_ignored: Any) -> Any:
        """Wait for the outcome and return the task's value.

        Raises `worker.exceptions.TimeoutError` when `timeout` seconds pass first. With
        `propagate` (the default) a failed task's exception is raised here with its
        original type when importable (else a same-named class with the message), and a
        revoked task raises `TaskRevokedError`; with `propagate=False` they are returned.
        `interval` is accepted for Celery compatibility and ignored: waiting is
        push-based. With `follow_parents` (Celery's default), a failed earlier step of
        its chain raises here, instead of a wait for a step that will never run."""
        app = self._app()
        doc = app.result_cache.get(self.id)
        if doc is None:
            if propagate and follow_parents and self.parent is not None:
                blob = self._wait_following_parents(timeout)
            else:
                blob = app.backend.wait(self.id, timeout)
            if blob is None:
                raise TimeoutError(f"task {self.id} not ready after {timeout}s "
                                   "(the operation timed out)")
            doc = self._decode(blob)
        value = self._value(doc)
        if propagate and doc.get("status") in (states.FAILURE, states.REVOKED):
            if isinstance(value, BaseException):
                raise value
        return value

    wait = get

    def _wait_following_parents(self, timeout: float | None) -> bytes | None:
        """Wait in growing slices, looking between them for a failed step before this
        one. Steps finish in order, so the walk up stops at the first one that
        succeeded, and one seen succeeded is never read again."""
        deadline = None if timeout is None else time.monotonic() + timeout
        succeeded: set[str] = set()
        step = 0.05
        while True:
            parent = self.parent
            while parent is not None and parent.id not in succeeded:
                state = parent.state if isinstance(parent, AsyncResult) else None
                if state == states.SUCCESS:
                    succeeded.add(parent.id)
                    break
                if state in (states.FAILURE, states.REVOKED):
                    parent.get(propagate=True, follow_parents=False)
                parent = getattr(parent, "parent", None)
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            blob = self._app().backend.wait(self.id, step if left is None else min(step, left))
            if blob is not None:
                return blob
            step = min(step * 2, 1.0)

    def collect(self, intermediate: bool = False, **kwargs: Any) -> Any:
        """(result, value) for this task and then, depth first, every task it sent
        (`children`), waiting for each: Celery's walk of a result graph."""
        yield self, self.get(**kwargs)
        for child in self.children or ():
            yield from child.collect(intermediate=intermediate, **kwargs)

    # -- changing --------------------------------------------------------------------------
    def forget(self) -> None:
        """Delete the stored result (a later `state` is PENDING again)."""
        app = self._app()
        app.result_cache.discard(self.id)
        app.backend.forget(self.id)

    def revoke(self, connection: Any = None, terminate: bool = False, signal: Any = None,
               wait: bool = False, timeout: float | None = None, **_ignored: Any) -> None:
        """Mark a task that has not finished as REVOKED, so a node skips it.

        With `terminate=True` a running task is stopped too, wherever it runs, within a
        second: `signal` TERM (the default) or KILL ends its pool child (replaced by a
        new one), USR1 raises SoftTimeLimitExceeded inside the task. Without it, a task
        already running finishes (see worker/node/revoke.py)."""
        app = self._app()
        if self.ready():
            return
        extra = None
        if terminate:
            extra = {"terminate": revoke_signal(signal)}
        exc = TaskRevokedError(f"task {self.id} was revoked")
        blob = encode_result(self.id, states.REVOKED, exception_to_dict(exc), extended=extra)
        app.backend.set(self.id, states.REVOKED, blob, app.conf.result_expires)

    # -- identity --------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if isinstance(other, AsyncResult):
            return self.id == other.id
        if isinstance(other, str):  # Celery compares equal to the id string too
            return self.id == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<AsyncResult: {self.id}>"

    def __str__(self) -> str:
        return self.id


class EagerResult(AsyncResult):
    """The outcome of `task.apply()` (or of `delay()` under `task_always_eager`): already
    known, so nothing here reads or writes a backend."""

    def __init__(self, id: str, ret_value: Any, state: str, traceback: str | None = None,
                 name: str | None = None) -> None:
        super().__init__(id, task_name=name)
        self._value_ = ret_value
        self._state = state
        self._traceback = traceback

    @property
    def state(self) -> str:
        return self._state

    status = state

    @property
    def result(self) -> Any:
        return self._value_

    info = result

    @property
    def traceback(self) -> str | None:
        return self._traceback

    @property
    def name(self) -> str | None:
        return self.task_name

    def ready(self) -> bool:
        return True

    def get(self, timeout: float | None = None, propagate: bool = True,
            **_ignored: Any) -> Any:
        if propagate and self._state in states.PROPAGATE_STATES and \
                isinstance(self._value_, BaseException):
            raise self._value_
        return self._value_

    wait = get

    def forget(self) -> None:
        pass

    def revoke(self, *args: Any, **kwargs: Any) -> None:
        self._state = states.REVOKED

    def __repr__(self) -> str:
        return f"<EagerResult: {self.id}>"


_REVOKE_SIGNALS = frozenset({"TERM", "KILL", "INT", "QUIT", "HUP", "ABRT", "USR1", "ALRM"})


def revoke_signal(value: Any) -> str:
    """`'TERM'`, `'SIGTERM'`, `signal.SIGTERM` or 15 -> `'TERM'`; one we cannot honour
    is a ValueError at the caller, before anything is stored."""
    if isinstance(value, int):
        try:
            value = os_signals.Signals(value).name
        except ValueError:
            raise ValueError(f"unknown signal {value!r}") from None
    name = str(value or "TERM").upper()
    name = name[3:] if name.startswith("SIG") else name
    if name not in _REVOKE_SIGNALS:
        raise ValueError(f"revoke(terminate=True) cannot send signal {value!r}; use TERM, "
                         "KILL or USR1")
    return name


def __getattr__(name: str) -> Any:
    """`qmulti.result.GroupResult` and `ResultSet`, as Celery's `celery.result` has them;
    they live in `result_set` (which builds on this module), loaded on first use."""
    if name in ("GroupResult", "ResultSet"):
        import importlib

        return getattr(importlib.import_module("qmulti.result_set"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
