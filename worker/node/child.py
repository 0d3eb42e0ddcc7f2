"""A consumer: the claim -> execute loop, and the body of a prefork pool child around it.

Each consumer claims for itself (its own broker connection, batches of the prefetch
multiplier) and tells the node main process what it runs through a status pipe:
`B <mid> <queue> <token|-> <task_id> <time_limit|-> <name>` when a task begins, `E` when its
outcome is stored. The main process uses those lines for hard time limits, titles
and counts; it never touches messages itself.

Warm stop: the node sends SIGUSR2 (prefork) or calls `request_stop` (threads). An
idle consumer blocked in `claim` leaves at once (the handler raises `WarmStop`); a
busy one finishes its task, gives back its unstarted prefetched messages and leaves.
Whatever a dying consumer still holds, the main process releases after reaping it.

A consumer claims only while its node stands well with the broker (`liveness`): after
a broker error it waits for the node's next good heartbeat, and when that heartbeat
says the node had been judged dead, it drops its prefetched messages unrun (their
leases went back to the queue; another node runs them).
"""

from __future__ import annotations

import ctypes
import faulthandler
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from qmulti import protocol
from qmulti.brokers.base import Broker, Delivery
from qmulti.exceptions import BrokerError, SoftTimeLimitExceeded
from qmulti.node import logs, proctitle
from qmulti.node.execute import LOST_LEASE, Hooks, RateLimiter, Runtime, execute
from qmulti.node.liveness import Liveness
from qmulti.node.overrides import follow as follow_overrides
from qmulti.node.pipehooks import PipeHooks, rss_kib
from qmulti.node.retry import retrying
from qmulti.node.taskinfo import result_ttl
from qmulti.system.backoff import Backoff

# Longest a consumer blocks in claim: bounds how late a threads-pool consumer notices
# a stop request (prefork children are interrupted at once by SIGUSR2).
CLAIM_TIMEOUT = 1.0
PR_SET_PDEATHSIG = 1

__all__ = ["ChildSetup", "Consumer", "ConsumerSpec", "PipeHooks", "child_main", "rss_kib"]


class WarmStop(BaseException):
    """Raised by the SIGUSR2 handler in an idle child; BaseException so that no
    `except Exception` in broker code swallows it."""


@dataclass(frozen=True)
class ConsumerSpec:
    """What every consumer of a node shares."""

    node: str  # w1@host
    node_id: str
    queues: Sequence[str]
    prefetch: int
    max_tasks: int | None = None
    max_memory_kib: int | None = None
    concurrency: int = 1  # rate limits are shared out between the consumers
    liveness: Liveness | None = None  # the node's standing; None outside a node
    overrides: Any = None  # qmulti.node.overrides.Overrides: remote-control changes


