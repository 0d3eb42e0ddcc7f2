"""Tasks: the decorated function, its options, and the context the node runs it in.

The node's side of the interface (worker/execute.py calls exactly this):

* `task.execute(request, args, kwargs)` runs the task for a message: it sets
  `task.request` to `request` (with `called_directly=False`) for the duration of the
  call, passes the task as `self` when `bind=True`, and always resets the request, so a
  pool child that runs many tasks never leaks one task's context into the next.
* A `Retry` raised out of `execute` (from `self.retry()` or `autoretry_for`) carries
  `when` (unix time of the next try) and `exc`; the node republishes the message with
  `retries + 1` and stores RETRY. `MaxRetriesExceededError`, or the task's own exception
  once retries are used up, is a plain failure.
* The node calls the handlers `on_success(retval, task_id, args, kwargs)`,
  `on_failure(exc, task_id, args, kwargs, einfo)`, `on_retry(exc, task_id, args, kwargs,
  einfo)` and `after_return(status, retval, task_id, args, kwargs, einfo)`, with `einfo`
  an `ExceptionInfo`. They are no-ops here; annotations (`{'*': {'on_failure': fn}}`)
  or a `base=` subclass replace them.
* Options left as None mean "the app's setting": `task.resolve('time_limit')` gives the
  effective value (task option, else `task_time_limit`, ...).
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import inspect
import time
import types
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from qmulti import appstate
from qmulti.autoretry import retry_options, wants_retry
from qmulti.canvas_methods import CanvasMethods
from qmulti.exceptions import MaxRetriesExceededError, Retry
from qmulti.request import ExceptionInfo, Request

if TYPE_CHECKING:
    from qmulti.app import App
    from qmulti.result import AsyncResult, EagerResult


# Options the decorator accepts, with their defaults. None means "the app's setting"
# where APP_SETTING_FOR names one.
TASK_OPTIONS: dict[str, Any] = {
    "bind": False, "max_retries": 3, "default_retry_delay": 180, "rate_limit": None,
    "time_limit": None, "soft_time_limit": None, "queue": None, "ignore_result": None,
    "acks_late": None, "serializer": None, "autoretry_for": (), "retry_kwargs": None,
    "dont_autoretry_for": (), "retry_backoff": False, "retry_backoff_max": 600,
    "retry_jitter": True, "store_errors_even_if_ignored": None, "typing": True,
}
APP_SETTING_FOR = {
    "rate_limit": "task_default_rate_limit", "time_limit": "task_time_limit",
    "soft_time_limit": "task_soft_time_limit", "queue": "task_default_queue",
    "ignore_result": "task_ignore_result", "acks_late": "task_acks_late",
    "serializer": "task_serializer",
    "store_errors_even_if_ignored": "task_store_errors_even_if_ignored",
}
_MISSING = object()
_YEAR_2001 = 978307200.0  # a Retry `when` below this is a countdown, above it a unix time


def _ttl(app: App) -> float | None:
    expires = app.conf.result_expires
    return float(expires) if expires else None


class Task(CanvasMethods):
    """One registered task. `App.task` makes instances; subclass and pass `base=` to
    share handlers between tasks."""

    name: str
    app: App
    bind: bool
    max_retries: int | None
    default_retry_delay: float
    rate_limit: str | None
    time_limit: float | None
    soft_time_limit: float | None
    queue: str | None
    ignore_result: bool | None
    acks_late: bool | None
    serializer: str | None
    autoretry_for: tuple[type[BaseException], ...]
    retry_kwargs: dict[str, Any] | None
    dont_autoretry_for: tuple[type[BaseException], ...]
    retry_backoff: bool | float
    retry_backoff_max: int
    retry_jitter: bool
    store_errors_even_if_ignored: bool | None
    typing: bool
    # What the app resolved for publishing this task, and under which settings
    # (`App._plan`); a class default so subclasses that skip __init__ still work.
    _publish_plan: tuple[Any, ...] | None = None

    def __init__(self, fun: Callable[..., Any], app: App, name: str, **options: Any) -> None:
        self.run = fun
        self.app = app
        self.name = name
        for key, default in TASK_OPTIONS.items():
            setattr(self, key, options.pop(key, getattr(type(self), key, default)))
        for key, value in options.items():  # Celery sets unknown options as attributes
            setattr(self, key, value)
        self.autoretry_for = tuple(self.autoretry_for or ())
        self.dont_autoretry_for = tuple(self.dont_autoretry_for or ())
        self._annotated: dict[str, Any] = {}  # attr -> instance value before annotation
        self._request_var: contextvars.ContextVar[Request | None] = contextvars.ContextVar(
            f"qmulti.task.request:{name}", default=None)
        functools.update_wrapper(self, fun, updated=())

    # -- calling -------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run here and now, as a plain function call (`add(4, 6) == 10`)."""
        return self._run(args, kwargs)

    def _run(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.bind:
            return self.run(self, *args, **kwargs)
        return self.run(*args, **kwargs)

    def execute(self, request: Request, args: Any, kwargs: Any) -> Any:
        """The node's entry point; see the module docstring."""
        if request.called_directly:
            request = dataclasses.replace(request, called_directly=False)
        token = self._request_var.set(request)
        running = appstate.running_request.set(request)  # parent of what this task sends
        try:
            try:
                return self._run(tuple(args), dict(kwargs or {}))
            except Retry as exc:
                if exc.scheduled:
                    raise
                # raised by the task itself, not by self.retry(): limits still hold
                raise self._retry_raised(exc) from None
            except BaseException as exc:
                if wants_retry(self, exc):
                    raise self.retry(exc=exc, **retry_options(self)) from None
                raise
        finally:
            appstate.running_request.reset(running)
            self._request_var.reset(token)

    def _retry_raised(self, exc: Retry) -> Retry:
        when = exc.when
        if isinstance(when, datetime):
            return self.retry(exc=exc.exc, eta=when)
        if isinstance(when, (int, float)) and not isinstance(when, bool):
            # Celery's `when` is a countdown; ours a unix time once scheduled
            return self.retry(exc=exc.exc, countdown=when) if when < _YEAR_2001 else \
                self.retry(exc=exc.exc, eta=when)
        return self.retry(exc=exc.exc)

    def apply(self, args: Any = None, kwargs: Any = None, task_id: str | None = None,
              retries: int | None = None, throw: bool | None = None,
              **options: Any) -> EagerResult:
        """Run here and now as a node would (a request, handlers, retries run again at
        once), and return an `EagerResult`. `throw` (default `task_eager_propagates`)
        re-raises the task's exception instead of returning it in the result."""
        from qmulti.eager import apply

        return apply(self, args, kwargs, task_id=task_id, retries=retries, throw=throw,
                     **options)

    def update_state(self, task_id: str | None = None, state: str | None = None,
                     meta: Any = None, **_ignored: Any) -> None:
        """Store `state` (any name, such as "PROGRESS") with `meta` as the task's result
        for now: `AsyncResult(id).state` and `.info` show it until the next state. It
        never replaces a final state (SUCCESS, FAILURE, REVOKED) already stored."""
        request = self.request
        task_id = task_id or request.id
        if not task_id:
            raise ValueError("update_state() outside a running task needs task_id=")
        if request.is_eager and task_id == request.id:
            return  # an eager run stores nothing, as with Celery's task_store_eager_result off
        from qmulti import protocol

        app = self.app
        blob = protocol.encode_result(task_id, state or "PENDING", meta,
                                      retries=request.retries, node=request.hostname)
        app.backend.set_unless_ready(task_id, state or "PENDING", blob, _ttl(app))

    @property
    def backend(self) -> Any:
        """The app's result backend (Celery's `task.backend`)."""
        return self.app.backend

    @property
    def request(self) -> Request:
        """The running message's context; outside the node a fresh `Request()`
        (`called_directly=True`)."""
        current = self._request_var.get()
        return current if current is not None else Request()

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult:
        """Send the task to a node: `apply_async(args, kwargs)` with no options."""
        return self.apply_async(args, kwargs)

    def apply_async(self, args: Any = None, kwargs: Any = None, countdown: float | None = None,
                    eta: datetime | float | None = None,
                    expires: datetime | float | None = None, queue: str | None = None,
                    task_id: str | None = None, serializer: str | None = None,
                    retries: int = 0, **options: Any) -> AsyncResult:
        """Send the task to a node; see `App.send_task` for every option."""
        if self.typing:
            self._check_arguments(args, kwargs)
        return self.app.send_task(
            self.name, args, kwargs, countdown=countdown, eta=eta, expires=expires,
            queue=queue, task_id=task_id, serializer=serializer, retries=retries,
            task=self, **options)

    def _check_arguments(self, args: Any, kwargs: Any) -> None:
        """Fail at `delay()` on a wrong number of arguments, not on the node later."""
        if not isinstance(args, (list, tuple, type(None))) or not isinstance(
                kwargs, (dict, type(None))):
            return  # send_task explains what args and kwargs must be
        if not kwargs:
            arity = self._positional_arity
            if arity is not None and arity[0] <= len(args or ()) <= arity[1]:
                return  # the common delay(x, y): no need to build a BoundArguments
        sig = self._signature
        if sig is None:
            return
        call_args = list(args or ())
        call_kwargs = kwargs or {}
        if self.bind:
            call_args.insert(0, self)
        try:
            sig.bind(*call_args, **call_kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.name}(): {exc}") from None

    @functools.cached_property
    def _signature(self) -> inspect.Signature | None:
        try:
            return inspect.signature(self.run)
        except (TypeError, ValueError):  # builtins and some C callables have none
            return None

    @functools.cached_property
    def _positional_arity(self) -> tuple[int, float] | None:
        """(fewest, most) positional arguments a call with no keywords may pass, or None
        when the signature needs `Signature.bind` to judge (a required keyword-only
        parameter). Counts `self` for a bound task, as `sig.bind` sees it."""
        sig = self._signature
        if sig is None:
            return None
        fewest, most = 0, 0.0
        for param in sig.parameters.values():
            if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
                most += 1
                if param.default is param.empty:
                    fewest = int(most)
            elif param.kind is param.VAR_POSITIONAL:
                most = float("inf")
            elif param.kind is param.KEYWORD_ONLY and param.default is param.empty:
                return None
        skip = 1 if self.bind else 0
        if most < skip:
            return None  # bind=True on a function without `self`: let bind() say so
        return max(fewest - skip, 0), most - skip

    def AsyncResult(self, task_id: str, **_ignored: Any) -> AsyncResult:  # noqa: N802
        return self.app.AsyncResult(task_id, task_name=self.name)

    # -- retrying ------------------------------------------------------------------------
    def retry(self, exc: BaseException | None = None, countdown: float | None = None,
              eta: datetime | float | None = None, max_retries: int | None = _MISSING,  # type: ignore[assignment]
              throw: bool = True, args: Any = None, kwargs: Any = None,
              **_ignored: Any) -> Retry:
        """Ask the node to run this task again later: raises `Retry(when=..., exc=exc)`.

        `countdown` defaults to `default_retry_delay` (180 s). Once `request.retries`
        reaches `max_retries` (None: no limit; `max_retries=None` here means the
        task's own, as in Celery), `exc` is re-raised
        if given, else `MaxRetriesExceededError`. Called outside the node (a plain call),
        `exc` (or a `Retry`) is raised at once. `throw=False` returns the `Retry` instead
        of raising it; unlike Celery, the retry happens only if the task then raises it
        (`raise self.retry(...)`), because the node reschedules the message itself, in
        one step with its acknowledgement.
        """
        request = self.request
        limit = self.max_retries if max_retries is _MISSING or max_retries is None \
            else max_retries
        if request.called_directly:
            raise exc if exc is not None else Retry("task can be retried", exc=None)
        if limit is not None and request.retries >= limit:
            if exc is not None:
                raise exc
            raise MaxRetriesExceededError(
                f"can't retry {self.name}[{request.id}]: max_retries={limit} reached "
                f"(args={request.args!r}, kwargs={request.kwargs!r})")
        if eta is not None:
            when = eta.timestamp() if isinstance(eta, datetime) else float(eta)
            delay = max(when - time.time(), 0.0)
        else:
            delay = float(self.default_retry_delay if countdown is None else countdown)
            when = time.time() + delay
        reason = f": {exc!r}" if exc is not None else ""
        retry = Retry(f"retry in {delay:.0f}s{reason}", exc=exc, when=when)
        retry.scheduled, retry.countdown = True, delay
        if throw:
            raise retry
        return retry

    # -- handlers the node calls (no-ops; annotations or a base class replace them) ------
    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        """Called in the node after the task returned and before its result is stored."""

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any,
                   einfo: ExceptionInfo) -> None:
        """Called in the node when the task raised (not for a retry)."""

    def on_retry(self, exc: BaseException, task_id: str, args: Any, kwargs: Any,
                 einfo: ExceptionInfo) -> None:
        """Called in the node when the task is to be retried."""

    def after_return(self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any,
                     einfo: ExceptionInfo | None) -> None:
        """Called in the node after a success or failure is stored (as Celery: not for
        a retry, reject or ignore); `einfo` is the failure's ExceptionInfo, else None."""

    # -- options -------------------------------------------------------------------------
    def resolve(self, option: str) -> Any:
        """The effective value of an option: the task's own, else the app's setting."""
        value = getattr(self, option)
        setting = APP_SETTING_FOR.get(option)
        if value is None and setting is not None:
            return self.app.conf[setting]
        return value

    def annotate(self, attrs: dict[str, Any]) -> None:
        """Replace the attributes annotations (and routes' rate limits) set before with
        `attrs`. Functions given for methods (`on_failure`) become bound methods, so they
        get the task as `self` as in Celery."""
        for key, before in self._annotated.items():
            if before is _MISSING:
                self.__dict__.pop(key, None)
            else:
                self.__dict__[key] = before
        self._annotated = {}
        for key, value in attrs.items():
            self._annotated[key] = self.__dict__.get(key, _MISSING)
            if isinstance(value, types.FunctionType) and callable(getattr(type(self), key, None)):
                value = types.MethodType(value, self)
            self.__dict__[key] = value

    def __repr__(self) -> str:
        return f"<@task: {self.name}>"
