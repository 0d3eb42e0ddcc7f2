"""`-E`: the node's side of Celery's event stream (types and fields in qmulti.events).

`NodeEvents` is a middleware, so the task path needs no extra call: each consumer (pool
child, or thread) sends task-received, -started, -succeeded, -failed, -retried,
-revoked and -rejected from the hooks it already runs, into a per-process
`Dispatcher` whose thread batches them to the broker. The main process sends
worker-online (READY), worker-heartbeat (every heartbeat, with active and processed),
worker-offline (after the last child is gone, flushed before the node exits), and the
verdicts it makes itself: task-failed for a hard time limit, task-revoked for a
terminated task.

Every event of one task comes from the consumer that ran it, through one buffer, so a
task's events reach the stream in order. Events of a child killed by a signal that were
not flushed yet are lost (a monitor sees the node's verdict instead).
"""

from __future__ import annotations

import os
import platform
import time
from datetime import datetime, timezone
from typing import Any

from qmulti.events.dispatch import Dispatcher
from qmulti.events.event import SW_IDENT, safe_repr
from qmulti.middleware import Middleware

SW_VER = "0.1.0"


def enabled(args: Any, app: Any) -> bool:
    """-E on the command line, or `worker_send_task_events` in the settings."""
    return bool(getattr(args, "task_events", False)
                or getattr(app.conf, "worker_send_task_events", False))


def install(app: Any, node: Any) -> NodeEvents:
    """Make the node's events middleware and install it before any child is forked."""
    events = NodeEvents(app, node.opts.name, node.opts.heartbeat_interval)
    app.add_middleware(events)
    return events


def own_store(app: Any) -> Any:
    """A connection of the flusher's own (memory://: the process's one store)."""
    if str(app.conf.broker_url or "").startswith("memory:"):
        return app.broker
    from qmulti.brokers import create_broker, store_options

    return create_broker(app.conf.broker_url, **store_options(app.conf))


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat()


class NodeEvents(Middleware):
    def __init__(self, app: Any, hostname: str, freq: float) -> None:
        self.app = app
        self.hostname = hostname
        self.freq = freq
        self._by_pid: dict[int, Dispatcher] = {}
        self._began: dict[str, float] = {}  # task id -> monotonic start, this process
        self._tracebacks: dict[str, tuple[str, str]] = {}  # task id -> (exception, tb)

    def dispatcher(self) -> Dispatcher:
        """This process's: a forked child makes its own (the parent's thread is not here)."""
        pid = os.getpid()
        d = self._by_pid.get(pid)
        if d is None:
            maxlen = int(getattr(self.app.conf, "event_stream_maxlen", 0) or 10_000)
            d = Dispatcher(lambda: own_store(self.app), self.hostname, maxlen)
            self._by_pid = {pid: d}  # the parent's entries are not ours to use
            self._began, self._tracebacks = {}, {}
        return d

    def send(self, type_: str, **fields: Any) -> None:
        self.dispatcher().send(type_, **fields)

    # -- the node main process -----------------------------------------------------------
    def _worker(self, type_: str, **fields: Any) -> None:
        self.send(type_, freq=self.freq, sw_ident=SW_IDENT, sw_ver=SW_VER,
                  sw_sys=platform.system(), **fields)

    def node_ready(self, app: Any, node: Any) -> None:
        self._worker("worker-online")

    def heartbeat(self, info: dict[str, Any]) -> None:
        """After each good heartbeat of the main loop."""
        self._worker("worker-heartbeat", active=info.get("active", 0),
                     processed=info.get("finished", 0))

    def node_shutdown(self, app: Any, node: Any) -> None:
        self._worker("worker-offline")
        self.dispatcher().close()  # flushed before the node exits

    def time_limit(self, running: Any) -> None:
        self.send("task-failed", uuid=running.task_id,
                  exception=f"TimeLimitExceeded({running.time_limit!r})", traceback=None)

    def terminated(self, running: Any) -> None:
        self.send("task-revoked", uuid=running.task_id, terminated=True, signum=None,
                  expired=False)

    # -- each consumer -------------------------------------------------------------------
    def process_stop(self, app: Any, consumer: Any, exitcode: int) -> None:
        self.dispatcher().flush()  # a prefork child _exits next: its thread dies with it

    def on_received(self, app: Any, consumer: Any, request: Any) -> None:
        self.send("task-received", uuid=request.id, name=request.task,
                  args=safe_repr(tuple(request.args)), kwargs=safe_repr(dict(request.kwargs)),
                  retries=request.retries, eta=_iso(request.eta),
                  expires=_iso(request.expires), root_id=request.root_id,
                  parent_id=request.parent_id)

    def before_execute(self, app: Any, task: Any, request: Any) -> None:
        self._began[request.id] = time.monotonic()
        self.send("task-started", uuid=request.id)

    def on_failure(self, app: Any, task: Any, request: Any, exc: BaseException,
                   einfo: Any) -> None:
        self._tracebacks[request.id] = (safe_repr(exc), getattr(einfo, "traceback", None))

    def on_retry(self, app: Any, task: Any, request: Any, reason: BaseException,
                 einfo: Any) -> None:
        self._tracebacks[request.id] = (safe_repr(reason), getattr(einfo, "traceback", None))

    def after_execute(self, app: Any, task: Any, request: Any, retval: Any,
                      state: str) -> None:
        began = self._began.pop(request.id, None)
        exception, tb = self._tracebacks.pop(request.id, (safe_repr(retval), None))
        if state == "SUCCESS":
            runtime = None if began is None else round(time.monotonic() - began, 6)
            self.send("task-succeeded", uuid=request.id, result=safe_repr(retval),
                      runtime=runtime)
        elif state == "FAILURE":
            self.send("task-failed", uuid=request.id, exception=exception, traceback=tb)
        elif state == "RETRY":
            self.send("task-retried", uuid=request.id, exception=exception, traceback=tb)

    def on_reject(self, app: Any, consumer: Any, message: Any, exc: BaseException,
                  request: Any) -> None:
        uuid = getattr(request, "id", None) or getattr(message, "mid", None)
        self.send("task-rejected", uuid=uuid, requeue=bool(getattr(exc, "requeue", False)))

    def on_revoked(self, app: Any, task: Any, request: Any, expired: bool) -> None:
        self.send("task-revoked", uuid=request.id, terminated=False, signum=None,
                  expired=bool(expired))

    def on_unknown(self, app: Any, consumer: Any, message: Any, name: str, task_id: str,
                   exc: BaseException) -> None:
        self.send("task-rejected", uuid=task_id, requeue=False)
