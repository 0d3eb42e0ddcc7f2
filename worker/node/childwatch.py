"""What the node main process does about its pool children between loop steps.

A dead child is buried (its leases released at once, a time-limit or terminate result
stored for it, a crash at start backed off); a child past its hard time limit, or running
a task revoked with terminate, is signalled. All of it runs in the main loop, never in a
signal handler and never in the child.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from qmulti.node import logs, revoke
from qmulti.node.execute import store_time_limit
from qmulti.node.pool import Death
from qmulti.node.states import COLD, RUNNING
from qmulti.node.taskinfo import result_ttl

log = logging.getLogger("qmulti")

RESPAWN_BACKOFF_MAX = 10.0


class ChildWatch:
    """Mixin of `Node`: burying, time limits and terminate for pool children."""

    app: Any
    opts: Any
    pool: Any
    state: str
    node_id: str
    finished_dead: int
    ready_sent: bool
    pending_release: list[str]
    respawn_at: dict[int, float]
    respawn_delay: dict[int, float]
    next_revoke_check: float
    events: Any

    def _start_failed(self, w: Any, reason: str) -> None:  # pragma: no cover - Node's
        raise NotImplementedError

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
            self._start_failed(w, w.failure or death.description + self._child_log_hint(w))
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

    def _child_log_hint(self, w: Any) -> str:
        """Where a child that died without a word may have left one (its stack, after a
        fatal signal): its own `%I` log file, which `qmulti start` does not show."""
        path = logs.child_logfile(self.opts.logfile, self.opts.name, w.index)
        return "" if path is None else f" (its log: {path})"

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
        if self.events is not None:
            self.events.time_limit(running)
        try:
            store_time_limit(self.app.broker, self.app.backend, running, self.opts.name,
                             result_ttl(self.app.conf))
        except Exception as err:
            log.error("Could not store the time-limit failure of %s: %s", running.task_id, err)

    def _store_terminated(self, running: Any) -> None:
        if self.events is not None:
            self.events.terminated(running)
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
