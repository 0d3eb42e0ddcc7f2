"""The node main process: one loop that supervises pool children.

The shape is gunicorn's arbiter: signal handlers only wake the loop (the C-level
wake-up fd gets the signal number); the loop blocks in `select` on that pipe and on
each child's status pipe, then, in this order, handles the signals (changing the
*desired* state), reaps dead children (releasing their leases at once), enforces hard
time limits, heartbeats, and reconciles actual children against the desired count.
No broker call, log line or kill ever happens inside a signal handler.

The steps live in mixins, one concern each: nodesignals (what each signal does),
childwatch (burying children, time limits, terminate), brokerlink (connect,
heartbeat, reaping, tidy) and control (remote control: a listener thread pokes the
wake-up pipe, the loop answers). Run states are in qmulti.node.states.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from qmulti.node import logs, proctitle
from qmulti.node.autoscale import Autoscaler
from qmulti.node.brokerlink import BrokerLink
from qmulti.node.child import ChildSetup, ConsumerSpec
from qmulti.node.childwatch import ChildWatch
from qmulti.node.control import RemoteControl
from qmulti.node.liveness import Liveness
from qmulti.node.nodesignals import SignalHandlers
from qmulti.node.overrides import Overrides
from qmulti.node.pool import PreforkPool, ThreadPool, Worker
from qmulti.node.states import COLD, RUNNING, STOPPING
from qmulti.system.notify import Notifier
from qmulti.system.wakeup import Wakeup

log = logging.getLogger("qmulti")

__all__ = ["COLD", "ENV_REEXEC", "RUNNING", "STOPPING", "Node", "NodeOptions"]

ENV_REEXEC = "QMULTI_REEXEC"  # set across a HUP re-exec: already detached, adopt the pidfile
STATUS_INTERVAL = 1.0  # at most one STATUS= datagram a second while counts change


@dataclass(frozen=True)
class NodeOptions:
    """The node's settings after command line and app configuration are merged."""

    name: str
    queues: tuple[str, ...]
    concurrency: int
    pool: str = "prefork"
    prefetch: int = 4
    max_tasks_per_child: int | None = None
    max_memory_per_child: int | None = None  # KiB
    time_limit: float | None = None
    soft_time_limit: float | None = None
    loglevel: int = logging.WARNING
    logfile: str | None = None  # template, may hold %I
    heartbeat_interval: float = 2.0
    heartbeat_expiry: float = 10.0
    purge: bool = False  # --purge: delete the waiting messages of our queues at start
    autoscale: tuple[int, int] | None = None  # (MAX, MIN) children


