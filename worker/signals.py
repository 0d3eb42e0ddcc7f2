"""Celery's signals, with Celery's names, senders and keyword arguments.

`@task_success.connect`, `@task_success.connect(sender=add)`, `sig.connect(fn)`,
`sig.disconnect(fn)`; `send` calls each receiver as `fn(signal=sig, sender=sender,
**kwargs)` and returns `[(receiver, result), ...]`, a receiver's exception standing
as its result after being logged. Receivers are held weakly by default (`weak=True`),
as in Celery: connect a module-level function, not a lambda you keep nowhere.

One difference from Celery, on purpose: a string `sender=` also matches a sender whose
`name` is that string, so `task_success.connect(sender='tasks.add')` works (Celery
matches a task object only, and that connection silently never fires).

The signals are sent by `SignalsMiddleware`, the built-in middleware every App puts
first, so they take the same path as any middleware (worker/middleware.py says in
which process and when). The logging signals are sent by the node's log setup, since
`setup_logging` replaces rather than observes: with a receiver connected, the node
does not configure logging itself. On `-P threads` and `solo`, `worker_process_init`
and `worker_process_shutdown` are sent in each consumer thread, so a receiver can open
a per-thread resource such as an sqlite3 connection.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from qmulti.middleware import Middleware, Outgoing, report

log = logging.getLogger("qmulti.signals")

_ANY = object()  # the sender key of a receiver connected without sender=


def _key(obj: Any) -> Any:
    if isinstance(obj, (str, bytes)):
        return obj
    return id(getattr(obj, "__func__", obj))


class Signal:
    """An observer list, as Celery's (and Django's) dispatch Signal."""

    # Bumped by every connect/disconnect of any signal: an App's middleware stack is
    # rebuilt only then, so a signal nobody listens to costs nothing on the hot path.
    changes = 0

    def __init__(self, name: str | None = None, providing_args: Any = None,
                 use_caching: bool = False) -> None:
        self.name = name
        self.providing_args = frozenset(providing_args or ())
        # (receiver key, sender key, receiver or weak reference, sender filter)
        self.receivers: list[tuple[Any, Any, Any, Any]] = []
        self._lock = threading.Lock()
        self._failed: set[str] = set()

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        """`connect(fn, sender=None, weak=True, dispatch_uid=None)`, or as a decorator,
        bare or with those keywords."""
        if args and callable(args[0]):
            return self._connect(args[0], **kwargs)

        def decorator(fun: Callable[..., Any]) -> Callable[..., Any]:
            return self._connect(fun, **kwargs)
        return decorator

    def _connect(self, receiver: Callable[..., Any], sender: Any = None, weak: bool = True,
                 dispatch_uid: Any = None, retry: bool = False) -> Callable[..., Any]:
        rkey = dispatch_uid if dispatch_uid is not None else _key(receiver)
        skey = _ANY if sender is None else _key(sender)
        ref: Any = receiver
        if weak:
            if hasattr(receiver, "__self__") and hasattr(receiver, "__func__"):
                ref = weakref.WeakMethod(receiver, self._dead)
            else:
                ref = weakref.ref(receiver, self._dead)
        with self._lock:
            if not any(r[0] == rkey and r[1] == skey for r in self.receivers):
                self.receivers.append((rkey, skey, ref, sender))
        Signal.changes += 1
        return receiver

    def _dead(self, ref: Any) -> None:
        with self._lock:
            self.receivers = [r for r in self.receivers if r[2] is not ref]

    def disconnect(self, receiver: Callable[..., Any] | None = None, sender: Any = None,
                   weak: Any = None, dispatch_uid: Any = None) -> bool:
        """Remove a receiver (as connected with that sender); True if it was there."""
        rkey = dispatch_uid if dispatch_uid is not None else _key(receiver)
        skey = _ANY if sender is None else _key(sender)
        with self._lock:
            before = len(self.receivers)
            self.receivers = [r for r in self.receivers if not (r[0] == rkey and r[1] == skey)]
            removed = len(self.receivers) != before
        Signal.changes += 1
        return removed

    def has_listeners(self, sender: Any = None) -> bool:
        return bool(self._live(sender))

    def _live(self, sender: Any) -> list[Callable[..., Any]]:
        skey = _key(sender)
        name = getattr(sender, "name", None)
        live = []
        for _, wanted, ref, _ in list(self.receivers):
            if wanted is _ANY or wanted == skey or (isinstance(wanted, str) and wanted == name):
                fn = ref() if isinstance(ref, weakref.ref) else ref
                if fn is not None:
                    live.append(fn)
        return live

    def send(self, sender: Any, **named: Any) -> list[tuple[Any, Any]]:
        """Call every receiver for `sender`; one that raises is logged, never re-raised."""
        responses: list[tuple[Any, Any]] = []
        if not self.receivers:
            return responses
        for fn in self._live(sender):
            try:
                responses.append((fn, fn(signal=self, sender=sender, **named)))
            except Exception as exc:
                report(log, f"{_describe(fn)} (receiver of {self.name})", exc, self._failed)
                responses.append((fn, exc))
        return responses

    send_robust = send  # Django's name; Celery's send is robust too

    def __repr__(self) -> str:
        return f"<Signal: {self.name}>"


def _describe(fn: Any) -> str:
    module = getattr(fn, "__module__", None) or "?"
    return f"{module}.{getattr(fn, '__qualname__', repr(fn))}"


# -- tasks (Celery's providing_args) ----------------------------------------------------
before_task_publish = Signal("before_task_publish", {
    "body", "exchange", "routing_key", "headers", "properties", "declare", "retry_policy"})
after_task_publish = Signal("after_task_publish", {"body", "exchange", "routing_key", "headers"})
task_received = Signal("task_received", {"request"})
task_prerun = Signal("task_prerun", {"task_id", "task", "args", "kwargs"})
task_postrun = Signal("task_postrun", {"task_id", "task", "args", "kwargs", "retval", "state"})
task_success = Signal("task_success", {"result"})
task_retry = Signal("task_retry", {"request", "reason", "einfo"})
task_failure = Signal("task_failure", {
    "task_id", "exception", "args", "kwargs", "traceback", "einfo"})
task_revoked = Signal("task_revoked", {"request", "terminated", "signum", "expired"})
task_rejected = Signal("task_rejected", {"message", "exc"})
task_unknown = Signal("task_unknown", {"message", "exc", "name", "id"})
# -- the node ---------------------------------------------------------------------------
worker_init = Signal("worker_init")
worker_ready = Signal("worker_ready")
worker_shutdown = Signal("worker_shutdown")
worker_process_init = Signal("worker_process_init")
worker_process_shutdown = Signal("worker_process_shutdown", {"pid", "exitcode"})
# -- logging ----------------------------------------------------------------------------
setup_logging = Signal("setup_logging", {"loglevel", "logfile", "format", "colorize"})
after_setup_logger = Signal("after_setup_logger", {
    "logger", "loglevel", "logfile", "format", "colorize"})
after_setup_task_logger = Signal("after_setup_task_logger", {
    "logger", "loglevel", "logfile", "format", "colorize"})

# middleware hook -> the signal it sends
_SIGNAL_FOR = {
    "before_publish": before_task_publish, "after_publish": after_task_publish,
    "node_init": worker_init, "node_ready": worker_ready, "node_shutdown": worker_shutdown,
    "process_start": worker_process_init, "process_stop": worker_process_shutdown,
    "on_received": task_received, "before_execute": task_prerun,
    "after_execute": task_postrun, "on_success": task_success, "on_failure": task_failure,
    "on_retry": task_retry, "on_reject": task_rejected, "on_revoked": task_revoked,
    "on_unknown": task_unknown,
}


class SignalsMiddleware(Middleware):
    """Celery's signals as one middleware; only hooks whose signal has receivers are
    active, and App rebuilds its stack when receivers change (`Signal.changes`)."""

    def active_hooks(self) -> list[str]:
        return [hook for hook, sig in _SIGNAL_FOR.items() if sig.receivers]

    def before_publish(self, app: Any, message: Outgoing) -> None:
        before_task_publish.send(
            sender=message.task, body=_body(message), exchange="",
            routing_key=message.queue, headers=_headers(message),
            properties={"correlation_id": message.id, "content_type": message.content_type},
            declare=[], retry_policy=None)

    def after_publish(self, app: Any, message: Outgoing) -> None:
        after_task_publish.send(sender=message.task, body=_body(message),
                                headers=_headers(message), exchange="",
                                routing_key=message.queue)

    def node_init(self, app: Any, node: Any) -> None:
        worker_init.send(sender=node)

    def node_ready(self, app: Any, node: Any) -> None:
        worker_ready.send(sender=node)

    def node_shutdown(self, app: Any, node: Any) -> None:
        worker_shutdown.send(sender=node)

    def process_start(self, app: Any, consumer: Any) -> None:
        worker_process_init.send(sender=None)

    def process_stop(self, app: Any, consumer: Any, exitcode: int) -> None:
        import os

        worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=exitcode)

    def on_received(self, app: Any, consumer: Any, request: Any) -> None:
        task_received.send(sender=consumer, request=request)

    def before_execute(self, app: Any, task: Any, request: Any) -> None:
        task_prerun.send(sender=task, task_id=request.id, task=task, args=request.args,
                         kwargs=request.kwargs)

    def after_execute(self, app: Any, task: Any, request: Any, retval: Any,
                      state: str) -> None:
        task_postrun.send(sender=task, task_id=request.id, task=task, args=request.args,
                          kwargs=request.kwargs, retval=retval, state=state)

    def on_success(self, app: Any, task: Any, request: Any, retval: Any) -> None:
        task_success.send(sender=task, result=retval)

    def on_failure(self, app: Any, task: Any, request: Any, exc: BaseException,
                   einfo: Any) -> None:
        task_failure.send(sender=task, task_id=request.id, exception=exc, args=request.args,
                          kwargs=request.kwargs, traceback=exc.__traceback__, einfo=einfo)

    def on_retry(self, app: Any, task: Any, request: Any, reason: BaseException,
                 einfo: Any) -> None:
        task_retry.send(sender=task, request=request, reason=reason, einfo=einfo)

    def on_reject(self, app: Any, consumer: Any, message: Any, exc: BaseException,
                  request: Any) -> None:
        if request is None:  # Celery's meaning: a message the node cannot read
            task_rejected.send(sender=consumer, message=message, exc=exc)

    def on_revoked(self, app: Any, task: Any, request: Any, expired: bool) -> None:
        task_revoked.send(sender=task, request=request, terminated=False, signum=None,
                          expired=expired)

    def on_unknown(self, app: Any, consumer: Any, message: Any, name: str, task_id: str,
                   exc: BaseException) -> None:
        task_unknown.send(sender=consumer, message=message, exc=exc, name=name, id=task_id)


def _iso(when: float | None) -> str | None:
    return None if when is None else datetime.fromtimestamp(when, timezone.utc).isoformat()


def _headers(m: Outgoing) -> dict[str, Any]:
    """Celery's task-protocol-2 headers, so `headers['id']` and `headers['task']` work."""
    return {"lang": "py", "task": m.task, "id": m.id, "root_id": m.id, "parent_id": None,
            "group": None, "eta": _iso(m.eta), "expires": _iso(m.expires),
            "retries": m.retries, "timelimit": [m.options.get("time_limit"),
                                                m.options.get("soft_time_limit")]}


def _body(m: Outgoing) -> tuple[Any, ...]:
    return (list(m.args), dict(m.kwargs),
            {"callbacks": None, "errbacks": None, "chain": None, "chord": None})