class Consumer:
    """Claims and runs tasks until stopped or recycled; returns why it left.

    The claimed batch waits in `pending` (guarded by `lock`, never taken in a signal
    handler) so that a stop request can give the unstarted part back at once, from
    another thread, while the current task still runs."""

    def __init__(self, spec: ConsumerSpec, name: str, rt: Runtime, hooks: Hooks,
                 interruptible: bool, wake_fd: int | None = None) -> None:
        self.spec = spec
        self.name = name
        self.rt = rt
        self.hooks = hooks
        self.interruptible = interruptible
        self.wake_fd = wake_fd  # the give-back thread's pipe (prefork children)
        self.stop_requested = False
        self.idle = False
        self.done = 0
        self.exit_code = 0
        self.lock = threading.Lock()
        self.pending: list[Delivery] = []
        self.reaped_seen = 0  # the node's reaped count when `pending` was claimed
        self.queues: Sequence[str] = spec.queues  # add_consumer/cancel_consumer change it
        self.overrides_seen = 0

    def request_stop(self, *_: Any) -> None:
        """Signal handler (prefork) or a call from the main thread (threads)."""
        self.stop_requested = True
        if self.wake_fd is not None:
            try:
                os.write(self.wake_fd, b"x")
            except OSError:
                pass
        if self.interruptible and self.idle:
            raise WarmStop()

    def give_back_pending(self, broker: Broker) -> int:
        """Nack the claimed but unstarted messages now (warm stop)."""
        with self.lock:
            rest, self.pending = self.pending, []
            if rest:
                broker.nack(rest)
        if rest:
            self.rt.log.info("Consumer %s gave back %d prefetched message(s)", self.name,
                             len(rest))
        return len(rest)

    def drop_pending(self, why: str) -> None:
        """Give up the prefetched messages unrun: their leases were (or may have been)
        taken back. The nack is fenced, so a lease that did go back is left alone."""
        with self.lock:
            rest, self.pending = self.pending, []
            if rest:
                broker = self.rt.broker
                retrying(self.rt, lambda: broker.nack(rest))
        if rest:
            self.rt.log.info("Consumer %s dropped %d prefetched message(s) unrun: %s",
                             self.name, len(rest), why)

    def _wait_for_node(self, not_before: float) -> None:
        """Claim only while the node's heartbeat is fresh (and, after a broker error, newer
        than it): interruptible by a warm stop, as an idle claim is."""
        live = self.spec.liveness
        while live is not None and not self.stop_requested and not live.may_claim(not_before):
            self.idle = True
            try:
                time.sleep(0.05)
            finally:
                self.idle = False

    def run(self) -> str:
        backoff = Backoff(first=0.1, cap=5.0)
        log = self.rt.log
        not_before = 0.0  # monotonic time of this consumer's last broker error
        live = self.spec.liveness
        while not self.stop_requested:
            self._wait_for_node(not_before)
            self.idle = True
            try:
                if self.stop_requested:
                    break
                reaped = 0 if live is None else live.reaped
                follow_overrides(self)
                batch = self.rt.broker.claim(self.queues, self.spec.node_id, self.name,
                                             self.spec.prefetch, CLAIM_TIMEOUT)
            except BrokerError as exc:
                self.idle = False
                delay = backoff.next_delay(0.0)
                not_before = time.monotonic()
                log.warning("Consumer %s: broker error while claiming (%s); retrying in "
                            "%.1fs", self.name, exc, delay)
                time.sleep(delay)
                continue
            finally:
                self.idle = False
            backoff.reset()
            with self.lock:
                self.pending = list(batch)
                self.reaped_seen = reaped
            self.hooks.reserved(self.rt.broker, batch)
            reason = self._run_pending()
            if reason:
                return reason
        return "stop"

    def _run_pending(self) -> str | None:
        live = self.spec.liveness
        while True:
            if live is not None and live.reaped != self.reaped_seen:
                self.drop_pending("the broker had judged this node dead")
            with self.lock:
                if self.stop_requested or not self.pending:
                    break
                delivery = self.pending.pop(0)
            follow_overrides(self)
            try:
                if execute(self.rt, delivery, self.hooks) == LOST_LEASE:
                    # Claimed together, reaped together: the rest went back too.
                    self.drop_pending("their leases were taken back")
                    continue
            except (BrokerError, SoftTimeLimitExceeded):
                raise  # the claim loop retries the broker; a late soft limit ends the task
            except Exception as exc:
                # A bug of ours on one message must not crash-loop the child before the
                # message is ever counted: park it where `qmulti status` shows it.
                self.rt.log.exception("Internal error on message %s; dead-lettering it",
                                      delivery.mid)
                self.rt.broker.dead_letter(delivery, f"internal error: {exc!r}"[:500])
            self.done += 1
            reason = self._recycle_reason()
            if reason:
                self.give_back_pending(self.rt.broker)
                return reason
        if self.stop_requested:
            self.give_back_pending(self.rt.broker)
            return "stop"
        return None

    def _recycle_reason(self) -> str | None:
        spec = self.spec
        if spec.max_tasks and self.done >= spec.max_tasks:
            return f"max tasks per child ({spec.max_tasks}) reached"
        if spec.max_memory_kib:
            rss = rss_kib()
            if rss > spec.max_memory_kib:
                return f"memory {rss} KiB over max memory per child ({spec.max_memory_kib} KiB)"
        return None


def _give_back_thread(consumer: Consumer, wake_r: int, make_broker: Callable[[], Broker]) -> None:
    """In a prefork child: wait for the stop request, then give back the prefetched
    messages with a connection of our own while the main thread finishes its task."""
    try:
        os.read(wake_r, 1)
    except OSError:
        return
    try:
        broker = make_broker()
        consumer.give_back_pending(broker)
    except Exception as exc:  # the node releases them when this child is reaped anyway
        consumer.rt.log.warning("Consumer %s could not give back its prefetched messages "
                                "early (%s); they go back when it exits", consumer.name, exc)


def _soft_limit(*_: Any) -> None:
    raise SoftTimeLimitExceeded("soft time limit exceeded")


def make_runtime(app: Any, spec: ConsumerSpec, broker: Broker, backend: Any,
                 time_limit: float | None, soft_time_limit: float | None) -> Runtime:
    conf = app.conf
    accept = protocol.accepted(getattr(conf, "accept_content", None) or ["json"])
    result_ct = protocol.normalize_content_type(
        getattr(conf, "result_serializer", None) or "json")
    limiter = RateLimiter(1.0 / max(spec.concurrency, 1),
                          getattr(conf, "task_default_rate_limit", None))
    return Runtime(app=app, broker=broker, backend=backend, hostname=spec.node,
                   accept=accept, result_ct=result_ct, ttl=result_ttl(conf),
                   time_limit=time_limit, soft_time_limit=soft_time_limit,
                   log=logging.getLogger("qmulti"), limiter=limiter,
                   ignore_result=bool(getattr(conf, "task_ignore_result", False)),
                   store_errors=bool(getattr(conf, "task_store_errors_even_if_ignored", False)),
                   extended=bool(getattr(conf, "result_extended", False)))


