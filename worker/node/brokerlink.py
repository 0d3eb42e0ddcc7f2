"""The node main process's side of the broker: connect, heartbeat, reap, tidy.

Only the main process heartbeats. Its reply says whether the broker judged this node dead
(it stalled or was cut off), and after an outage no node reaps others until every node
had one full expiry to heartbeat again (the outage rule of CONTRACT section 2).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from qmulti.exceptions import BrokerConnectionError
from qmulti.node.states import RUNNING
from qmulti.system.backoff import Backoff

log = logging.getLogger("qmulti")

MAX_BACKOFF = 30.0
TIDY_INTERVAL = 5.0  # an idle node tidies the store (SQLite: truncates the WAL) this often


class BrokerLink:
    """Mixin of `Node`: every broker call the main loop makes for itself."""

    app: Any
    opts: Any
    pool: Any
    state: str
    node_id: str
    notifier: Any
    liveness: Any
    scaler: Any
    desired: int
    next_beat: float
    next_tidy: float
    beat_failures: int
    reap_after: float
    reaps_seen: int
    pending_release: list[str]
    events: Any

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
            if self.events is not None:
                self.events.heartbeat(self._info())
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