class Node(SignalHandlers, ChildWatch, BrokerLink, RemoteControl):
    """One node: its pool children, its signals and its broker link (the mixins)."""

    def __init__(self, app: Any, opts: NodeOptions, notifier: Notifier,
                 pidfile: Any = None) -> None:
        self.app = app
        self.opts = opts
        self.notifier = notifier
        self.pidfile = pidfile
        self.pid = os.getpid()
        self.started_at = time.time()
        self.node_id = f"{opts.name}#{self.pid}.{int(self.started_at * 1000)}"
        self.state = RUNNING
        self.desired = opts.concurrency
        self.generation = 0
        self.finished_dead = 0  # tasks finished by children already reaped
        self.int_count = 0
        self.restart_requested = False  # HUP: the caller re-executes after run() returns
        self.ready_sent = False  # READY=1 goes out once every child is up
        self.start_failure = ""  # a child died before READY: why (the node exits 1)
        self.pending_release: list[str] = []  # consumers whose release failed
        self.respawn_at: dict[int, float] = {}
        self.respawn_delay: dict[int, float] = {}
        self.next_beat = 0.0
        self.next_revoke_check = 0.0
        self.next_tidy = 0.0  # monotonic time of the next idle store housekeeping
        # Held by the threads of this process that use SQLite (`-B`'s scheduler, the
        # control listener) during each call: a fork mid-transaction would leave the
        # child's SQLite believing its process holds the lock (it then waits forever).
        self.fork_guard: Any = threading.Lock()  # or qmulti.node.beat.Embedded's
        self.beat_failures = 0
        # No reaping of other nodes before this (monotonic): after the broker was out of
        # reach, every node gets one full expiry to heartbeat again before any is judged.
        self.reap_after = 0.0
        self.reaps_seen = 0  # times the broker said it judged this node dead
        self.liveness = Liveness(opts.heartbeat_expiry)
        self.last_status = ""
        self.next_status = 0.0
        self.overrides = Overrides()  # before any fork: remote control's changes
        self.spec = ConsumerSpec(opts.name, self.node_id, opts.queues, opts.prefetch,
                                 opts.max_tasks_per_child, opts.max_memory_per_child,
                                 opts.concurrency, self.liveness, self.overrides)
        self.scaler = None if opts.autoscale is None else Autoscaler(*opts.autoscale)
        self.events: Any = None  # qmulti.node.events.NodeEvents under -E
        self.wakeup = Wakeup()
        if opts.pool == "prefork":
            self.pool: PreforkPool | ThreadPool = PreforkPool(self._child_setup)
        else:
            self.pool = ThreadPool(app, self.spec, opts.time_limit, opts.soft_time_limit)

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> int:
        self._install_signals()
        proctitle.set_title(proctitle.main_title(self.opts.name))
        if not self._connect():
            return 0  # stopped by a signal before the broker came up
        if self.opts.purge:
            self._purge()
        self._start_control()
        self._reconcile()
        self._maybe_ready()
        while self.state == RUNNING or self._waiting_for_children():
            self._wait(self._timeout())
            self._handle_signals()
            self._handle_control()
            self._reap()
            self._check_time_limits()
            self._check_revoked()
            self._tick()
            self._reconcile()
            self._maybe_ready()
        self._shutdown()
        return 1 if self.start_failure else 0

    def _maybe_ready(self) -> None:
        """READY=1 only once every child said it is up: a node whose children cannot
        start must not look healthy to `qmulti start`, supervise or systemd."""
        workers = self.pool.all()
        if (self.ready_sent or self.state != RUNNING or len(workers) < self.desired
                or not all(w.up for w in workers)):
            return
        self.ready_sent = True
        log.info("%s ready: %d %s child(ren) consuming from %s", self.opts.name,
                 len(workers), self.opts.pool, ",".join(self.opts.queues))
        self.last_status = self._status_text()
        self.next_status = time.monotonic() + STATUS_INTERVAL
        self.app.middleware.emit("node_ready", self.app, self)  # worker_ready
        self.notifier.ready(self.last_status)

    def _start_failed(self, w: Worker, reason: str) -> None:
        """A child died before the node was READY: the start failed, with its reason."""
        self.start_failure = f"pool child {w.index} could not start: {reason}"
        log.error("%s; stopping", self.start_failure)
        self.notifier.fatal(self.start_failure, 1)
        self._warm_stop("start failed")

    def _waiting_for_children(self) -> bool:
        # A thread cannot be killed: a cold stop of a threads pool gives its tasks back
        # and leaves without waiting for them.
        return bool(self.pool.all()) and not (self.state == COLD and self.pool.kind != "prefork")

    def _timeout(self) -> float:
        timeout = max(0.0, self.next_beat - time.monotonic())
        if self.respawn_at:
            timeout = min(timeout, max(0.0, min(self.respawn_at.values()) - time.monotonic()))
        if any(w.running and w.running.time_limit for w in self.pool.all()):
            timeout = min(timeout, 0.1)
        if any(w.running for w in self.pool.all()):
            timeout = min(timeout, max(0.0, self.next_revoke_check - time.monotonic()))
        watchdog = self.notifier.watchdog_due_in()
        if watchdog is not None:
            timeout = min(timeout, watchdog)
        if (self.state == RUNNING and self.notifier.enabled
                and self.last_status != self._status_text()):
            timeout = min(timeout, max(0.0, self.next_status - time.monotonic()))
        return min(timeout, 1.0)

    def _wait(self, timeout: float) -> None:
        # poll, not select: -P gevent -c 500 has more than FD_SETSIZE (1024) descriptors
        poller = select.poll()
        for fd in [self.wakeup.fileno()] + [w.rfd for w in self.pool.all() if not w.eof]:
            poller.register(fd, select.POLLIN)
        try:
            ready = {fd for fd, _ in poller.poll(max(0, int(timeout * 1000 + 0.999)))}
        except InterruptedError:  # pragma: no cover - PEP 475 retries poll
            return
        for w in self.pool.all():
            if w.rfd in ready:
                self._read_status(w)

    def _read_status(self, w: Worker) -> None:
        while True:
            try:
                data = os.read(w.rfd, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                w.eof = True
                return
            w.feed(data)


    def _reconcile(self) -> None:
        if self.state != RUNNING:
            return
        workers = self.pool.all()
        for w in workers:
            if w.index > self.desired and not w.stopping:
                w.retiring = True
                self.pool.stop(w)
        taken = {w.index for w in workers}
        now = time.monotonic()
        for index in range(1, self.desired + 1):
            if index in taken or self.respawn_at.get(index, 0.0) > now:
                continue
            self.respawn_at.pop(index, None)
            self.generation += 1
            with self.fork_guard:  # `-B`: never fork while the scheduler thread is mid-call
                w = self.pool.spawn(index, self.generation,
                                    [self.wakeup.rfd, self.wakeup.wfd])
            log.debug("Started pool child %d (%s)", index, w.consumer)

    def _child_setup(self, w: Worker, wfd: int) -> ChildSetup:
        own_log = logs.child_logfile(self.opts.logfile, self.opts.name, w.index)
        return ChildSetup(
            app=self.app, spec=self.spec, index=w.index, consumer=w.consumer, status_fd=wfd,
            close_fds=[], parent_pid=self.pid, pidfile=self.pidfile,
            log_level=self.opts.loglevel,
            logfile=own_log, reopen_log=own_log is not None, time_limit=self.opts.time_limit,
            soft_time_limit=self.opts.soft_time_limit)


    def _status_text(self) -> str:
        workers = self.pool.all()
        active = sum(1 for w in workers if w.running)
        finished = self.finished_dead + sum(w.finished for w in workers)
        return (f"consuming from {','.join(self.opts.queues)}: {len(workers)} children, "
                f"{active} active, {finished} finished")

    def _report_status(self) -> None:
        """STATUS= for `systemctl status` and the controller: sent when the counts change,
        no more than once per STATUS_INTERVAL, and only while running (a stopping node's
        status says what it waits for)."""
        if self.state != RUNNING or not self.notifier.enabled or not self.ready_sent:
            return  # before READY=1 the counters say nothing yet
        now = time.monotonic()
        if now < self.next_status:
            return
        text = self._status_text()
        if text != self.last_status:
            self.notifier.status(text)
            self.last_status = text
            self.next_status = now + STATUS_INTERVAL

    def _info(self) -> dict[str, Any]:
        workers = self.pool.all()
        return {
            "name": self.opts.name, "pid": self.pid, "hostname": socket.gethostname(),
            "concurrency": self.desired, "pool": self.opts.pool,
            "autoscale": list(self.opts.autoscale) if self.opts.autoscale else None,
            "active": sum(1 for w in workers if w.running),
            "finished": self.finished_dead + sum(w.finished for w in workers),
            "started_at": self.started_at, "queues": list(self.opts.queues),
            "state": self.state, "children": [w.pid for w in workers if w.pid],
        }

    def _shutdown(self) -> None:
        self._stop_control()
        broker = self.app.broker
        try:
            count = broker.release(self.node_id)
            if count:
                log.info("Gave back %d task(s) at stop", count)
            broker.unregister(self.node_id)
        except Exception as exc:
            log.error("Could not unregister from the broker (%s); the node's leases go back "
                      "when its heartbeat expires", exc)
        log.info("%s %s", self.opts.name,
                 "restarting in place" if self.restart_requested else "stopped")
        self.wakeup.close(restore_handlers=False)  # a late TERM must not kill us mid-exit
