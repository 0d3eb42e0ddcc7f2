"""Pool children as the node main process sees them: spawn, warm-stop, kill, reap.

Two kinds behind one small interface so that the main loop is the same for both:
`PreforkPool` forks processes (the default); `ThreadPool` runs consumers as threads of
the main process (`-P threads`, and `-P solo` with one thread). Either way each worker
reports on its own status pipe, whose read end the main loop selects on.
"""

from __future__ import annotations

import base64
import errno
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from qmulti.exceptions import BrokerError
from qmulti.node import child as child_mod
from qmulti.node import logs
from qmulti.node.execute import Running

log = logging.getLogger("qmulti")


@dataclass
class Worker:
    """One pool slot's current occupant (a process or a thread)."""

    index: int
    generation: int
    consumer: str
    rfd: int
    pid: int | None = None
    thread: threading.Thread | None = None
    handle: Any = None  # the thread's Consumer
    buffer: bytes = b""
    running: Running | None = None
    began: float = 0.0  # monotonic time the running task began
    spawned: float = 0.0  # monotonic time the worker was started
    finished: int = 0
    stopping: bool = False  # asked to stop warmly (not replaced)
    retiring: bool = False  # TTOU: not replaced
    timed_out: Running | None = None  # killed for its hard time limit while running this
    revoked: Running | None = None  # signalled for revoke(terminate=True) while running this
    eof: bool = False
    up: bool = False  # said it is set up and about to claim
    failure: str = ""  # why it could not start, as it said
    # What it claimed, mid -> (queue, body), where the broker cannot say (see pipehooks).
    reserved: dict[str, tuple[str, bytes | None]] = field(default_factory=dict)
    running_body: bytes | None = None

    @property
    def label(self) -> str:
        who = f"pid {self.pid}" if self.pid else "thread"
        return f"pool child {self.index} ({who}, {self.consumer})"

    def feed(self, data: bytes) -> None:
        """Apply status lines; a partial line waits in the buffer for the rest."""
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace")
            if line.startswith("B "):
                parts = line.split(" ", 6)
                if len(parts) == 7:
                    _, mid, queue, token, task_id, limit, name = parts
                    self.running = Running(mid, queue, task_id, name,
                                           None if limit == "-" else float(limit), None,
                                           token="" if token == "-" else token)
                    self.began = time.monotonic()
                    self.running_body = self.reserved.pop(mid, ("", None))[1]
            elif line == "P" or line.startswith("P "):
                self.reserved = _reserved(line.split(" ")[1:])
            elif line == "U":
                self.up = True
            elif line.startswith("X "):
                self.failure = line[2:]
            elif line == "E":
                self.running = None
                self.running_body = None
                self.finished += 1


def _reserved(fields: list[str]) -> dict[str, tuple[str, bytes | None]]:
    out: dict[str, tuple[str, bytes | None]] = {}
    for i in range(0, len(fields) - 2, 3):
        mid, queue, body = fields[i: i + 3]
        try:
            out[mid] = (queue, None if body == "-" else base64.b64decode(body))
        except ValueError:
            out[mid] = (queue, None)
    return out


@dataclass
class Death:
    worker: Worker
    description: str
    clean: bool  # exited 0


class PreforkPool:
    kind = "prefork"

    def __init__(self, make_setup: Callable[[Worker, int], child_mod.ChildSetup]) -> None:
        self._make_setup = make_setup
        self.workers: dict[int, Worker] = {}  # by pid

    def spawn(self, index: int, generation: int, close_fds: list[int]) -> Worker:
        rfd, wfd = os.pipe()
        worker = Worker(index, generation, f"c{index}.{generation}", rfd,
                        spawned=time.monotonic())
        setup = self._make_setup(worker, wfd)
        setup.close_fds = [*close_fds, rfd, *(w.rfd for w in self.workers.values())]
        parent = os.getpid()
        setup.parent_pid = parent
        # Blocked across fork: a signal landing in the child before it resets its
        # handlers would run the main process's handler there. The log-reopen signal
        # too: held until the child's handler is in place, so no reopen is missed.
        reopen = logs.CHILD_REOPEN_SIGNAL
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {*child_mod.handled_signals(), reopen})
        try:
            with logs.quiet_for_fork():
                pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child
                code = 1
                try:
                    signal.signal(reopen, logs.reopen_on_signal)
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, {reopen})
                    code = child_mod.child_main(setup)
                finally:
                    os._exit(code)
        finally:
            if os.getpid() == parent:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
        os.close(wfd)
        os.set_blocking(rfd, False)
        worker.pid = pid
        self.workers[pid] = worker
        return worker

    def all(self) -> list[Worker]:
        return list(self.workers.values())

    def stop(self, worker: Worker) -> None:
        worker.stopping = True
        self._signal(worker, signal.SIGUSR2)

    def kill(self, worker: Worker) -> None:
        self._signal(worker, signal.SIGKILL)

    def signal(self, worker: Worker, sig: int) -> None:
        self._signal(worker, sig)

    def forward(self, sig: int) -> None:
        for worker in self.all():
            self._signal(worker, sig)

    def _signal(self, worker: Worker, sig: int) -> None:
        if worker.pid:
            try:
                os.kill(worker.pid, sig)
            except ProcessLookupError:
                pass

    def reap(self) -> list[Death]:
        deaths: list[Death] = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            except OSError as exc:  # pragma: no cover
                if exc.errno == errno.EINTR:
                    continue
                raise
            if pid == 0:
                break
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue  # not ours (a task's own subprocess reparented? no: ignore)
            deaths.append(Death(worker, describe_status(status),
                                os.waitstatus_to_exitcode(status) == 0))
        return deaths


