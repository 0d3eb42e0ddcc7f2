"""Remote control in the node main process: a listener thread and the commands.

The thread (own broker connection) blocks on the node's inbox in the broker and hands
each request to the main loop through a queue, poking the loop's wake-up pipe; the loop
answers between its other steps (`_handle_control`), so a command never waits for a
pool child busy with a task, and it changes state only where the signals do: the
*desired* pool size, the run state, the queues. What pool children must follow (rate
and time limits, queues) is shared through qmulti.node.overrides.

Inspection commands are in qmulti.node.controlinspect.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import threading
import time
from typing import Any

import qmulti.control.wire as wire
from qmulti.brokers.base import Broker
from qmulti.node.controlinspect import Inspection
from qmulti.node.overrides import apply_tasks
from qmulti.node.states import RUNNING
from qmulti.system.backoff import Backoff

log = logging.getLogger("qmulti")

LISTEN_CHUNK = 5.0  # longest single wait on the inbox
POLL_FIRST, POLL_CAP = 0.001, 0.02  # polling a store that cannot block (SQLite)
REVOKED_KEPT = 10_000  # ids remembered for `inspect revoked`


class Listener:
    """The thread that waits on the node's inbox."""

    def __init__(self, make_broker: Any, node_id: str, wake_fd: int, fork_guard: Any) -> None:
        self.make_broker = make_broker
        self.fork_guard = fork_guard
        self.node_id = node_id
        self.wake_fd = wake_fd
        self.requests: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="control", daemon=True)
        self.broker: Broker | None = None

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()

    def _receive(self) -> list[bytes]:
        if self.broker is None:
            with self.fork_guard:
                self.broker = self.make_broker()
        if self.broker.control_blocks_safely:
            return self.broker.control_receive(self.node_id, LISTEN_CHUNK)
        # Poll, holding the fork guard only for each look (see Node.fork_guard).
        delay = POLL_FIRST
        deadline = time.monotonic() + LISTEN_CHUNK
        while not self.stopped.is_set() and time.monotonic() < deadline:
            with self.fork_guard:
                bodies = self.broker.control_receive(self.node_id, 0.0)
            if bodies:
                return bodies
            self.stopped.wait(delay)
            delay = min(delay * 2, POLL_CAP)
        return []

    def _run(self) -> None:
        backoff = Backoff(first=0.2, cap=5.0)
        failures = 0
        while not self.stopped.is_set():
            try:
                bodies = self._receive()
            except Exception as exc:  # the heartbeat path reports an outage; back off
                failures += 1
                if failures == 1:
                    log.warning("Remote control: cannot read the inbox (%s); retrying", exc)
                self.stopped.wait(backoff.next_delay(0.0))
                continue
            if failures:
                log.info("Remote control: inbox readable again")
                failures = 0
                backoff.reset()
            for body in bodies:
                request = wire.decode_request(body)
                if request is not None:
                    self.requests.put(request)
            if bodies:
                try:
                    # A 0 byte: not a signal number, so the loop's signal step skips it;
                    # it only ends the loop's wait.
                    os.write(self.wake_fd, b"\0")
                except OSError:
                    pass  # the pipe is full: the loop is awake anyway
        if self.broker is not None:
            try:
                self.broker.close()
            except Exception:  # pragma: no cover - closing on the way out
                pass


