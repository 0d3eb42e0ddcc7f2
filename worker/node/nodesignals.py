"""Signal handling of the node main process, as gunicorn's arbiter does it.

Handlers only record the signal (the wake-up pipe in qmulti.system.wakeup); the main loop
calls `_handle_signals` between its steps, so changing state, logging and forwarding
signals to children never happen inside a signal handler.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import traceback
from typing import Any

from qmulti.node import logs, proctitle
from qmulti.node.child import handled_signals
from qmulti.node.states import COLD, RUNNING, STOPPING

log = logging.getLogger("qmulti")


class SignalHandlers:
    """Mixin of `Node`: what each signal does to the node's desired state."""

    state: str
    desired: int
    int_count: int
    restart_requested: bool
    opts: Any
    pool: Any
    wakeup: Any
    notifier: Any
    pid: int

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


def _signame(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"SIG{signum}"
