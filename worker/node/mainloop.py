"""The node main process: one loop that supervises pool children.

The shape is gunicorn's arbiter: signal handlers only wake the loop (the C-level
wake-up fd gets the signal number); the loop blocks in `select` on that pipe and on
each child's status pipe, then, in this order, handles the signals (changing the
*desired* state), reaps dead children (releasing their leases at once), enforces hard
time limits, heartbeats, and reconciles actual children against the desired count.
No broker call, log line or kill ever happens inside a signal handler.

USR2 reopens the log files for rotation (see worker/logs.py): the main process reopens
its own and passes the request on to each prefork child as WINCH.

States: RUNNING -> STOPPING (warm: TERM, INT) -> STOPPED; RUNNING/STOPPING -> COLD
(QUIT, second INT) -> STOPPED. The loop ends when stopping and no child is left.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

from qmulti.exceptions import BrokerConnectionError
from qmulti.node import logs, proctitle, revoke
from qmulti.node.autoscale import Autoscaler
from qmulti.node.child import (
    ChildSetup,
    ConsumerSpec,
    handled_signals,
    result_ttl,
)
from qmulti.node.execute import store_time_limit
from qmulti.node.liveness import Liveness
from qmulti.node.pool import Death, PreforkPool, ThreadPool, Worker
from qmulti.system.backoff import Backoff
from qmulti.system.notify import Notifier
from qmulti.system.wakeup import Wakeup

log = logging.getLogger("qmulti")

RUNNING, STOPPING, COLD = "running", "stopping", "cold"
ENV_REEXEC = "QMULTI_REEXEC"  # set across a HUP re-exec: already detached, adopt the pidfile
MAX_BACKOFF = 30.0
RESPAWN_BACKOFF_MAX = 10.0
TIDY_INTERVAL = 5.0  # an idle node tidies the store (SQLite: truncates the WAL) this often
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


class Node:
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
        self.fork_guard: Any = contextlib.nullcontext()  # qmulti.node.beat.Embedded's lock
        self.beat_failures = 0
        # No reaping of other nodes before this (monotonic): after the broker was out of
        # reach, every node gets one full expiry to heartbeat again before any is judged.
        self.reap_after = 0.0
        self.reaps_seen = 0  # times the broker said it judged this node dead
        self.liveness = Liveness(opts.heartbeat_expiry)
        self.last_status = ""
        self.next_status = 0.0
        self.spec = ConsumerSpec(opts.name, self.node_id, opts.queues, opts.prefetch,
                                 opts.max_tasks_per_child, opts.max_memory_per_child,
                                 opts.concurrency, self.liveness)
        self.scaler = None if opts.autoscale is None else Autoscaler(*opts.autoscale)
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
        self._reconcile()
        self._maybe_ready()
        while self.state == RUNNING or self._waiting_for_children():
            self._wait(self._timeout())
            self._handle_signals()
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

    # -- signals -------------------------------------------------------------------------
    def _install_signals(self) -> None:
        self.wakeup.install(sig for sig in handled_signals() if sig != signal.SIGALRM)

    def _handle_signals(self) -> None:
        for signum in self.wakeup.drain():
            handler = getattr(self, f"_on_{_signame(signum).lower()}", None)
            if handler is not None:
                handler()

    def _on_sigterm(self) -> None:
        self._warm_stop("TERM")

    def _on_sigint(self) -> None:
        self.int_count += 1
        if self.int_count > 1:
            self._cold_stop("second INT")
        else:
            self._warm_stop("INT (a second INT is a cold stop)")

    def _on_sigquit(self) -> None:
        self._cold_stop("QUIT")

    def _on_sigttin(self) -> None:
        if self.state == RUNNING:
            self.desired += 1
            log.info("TTIN: pool grows to %d children", self.desired)

    def _on_sigttou(self) -> None:
        if self.state == RUNNING and self.desired > 1:
            self.desired -= 1
            log.info("TTOU: pool shrinks to %d children", self.desired)

    def _on_sigusr1(self) -> None:
        frames = sys._current_frames()
        names = {t.ident: t.name for t in threading.enumerate()}
        parts = [f"USR1: Python stacks of {self.opts.name} main process (pid {self.pid}):"]
        for ident, frame in frames.items():
            parts.append(f"Thread {names.get(ident, ident)}:\n"
                         + "".join(traceback.format_stack(frame)))
        log.warning("%s", "\n".join(parts))
        self.pool.forward(signal.SIGUSR1)  # each child dumps its own stack to the log

    def _on_sigusr2(self) -> None:
        """Log rotation: reopen our log file at its path, then have each child reopen
        its own (children use USR2 for warm stop, so they get CHILD_REOPEN_SIGNAL)."""
        paths = logs.reopen()
        self.pool.forward(logs.CHILD_REOPEN_SIGNAL)
        if paths:
            log.info("USR2: reopened %s and asked %d pool child(ren) to reopen theirs",
                     ", ".join(paths), len(self.pool.all()))
        else:
            log.info("USR2: no log file to reopen (logging to a stream)")

    def _on_sighup(self) -> None:
        """Graceful restart in place: drain as a warm stop, then the entry point
        re-executes the same command line in this pid (new code, same pidfile lock)."""
        if self.state != RUNNING:
            return
        self.restart_requested = True
        self.notifier.send(reloading=1, status="restarting: draining running tasks")
        self._warm_stop("HUP (restart in place)")

    def _warm_stop(self, why: str) -> None:
        if self.state != RUNNING:
            return
        self.state = STOPPING
        busy = sum(1 for w in self.pool.all() if w.running)
        log.info("%s: warm stop: waiting for %d running task(s); giving back the rest", why,
                 busy)
        if not self.restart_requested:
            self.notifier.stopping(f"warm stop: waiting for {busy} running task(s)")
        proctitle.set_title(proctitle.main_title(self.opts.name, "stopping"))
        for w in self.pool.all():
            self.pool.stop(w)

    def _cold_stop(self, why: str) -> None:
        if self.state == COLD:
            return
        if self.state == RUNNING:
            self.notifier.stopping("cold stop")
        self.state = COLD
        log.warning("%s: cold stop: ending %d child(ren); their tasks go back to the queue",
                    why, len(self.pool.all()))
        for w in self.pool.all():
            self.pool.kill(w)

    # -- children ------------------------------------------------------------------------
    def _reap(self) -> None:
        for death in self.pool.reap():
            self._buried(death)

    def _buried(self, death: Death) -> None:
        w = death.worker
        self._read_status(w)  # an "E" may still sit in the pipe
        os.close(w.rfd)
        self.finished_dead += w.finished
        terminated = w.revoked is not None and w.running == w.revoked
        expected = (death.clean or self.state == COLD or w.timed_out is not None
                    or terminated)
        level = logging.INFO if expected else logging.WARNING
        doing = f" while running {w.running.name}[{w.running.task_id}]" if w.running else ""
        hint = ""
        if ("SIGKILL" in death.description and w.timed_out is None and not terminated
                and self.state != COLD):
            hint = " (SIGKILL: the out-of-memory killer or a kill -9)"
        log.log(level, "Pool child %d (%s) %s%s%s", w.index, w.consumer, death.description,
                doing, hint)
        if w.timed_out is not None and w.running == w.timed_out:
            self._store_time_limit(w.timed_out)
        elif terminated:
            self._store_terminated(w.revoked)
        self._release(w.consumer)
        if w.failure:
            log.warning("Pool child %d could not start: %s", w.index, w.failure)
        if not death.clean and not self.ready_sent and self.state == RUNNING:
            self._start_failed(w, w.failure or death.description)
            return
        crashed_at_start = (not death.clean and w.running is None and w.finished == 0
                            and time.monotonic() - w.spawned < 1.0)
        if crashed_at_start and self.state == RUNNING:
            delay = min(self.respawn_delay.get(w.index, 0.5) * 2, RESPAWN_BACKOFF_MAX)
            self.respawn_delay[w.index] = delay
            self.respawn_at[w.index] = time.monotonic() + delay
            log.warning("Pool child %d died at once; next one in %.1fs", w.index, delay)
        else:
            self.respawn_delay.pop(w.index, None)

    def _release(self, consumer: str) -> None:
        try:
            count = self.app.broker.release(self.node_id, consumer)
        except Exception as exc:
            log.warning("Could not give back the tasks of %s yet (%s); will retry", consumer,
                        exc)
            self.pending_release.append(consumer)
            return
        if count:
            log.info("Gave back %d task(s) held by %s", count, consumer)

    def _store_time_limit(self, running: Any) -> None:
        try:
            store_time_limit(self.app.broker, self.app.backend, running, self.opts.name,
                             result_ttl(self.app.conf))
        except Exception as err:
            log.error("Could not store the time-limit failure of %s: %s", running.task_id, err)

    def _store_terminated(self, running: Any) -> None:
        try:
            revoke.store_terminated(self.app.broker, self.app.backend, running,
                                    self.opts.name, result_ttl(self.app.conf))
        except Exception as err:
            log.error("Could not store REVOKED for %s: %s", running.task_id, err)

    def _check_revoked(self) -> None:
        """revoke(terminate=True): signal the child running a task whose REVOKED mark
        asks for it (see worker/node/revoke.py), once per task."""
        now = time.monotonic()
        if now < self.next_revoke_check:
            return
        self.next_revoke_check = now + revoke.POLL
        busy = [w for w in self.pool.all() if w.running and w.revoked != w.running]
        if not busy:
            return
        try:
            backend = self.app.backend
            accept = frozenset(self.app.conf.accept_content or ["json"])
            asked = [(w, revoke.requested(backend, w.running.task_id, accept)) for w in busy]
        except Exception as exc:  # the heartbeat path reports an outage; look again later
            log.debug("Could not look up revoked tasks: %s", exc)
            return
        for w, name in asked:
            r = w.running
            if name is None or r is None:
                continue
            w.revoked = r
            if self.pool.kind != "prefork":
                log.warning("Task %s[%s] revoked with terminate; a %s pool cannot stop it",
                            r.name, r.task_id, self.opts.pool)
                continue
            log.warning("Task %s[%s] revoked: terminating it (%s) in pool child %d",
                        r.name, r.task_id, name, w.index)
            self.pool.signal(w, revoke.os_signal(name))

    def _check_time_limits(self) -> None:
        now = time.monotonic()
        for w in self.pool.all():
            r = w.running
            if r is None or not r.time_limit or w.timed_out is not None:
                continue
            if now - w.began > r.time_limit:
                w.timed_out = r
                if self.pool.kind != "prefork":
                    log.warning("Task %s[%s] is past its time limit of %gs; a %s pool cannot "
                                "kill it", r.name, r.task_id, r.time_limit, self.opts.pool)
                    continue
                log.error("Task %s[%s] ran past its time limit of %gs: killing pool child %d",
                          r.name, r.task_id, r.time_limit, w.index)
                self.pool.kill(w)

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
        template = self.opts.logfile
        own_log = bool(template) and ("%I" in template or "%i" in template)
        return ChildSetup(
            app=self.app, spec=self.spec, index=w.index, consumer=w.consumer, status_fd=wfd,
            close_fds=[], parent_pid=self.pid, pidfile=self.pidfile,
            log_level=self.opts.loglevel,
            logfile=logs.expand_path(template, self.opts.name, w.index) if own_log else None,
            reopen_log=own_log, time_limit=self.opts.time_limit,
            soft_time_limit=self.opts.soft_time_limit)

    # -- broker --------------------------------------------------------------------------
    def _connect(self) -> bool:
        """Heartbeat once before forking: the node is ready only when the broker answers.
        ConfigError (bad URL, unwritable path) propagates: exit 78."""
        backoff = Backoff(first=0.5, cap=MAX_BACKOFF)
        failures = 0
        while True:
            try:
                self.app.broker.heartbeat(self.node_id, self._info())
                self.liveness.beat()
                self.next_beat = time.monotonic() + self.opts.heartbeat_interval
                if failures:
                    log.warning("Broker reachable again after %d tries; starting", failures)
                    self.reap_after = time.monotonic() + self.opts.heartbeat_expiry
                return True
            except BrokerConnectionError as exc:
                # One clear line, then quiet retries: the broker may come back, and a log
                # that repeats every backoff step buries the reason.
                failures += 1
                if failures == 1:
                    log.warning("Cannot reach the broker (%s); retrying with backoff (up to "
                                "%.0fs apart) until it answers", exc, MAX_BACKOFF)
                else:
                    log.debug("Broker still unreachable (try %d): %s", failures, exc)
                self.notifier.status(f"waiting for the broker: {exc}")
            deadline = time.monotonic() + backoff.next_delay(0.0)
            while time.monotonic() < deadline and self.state == RUNNING:
                self.notifier.watchdog()  # waiting for the broker is not hanging
                due = self.notifier.watchdog_due_in()
                left = max(0.0, deadline - time.monotonic())
                self._wait(min(left, 1.0 if due is None else due))
                self._handle_signals()
            if self.state != RUNNING:
                return False

    def _purge(self) -> None:
        """--purge, as Celery's: the waiting messages of this node's queues are deleted
        before any child consumes (scheduled and leased ones are not waiting)."""
        count = sum(self.app.broker.purge(queue) for queue in self.opts.queues)
        log.warning("--purge: deleted %d waiting message(s) from %s", count,
                    ",".join(self.opts.queues))

    def _autoscale(self, broker: Any) -> None:
        if self.scaler is None or self.state != RUNNING:
            return
        depth = broker.stats().queues
        waiting = sum(int(depth.get(q, 0)) for q in self.opts.queues)
        busy = sum(1 for w in self.pool.all() if w.running)
        want = self.scaler.want(self.desired, busy, waiting)
        if want != self.desired:
            log.info("autoscale: pool %s to %d children (%d busy, %d waiting; %d..%d)",
                     "grows" if want > self.desired else "shrinks", want, busy, waiting,
                     self.scaler.low, self.scaler.high)
            self.desired = want

    def _tick(self) -> None:
        self.notifier.watchdog()
        self._report_status()
        now = time.monotonic()
        if now < self.next_beat:
            return
        try:
            broker = self.app.broker
            self._autoscale(broker)
            reaps = broker.heartbeat(self.node_id, self._info())
            reaped = reaps > self.reaps_seen
            self.reaps_seen = max(reaps, self.reaps_seen)
            self.liveness.beat(reaped=reaped)
            if reaped:
                self._reaped()
            if self.beat_failures:
                self.reap_after = now + self.opts.heartbeat_expiry
            requeued = 0
            if now >= self.reap_after:
                requeued = broker.requeue_dead_nodes(self.opts.heartbeat_expiry)
            while self.pending_release:
                broker.release(self.node_id, self.pending_release[0])
                self.pending_release.pop(0)
        except Exception as exc:  # whatever the store raised: log once, back off
            self.beat_failures += 1
            delay = min(self.opts.heartbeat_interval * 2 ** self.beat_failures, MAX_BACKOFF)
            if self.beat_failures == 1:
                log.error("Broker error in the main loop (%s); retrying with backoff up to "
                          "%.0fs", exc, MAX_BACKOFF)
            self.next_beat = now + min(delay, self.opts.heartbeat_expiry / 2)
            return
        if self.beat_failures:
            log.warning("Broker reachable again after %d failed heartbeat(s)",
                        self.beat_failures)
            self.beat_failures = 0
        if requeued:
            log.warning("Requeued %d task(s) held by nodes whose heartbeat expired", requeued)
        self.next_beat = now + self.opts.heartbeat_interval
        self._tidy(now)

    def _reaped(self) -> None:
        """The heartbeat reply said the broker had judged this node dead (it stalled or
        was cut off past the expiry): its leases went back and may run elsewhere. Each
        consumer drops its prefetched messages before its next task (see Liveness);
        running tasks finish, their results kept only where no final one came first."""
        busy = sum(1 for w in self.pool.all() if w.running)
        log.warning("%s: the broker had judged this node dead (no heartbeat for over %gs) "
                    "and gave its tasks back to the queue; dropping prefetched tasks, "
                    "%d running task(s) may finish", self.opts.name,
                    self.opts.heartbeat_expiry, busy)

    def _tidy(self, now: float) -> None:
        """Store housekeeping, only while no child runs a task: it must never slow work."""
        if now < self.next_tidy or any(w.running for w in self.pool.all()):
            return
        self.next_tidy = now + TIDY_INTERVAL
        try:
            self.app.broker.tidy()
        except Exception as exc:  # housekeeping: the next idle tick tries again
            log.debug("Store housekeeping failed: %s", exc)

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



def _signame(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"SIG{signum}"