class RemoteControl(Inspection):
    """Mixin of `Node`: the control commands, answered by the main loop."""

    app: Any
    opts: Any
    spec: Any
    pool: Any
    state: str
    desired: int
    node_id: str
    wakeup: Any
    scaler: Any
    overrides: Any
    next_revoke_check: float
    fork_guard: Any
    control: Listener | None = None
    revoked_ids: list[str]

    def _warm_stop(self, why: str) -> None:  # pragma: no cover - SignalHandlers'
        raise NotImplementedError

    def _start_control(self) -> None:
        self.revoked_ids = []
        app = self.app

        def make_broker() -> Broker:
            if app.broker.url.startswith("memory:"):
                return app.broker  # one store per process
            from qmulti.brokers import create_broker, store_options

            return create_broker(app.broker.url, **store_options(app.conf))

        self.control = Listener(make_broker, self.node_id, self.wakeup.wfd, self.fork_guard)
        self.control.start()

    def _stop_control(self) -> None:
        if self.control is None:
            return
        self.control.stop()
        try:
            self.app.broker.control_forget(self.node_id)
        except Exception as exc:  # it expires by itself
            log.debug("Could not drop the control inbox: %s", exc)

    def _handle_control(self) -> None:
        if self.control is None:
            return
        while True:
            try:
                request = self.control.requests.get_nowait()
            except queue.Empty:
                return
            self._answer(request)

    def _answer(self, request: dict[str, Any]) -> None:
        method = request["method"]
        handler = getattr(self, f"_ctl_{method}", None)
        if handler is None:
            reply: Any = {"error": f"unknown command {method!r}"}
        else:
            try:
                reply = handler(**request["arguments"])
            except TypeError as exc:
                reply = {"error": f"bad arguments for {method}: {exc}"}
            except Exception as exc:
                log.exception("Remote control: %s failed", method)
                reply = {"error": f"{type(exc).__name__}: {exc}"}
        log.debug("Remote control: %s -> %s", method, reply)
        reply_to = request.get("reply_to")
        if not reply_to:
            return
        try:
            self.app.broker.control_reply(
                str(reply_to), wire.encode_reply(str(request.get("id")), self.opts.name, reply))
        except Exception as exc:
            log.warning("Remote control: could not send the reply to %s (%s)", method, exc)

    # -- commands ------------------------------------------------------------------------
    def _ctl_ping(self) -> dict[str, Any]:
        return {"ok": "pong"}

    def _ctl_shutdown(self) -> dict[str, Any]:
        self._warm_stop("remote control: shutdown")
        return {"ok": "shutting down"}

    def _ctl_pool_grow(self, n: int = 1) -> dict[str, Any]:
        if self.state != RUNNING:
            return {"error": f"node is {self.state}"}
        self.desired += max(int(n), 0)
        log.info("Remote control: pool grows to %d children", self.desired)
        return {"ok": "pool will grow"}

    def _ctl_pool_shrink(self, n: int = 1) -> dict[str, Any]:
        if self.state != RUNNING:
            return {"error": f"node is {self.state}"}
        self.desired = max(1, self.desired - max(int(n), 0))
        log.info("Remote control: pool shrinks to %d children", self.desired)
        return {"ok": "pool will shrink"}

    def _ctl_autoscale(self, max: int, min: int) -> dict[str, Any]:  # noqa: A002
        if self.scaler is None:
            return {"error": "autoscale not enabled (start the node with --autoscale)"}
        high, low = int(max), int(min)
        if low < 1 or high < low:
            return {"error": f"bad bounds max={high} min={low}"}
        self.scaler.high, self.scaler.low = high, low
        self.opts = dataclasses.replace(self.opts, autoscale=(high, low))
        return {"ok": f"autoscale now max={high} min={low}"}

    def _ctl_revoke(self, task_id: Any = (), terminate: bool = False,
                    signal: Any = None) -> dict[str, Any]:
        ids = [task_id] if isinstance(task_id, str) else [str(t) for t in task_id]
        self.revoked_ids = (self.revoked_ids + [i for i in ids if i not in self.revoked_ids]
                            )[-REVOKED_KEPT:]
        if terminate:
            self.next_revoke_check = 0.0  # look at the marks in this very loop turn
        return {"ok": f"tasks {', '.join(ids)} flagged as revoked"}

    def _set_limits(self, task_name: str, **limits: Any) -> dict[str, Any] | None:
        if task_name not in self.app.tasks:
            return {"error": f"unknown task {task_name}"}
        doc = dict(self.overrides.doc)
        tasks = {k: dict(v) for k, v in (doc.get("tasks") or {}).items()}
        tasks.setdefault(task_name, {}).update(limits)
        doc["tasks"] = tasks
        self.overrides.publish(doc)
        apply_tasks(self.app, doc)  # here too: children forked from now on inherit it
        return None

    def _ctl_rate_limit(self, task_name: str, rate_limit: Any = None) -> dict[str, Any]:
        if rate_limit:
            from qmulti.routing import parse_rate

            try:
                parse_rate(rate_limit)
            except Exception as exc:
                return {"error": f"bad rate limit {rate_limit!r}: {exc}"}
        failed = self._set_limits(task_name, rate_limit=rate_limit or None)
        if failed:
            return failed
        log.info("Remote control: rate limit of %s set to %s", task_name, rate_limit)
        return {"ok": "new rate limit set successfully"}

    def _ctl_time_limit(self, task_name: str, soft: Any = None,
                        hard: Any = None) -> dict[str, Any]:
        limits = {"soft_time_limit": float(soft) if soft else None,
                  "time_limit": float(hard) if hard else None}
        failed = self._set_limits(task_name, **limits)
        if failed:
            return failed
        log.info("Remote control: time limits of %s set to soft=%s hard=%s", task_name,
                 soft, hard)
        return {"ok": "time limits set successfully"}

    def _set_queues(self, queues: list[str]) -> None:
        self.opts = dataclasses.replace(self.opts, queues=tuple(queues))
        self.spec = dataclasses.replace(self.spec, queues=tuple(queues))
        if hasattr(self.pool, "spec"):
            self.pool.spec = self.spec  # threads started from now on
        doc = dict(self.overrides.doc)
        doc["queues"] = list(queues)
        self.overrides.publish(doc)
        log.info("Remote control: consuming from %s", ",".join(queues))

    def _ctl_add_consumer(self, queue: str, **_options: Any) -> dict[str, Any]:
        if queue in self.opts.queues:
            return {"ok": f"already consuming from {queue!r}"}
        self._set_queues([*self.opts.queues, queue])
        return {"ok": f"add consumer {queue}"}

    def _ctl_cancel_consumer(self, queue: str, **_options: Any) -> dict[str, Any]:
        if queue not in self.opts.queues:
            return {"ok": f"not consuming from {queue!r}"}
        if len(self.opts.queues) == 1:
            return {"error": f"{queue!r} is the only queue of {self.opts.name}; add another "
                             "first"}
        self._set_queues([q for q in self.opts.queues if q != queue])
        return {"ok": f"no longer consuming from {queue}"}
