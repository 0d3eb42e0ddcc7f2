"""`State`: a small in-memory picture of tasks and workers, fed by events.

Celery's `app.events.State` in its most used part: `state.event(e)` merges each event
into `state.tasks[uuid]` (name, args, state, result, exception, runtime, worker...) and
`state.workers[hostname]` (alive, active, processed, last heartbeat). It keeps at most
`max_tasks_in_memory` tasks (oldest dropped first). Not provided: Celery's task tree
helpers (`root`, `parent`, `children` objects), `tasks_by_type`/`itertasks` with
sorting, clock-skew correction and the event-type callbacks of `State.event`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

# event type -> the task state it means (Celery's states); the dashboard's task table too
TASK_STATES = {
    "task-sent": "PENDING", "task-received": "RECEIVED", "task-started": "STARTED",
    "task-succeeded": "SUCCESS", "task-failed": "FAILURE", "task-retried": "RETRY",
    "task-revoked": "REVOKED", "task-rejected": "REJECTED",
}
_READY = frozenset({"SUCCESS", "FAILURE", "REVOKED", "REJECTED"})
HEARTBEAT_EXPIRE = 4.0  # a worker is alive while its last heartbeat is < freq x this


@dataclass
class TaskView:
    uuid: str
    name: str | None = None
    state: str = "PENDING"
    args: str | None = None
    kwargs: str | None = None
    result: str | None = None
    exception: str | None = None
    traceback: str | None = None
    hostname: str | None = None
    runtime: float | None = None
    retries: int | None = None
    root_id: str | None = None
    parent_id: str | None = None
    timestamp: float | None = None
    # the time of each step, by event type without "task-": received, started, ...
    times: dict[str, float] = field(default_factory=dict)

    @property
    def worker(self) -> str | None:
        return self.hostname

    def ready(self) -> bool:
        return self.state in _READY

    def __getattr__(self, name: str) -> Any:  # t.received, t.started, t.succeeded ...
        times = self.__dict__.get("times", {})
        if name in times:
            return times[name]
        if name in ("sent", "received", "started", "succeeded", "failed", "retried",
                    "revoked", "rejected"):
            return None
        raise AttributeError(name)


@dataclass
class WorkerView:
    hostname: str
    freq: float = 2.0
    active: int | None = None
    processed: int | None = None
    pid: int | None = None
    sw_ident: str | None = None
    sw_ver: str | None = None
    sw_sys: str | None = None
    heartbeats: list[float] = field(default_factory=list)
    offline: bool = False

    @property
    def alive(self) -> bool:
        if self.offline or not self.heartbeats:
            return False
        return time.time() - self.heartbeats[-1] < self.freq * HEARTBEAT_EXPIRE


class State:
    def __init__(self, max_tasks_in_memory: int = 10_000) -> None:
        self.max_tasks_in_memory = max_tasks_in_memory
        self.tasks: OrderedDict[str, TaskView] = OrderedDict()
        self.workers: dict[str, WorkerView] = {}
        self.event_count = 0
        self.task_count = 0

    def event(self, event: dict[str, Any]) -> None:
        self.event_count += 1
        kind = str(event.get("type", ""))
        if kind.startswith("worker-"):
            self._worker(kind, event)
        elif kind.startswith("task-") and event.get("uuid"):
            self._task(kind, event)

    def _worker(self, kind: str, event: dict[str, Any]) -> None:
        host = str(event.get("hostname"))
        w = self.workers.get(host)
        if w is None:
            w = self.workers[host] = WorkerView(host)
        for name in ("freq", "active", "processed", "pid", "sw_ident", "sw_ver", "sw_sys"):
            if event.get(name) is not None:
                setattr(w, name, event[name])
        w.offline = kind == "worker-offline"
        if not w.offline:
            w.heartbeats = (w.heartbeats + [float(event.get("timestamp") or time.time())])[-4:]

    def _task(self, kind: str, event: dict[str, Any]) -> None:
        uuid = str(event["uuid"])
        task = self.tasks.get(uuid)
        if task is None:
            task = self.tasks[uuid] = TaskView(uuid)
            self.task_count += 1
            while len(self.tasks) > self.max_tasks_in_memory:
                self.tasks.popitem(last=False)
        for name in ("name", "args", "kwargs", "result", "exception", "traceback",
                     "hostname", "runtime", "retries", "root_id", "parent_id", "timestamp"):
            if event.get(name) is not None:
                setattr(task, name, event[name])
        task.times[kind[len("task-"):]] = float(event.get("timestamp") or time.time())
        new_state = TASK_STATES.get(kind)
        # A late "started" after "succeeded" (two senders) must not undo a final state.
        if new_state is not None and not (task.ready() and new_state not in _READY):
            task.state = new_state

    def alive_workers(self) -> list[WorkerView]:
        return [w for w in self.workers.values() if w.alive]

    def clear(self) -> None:
        self.tasks.clear()
        self.workers.clear()
        self.event_count = self.task_count = 0