class ThreadPool:
    """Consumers as threads of the main process, each with its own broker connection
    (one shared store for `memory://`, which is thread-safe and lives in this process)."""

    kind = "threads"

    def __init__(self, app: Any, spec: child_mod.ConsumerSpec, time_limit: float | None,
                 soft_time_limit: float | None) -> None:
        self.app = app
        self.spec = spec
        self.time_limit = time_limit
        self.soft_time_limit = soft_time_limit
        self.workers: dict[int, Worker] = {}  # by index

    def spawn(self, index: int, generation: int, close_fds: list[int]) -> Worker:
        rfd, wfd = os.pipe()
        os.set_blocking(rfd, False)
        worker = Worker(index, generation, f"c{index}.{generation}", rfd,
                        spawned=time.monotonic())
        worker.handle, worker.thread = self._start(worker, wfd)
        worker.up = True  # a thread shares our set-up: nothing of its own to fail
        self.workers[index] = worker
        return worker

    def _start(self, w: Worker, wfd: int) -> tuple[child_mod.Consumer, threading.Thread]:
        from qmulti.brokers import connect

        app = self.app
        if app.broker.url.startswith("memory:"):
            broker, backend = app.broker, app.backend  # one store per process
        else:
            broker, backend = connect(app.conf, app.broker.url)  # one per thread
        rt = child_mod.make_runtime(app, self.spec, broker, backend, self.time_limit,
                                    self.soft_time_limit)
        hooks = child_mod.PipeHooks(wfd, self.spec.node, w.index, in_process=False)
        consumer = child_mod.Consumer(self.spec, w.consumer, rt, hooks, interruptible=False)

        def body() -> None:
            # Per consumer thread, so a hook can open a thread-bound resource (sqlite3).
            app.middleware.emit("process_start", app, consumer)
            try:
                consumer.run()
            except BrokerError as exc:  # gave up storing an outcome (retry.GaveUp): one line
                consumer.exit_code = 1
                log.error("Pool thread %d (%s) leaves: %s", w.index, w.consumer, exc)
            except Exception:
                consumer.exit_code = 1
                log.exception("Pool thread %d (%s) crashed", w.index, w.consumer)
            finally:
                app.middleware.emit("process_stop", app, consumer, consumer.exit_code)
                os.close(wfd)
                if broker is not app.broker:
                    broker.close()

        thread = threading.Thread(target=body, name=f"consumer-{w.index}", daemon=True)
        thread.start()
        return consumer, thread

    def all(self) -> list[Worker]:
        return list(self.workers.values())

    def stop(self, worker: Worker) -> None:
        worker.stopping = True
        if worker.handle is not None:
            worker.handle.request_stop()
            try:
                worker.handle.give_back_pending(self.app.broker)
            except Exception as exc:  # the thread gives them back itself after its task
                log.warning("Could not give back prefetched messages of %s early: %s",
                            worker.consumer, exc)

    def kill(self, worker: Worker) -> None:
        # A thread cannot be killed; a cold stop leaves it and releases its leases,
        # and the process exits under it.
        self.stop(worker)

    def signal(self, worker: Worker, sig: int) -> None:
        pass  # a thread cannot be signalled

    def forward(self, sig: int) -> None:
        pass

    def reap(self) -> list[Death]:
        deaths = []
        for index, worker in list(self.workers.items()):
            if worker.thread is not None and not worker.thread.is_alive():
                worker.thread.join()
                del self.workers[index]
                code = getattr(worker.handle, "exit_code", 0)
                deaths.append(Death(worker, f"exited with code {code}", code == 0))
        return deaths


def describe_status(status: int) -> str:
    """One readable phrase for a wait status."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"killed by {name}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"
