"""`inspect` commands, answered by the node main loop from what it knows: its pool
children's running tasks (their status lines), the leases the broker holds for it, and
its settings. A running task's arguments come from its message in the broker, read only
when asked, so the path of a task carries nothing extra for inspection."""

from __future__ import annotations

import logging
import resource
import socket
import time
from typing import Any

from qmulti import protocol
from qmulti.urls import mask_url

log = logging.getLogger("qmulti")

_SECRET_WORDS = ("password", "secret", "token", "key")


class Inspection:
    """Mixin of `Node` (through RemoteControl)."""

    app: Any
    opts: Any
    pool: Any
    state: str
    desired: int
    node_id: str
    pid: int
    started_at: float
    finished_dead: int
    revoked_ids: list[str]

    def _task_info(self, task_id: str, name: str, body: bytes | None, queue: str,
                   redelivered: bool) -> dict[str, Any]:
        args: Any = []
        kwargs: Any = {}
        if body is not None:
            try:
                env = protocol.decode_envelope(body, frozenset(self.app.conf.accept_content
                                                               or ["json"]))
                args, kwargs, name, task_id = list(env.args), dict(env.kwargs), env.task, env.id
            except Exception as exc:  # shown without its arguments
                log.debug("inspect: cannot decode message of %s: %s", task_id, exc)
        return {"id": task_id, "name": name, "args": args, "kwargs": kwargs, "type": name,
                "hostname": self.opts.name, "acknowledged": False,
                "delivery_info": {"exchange": "", "routing_key": queue, "priority": 0,
                                  "redelivered": redelivered}}

    def _running(self) -> list[dict[str, Any]]:
        busy = [w for w in self.pool.all() if w.running]
        bodies = self.app.broker.control_bodies([(w.running.queue, w.running.mid)
                                                 for w in busy])
        now, mono = time.time(), time.monotonic()
        out = []
        for w in busy:
            r = w.running
            info = self._task_info(r.task_id, r.name, bodies.get(r.mid) or w.running_body,
                                   r.queue, False)
            info["time_start"] = now - (mono - w.began)
            info["worker_pid"] = w.pid or self.pid
            out.append(info)
        return out

    def _reserved(self) -> list[dict[str, Any]]:
        running = {w.running.mid for w in self.pool.all() if w.running}
        out = []
        leased = list(self.app.broker.control_leased(self.node_id))
        for w in self.pool.all():  # what the children said they hold (see pipehooks.py)
            leased += [(queue, mid, body) for mid, (queue, body) in w.reserved.items()]
        for queue, mid, body in leased:
            if mid in running:
                continue
            task_id = (protocol.peek_id(body) if body else None) or mid
            out.append(self._task_info(task_id, "", body, queue, False))
        return out

    def _ctl_active(self, **_: Any) -> list[dict[str, Any]]:
        return self._running()

    def _ctl_reserved(self, **_: Any) -> list[dict[str, Any]]:
        return self._reserved()

    def _ctl_scheduled(self, **_: Any) -> list[dict[str, Any]]:
        return []  # countdown/eta tasks wait in the broker, not in a node

    def _ctl_registered(self, taskinfoitems: Any = (), **_: Any) -> list[str]:
        return sorted(name for name in self.app.tasks
                      if not name.startswith(("celery.", "qmulti.")))

    def _ctl_active_queues(self) -> list[dict[str, Any]]:
        return [{"name": q, "routing_key": q, "exchange": {"name": q, "type": "direct"},
                 "durable": True, "exclusive": False, "auto_delete": False}
                for q in self.opts.queues]

    def _ctl_revoked(self) -> list[str]:
        return list(self.revoked_ids)

    def _ctl_query_task(self, ids: Any = ()) -> dict[str, Any]:
        wanted = {str(i) for i in ids}
        out: dict[str, Any] = {}
        for info in self._running():
            if info["id"] in wanted:
                out[info["id"]] = ["active", info]
        for info in self._reserved():
            if info["id"] in wanted and info["id"] not in out:
                out[info["id"]] = ["reserved", info]
        return out

    def _ctl_stats(self) -> dict[str, Any]:
        workers = self.pool.all()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        url = self.app.broker.url
        return {
            "pid": self.pid, "hostname": socket.gethostname(), "state": self.state,
            "uptime": int(time.time() - self.started_at),
            "finished": self.finished_dead + sum(w.finished for w in workers),
            "active": sum(1 for w in workers if w.running),
            "pool": {"implementation": self.opts.pool, "max-concurrency": self.desired,
                     "processes": [w.pid for w in workers if w.pid],
                     "autoscale": list(self.opts.autoscale) if self.opts.autoscale else None,
                     "max-tasks-per-child": self.opts.max_tasks_per_child,
                     "timeouts": [self.opts.soft_time_limit, self.opts.time_limit]},
            "prefetch_count": self.opts.prefetch * max(self.desired, 1),
            "queues": list(self.opts.queues),
            "broker": {"transport": url.split(":", 1)[0], "url": mask_url(url)},
            "rusage": {"maxrss": usage.ru_maxrss, "utime": usage.ru_utime,
                       "stime": usage.ru_stime},
        }

    def _ctl_conf(self, with_defaults: bool = False, **_: Any) -> dict[str, Any]:
        conf = self.app.conf
        pairs = conf.items() if with_defaults else conf.changed().items()
        return {key: _shown(key, value) for key, value in pairs}


def _shown(key: str, value: Any) -> Any:
    """A setting as `inspect conf` shows it: URLs masked, secrets hidden, JSON-able."""
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    if any(word in key.lower() for word in _SECRET_WORDS) and value:
        return "********"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)