@dataclass
class ChildSetup:
    """What a freshly forked child needs to become a consumer."""

    app: Any
    spec: ConsumerSpec
    index: int
    consumer: str
    status_fd: int
    close_fds: Sequence[int]
    parent_pid: int
    pidfile: Any  # pidfiles.Pidfile or None
    log_level: int
    logfile: str | None  # already expanded for this child
    reopen_log: bool
    time_limit: float | None
    soft_time_limit: float | None


def child_main(setup: ChildSetup) -> int:
    """Body of a forked pool child; returns its exit status (the caller _exits). The
    `process_stop` hooks run once `process_start` did, whatever way the child leaves."""
    started: list[Consumer] = []
    code = _child_main(setup, started)
    if started:
        setup.app.middleware.emit("process_stop", setup.app, started[0], code)
    return code


def _child_main(setup: ChildSetup, started: list[Consumer]) -> int:
    _reset_signals()
    for fd in setup.close_fds:
        try:
            os.close(fd)
        except OSError:
            pass
    _die_with_parent(setup.parent_pid)
    if setup.pidfile is not None:
        setup.pidfile.close_in_child()
    from qmulti.system.notify import forget_socket

    forget_socket()
    hooks = PipeHooks(setup.status_fd, setup.spec.node, setup.index, in_process=True)
    log = logging.getLogger("qmulti")
    app = setup.app
    try:
        if setup.reopen_log:
            logs.setup(setup.spec.node, setup.log_level, setup.logfile)
        faulthandler.register(signal.SIGUSR1, file=logs.log_fd(), all_threads=True,
                              chain=False)
        # A segfault or abort in an extension (a driver, numpy) leaves its Python stack
        # in the log, not only the signal's name in the node's line.
        faulthandler.enable(file=logs.log_fd(), all_threads=True)
        proctitle.set_title(proctitle.child_title(setup.spec.node, setup.index))
        reset = getattr(app, "reset_after_fork", None)
        if callable(reset):
            reset()
    except Exception as exc:
        # Our own log may be what failed: the reason goes to the node, which logs it and,
        # before READY, reports it as the reason the start failed.
        hooks.failed(f"{type(exc).__name__}: {exc}" if not str(exc).startswith("log file")
                     else str(exc))
        return 1
    consumer: Consumer | None = None
    try:
        rt = make_runtime(app, setup.spec, app.broker, app.backend, setup.time_limit,
                          setup.soft_time_limit)
        wake_r, wake_w = os.pipe()
        consumer = Consumer(setup.spec, setup.consumer, rt, hooks, interruptible=True,
                            wake_fd=wake_w)
        threading.Thread(target=_give_back_thread, name="give-back", daemon=True,
                         args=(consumer, wake_r, lambda: _own_broker(app))).start()
        signal.signal(signal.SIGUSR2, consumer.request_stop)
        signal.signal(signal.SIGALRM, _soft_limit)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED)
        app.middleware.emit("process_start", app, consumer)  # worker_process_init
        started.append(consumer)
        if consumer.stop_requested:
            return 0
        hooks.up()  # the node is READY once every child has said so
        reason = consumer.run()
    except WarmStop:
        return 0
    except BrokenPipeError:
        return 1  # the node is gone
    except BrokerError as exc:  # gave up storing an outcome (see retry.GaveUp): one line
        log.error("Pool child %d (%s) leaves: %s", setup.index, setup.consumer, exc)
        return 1
    except Exception:
        log.exception("Pool child %d (%s) crashed", setup.index, setup.consumer)
        return 1
    if reason != "stop":
        log.info("Pool child %d leaves after %d task(s): %s", setup.index, consumer.done,
                 reason)
    return 0


def _own_broker(app: Any) -> Broker:
    from qmulti.brokers import create_broker, store_options

    return create_broker(app.conf.broker_url, **store_options(app.conf))


# Signals the node main process handles; blocked around fork and reset in a child.
_HANDLED = frozenset({
    signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGTTIN,
    signal.SIGTTOU, signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD, signal.SIGALRM,
})


def handled_signals() -> frozenset[signal.Signals]:
    return _HANDLED


def _reset_signals() -> None:
    try:
        signal.set_wakeup_fd(-1)
    except ValueError:
        pass
    for sig in _HANDLED:
        signal.signal(sig, signal.SIG_DFL)
    # TERM/INT to the whole process group must be a warm stop of the node, not a
    # massacre; QUIT/HUP/TTIN/TTOU are the main process's business too.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP,
                signal.SIGTTIN, signal.SIGTTOU):
        signal.signal(sig, signal.SIG_IGN)


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to KILL us when the node dies, even by SIGKILL; then check that it has
    not died already (the prctl would come too late for that)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the status pipe's EPIPE still ends us at the next task
    if os.getppid() != parent_pid:
        os._exit(1)
