"""One thread that reads the broker once a tick and keeps what every page shows.

Pages, the JSON API, the event stream and /metrics all read the collector's latest
snapshot; none of them touches the broker. So the broker's load is two pipelined
reads per tick (node records, queue counts; default every 0.5 s) whatever the number
of open browsers, which is what keeps the dashboard's cost within a few percent of a
busy broker's CPU. Reads that change slowly (dead letters, scheduled messages,
periodic entries) run only when their count moved, or every few ticks. Tasks come
from the task feed's thread (see feed.py), which a slow pass over many stored
results cannot make the pages wait for.

The connection is the collector's own (a broker object is not thread-safe). A broker
that is down is a line on every page, not a crash; the URL is only ever shown masked.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from typing import Any

from qmulti.supervisor.dashboard.feed import TaskFeed
from qmulti.supervisor.dashboard.nodes import node_rows, out_rates
from qmulti.supervisor.dashboard.schedule import periodic_rows, scheduled_rows
from qmulti.supervisor.dashboard.tasks import TaskTable
from qmulti.urls import mask_url

log = logging.getLogger("qmulti.dashboard")

HISTORY_SECONDS = 15 * 60
SLOW_EVERY = 5  # ticks between reads of what rarely changes


class Collector:
    def __init__(self, app: Any, interval: float = 0.5) -> None:
        self.app = app
        self.interval = interval
        self.tasks = TaskTable()
        self.feed = TaskFeed(app, self.tasks, interval)  # tasks: results and -E events
        self.history: deque[dict[str, Any]] = deque(maxlen=int(HISTORY_SECONDS / interval))
        self.hostname = socket.gethostname()
        self._cond = threading.Condition()
        self._snapshot: dict[str, Any] = {"version": 0}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._broker: Any = None
        self._ticks = 0
        self._slow: dict[str, Any] = {"dead": [], "scheduled": [], "periodic": []}
        self._last_dead = -1
        self._prev: dict[str, Any] | None = None  # last tick's counters, for rates
        self._heads: dict[str, tuple[str, float]] = {}  # queue -> (head mid, first seen)
        self.url = mask_url(str(app.conf.broker_url or ""))

    # -- life ------------------------------------------------------------------------------
    def start(self) -> None:
        self.feed.start()
        self._thread = threading.Thread(target=self._run, name="dashboard-collector",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.feed.stop()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._broker is not None:
            try:
                self._broker.close()
            except Exception:  # closing a dead connection: nothing left to do
                pass

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            self.tick()
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - began)))

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def mark_dead_stale(self) -> None:
        """An action changed the dead letters: list them again at the next tick."""
        self._last_dead = -1

    # -- reading ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        with self._cond:
            return self._snapshot

    def wait_newer(self, version: int, timeout: float) -> dict[str, Any]:
        """The snapshot once it is newer than `version` (or the current one after
        `timeout`): how the event stream pushes each tick as it happens."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._snapshot["version"] <= version and not self._stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return self._snapshot

    # -- one tick --------------------------------------------------------------------------
    def _connection(self) -> Any:
        if self._broker is None:
            from qmulti.brokers import connect

            self._broker, self._backend = connect(self.app.conf)
        return self._broker

    def tick(self) -> None:
        now, began = time.time(), time.monotonic()
        error = None
        records = details = None
        try:
            broker = self._connection()
            # Two reads instead of stats(), which counts every queue a second time.
            records = broker.node_records()
            details = broker.queue_details()
            self._read_slow(broker, records, sum(d.dead for d in details.values()), now)
        except Exception as exc:  # any store failure: shown, retried next tick
            error = mask_url(str(exc)) or type(exc).__name__
            log.debug("dashboard tick failed", exc_info=True)
            self._drop_connection()
        self._ticks += 1
        snap = self._build(now, records, details, error)
        snap["tick_seconds"] = time.monotonic() - began  # the broker reads and this build
        with self._cond:
            snap["version"] = self._snapshot["version"] + 1
            self._snapshot = snap
            self._cond.notify_all()

    def _drop_connection(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            try:
                broker.close()
            except Exception:
                pass

    def _read_slow(self, broker: Any, records: Any, dead: int, now: float) -> None:
        slow = self._ticks % SLOW_EVERY == 0
        if dead != self._last_dead or slow:
            self._slow["dead"] = [
                {"mid": d.mid, "queue": d.queue, "reason": d.reason, "at": d.at,
                 "body": d.body.decode("utf-8", "replace")[:4000]}
                for d in broker.dead_letter_entries(100)]
            self._last_dead = dead
        if slow:
            self._slow["scheduled"] = scheduled_rows(broker.scheduled_entries(100))
            self._slow["periodic"] = periodic_rows(self.app, broker, records, now)

    def _build(self, now: float, records: Any, details: Any,
               error: str | None) -> dict[str, Any]:
        totals = self.tasks.totals()
        p50, p95 = self.tasks.runtime_percentiles(now)
        snap: dict[str, Any] = {"time": now, "broker": {"url": self.url, "error": error},
                                "totals": totals, "runtime": {"p50": p50, "p95": p95}}
        if records is None or details is None:
            old = self._snapshot
            for key in ("nodes", "queues", "dead", "scheduled", "periodic"):
                snap[key] = old.get(key, [])
            snap["history"] = self.history[-1] if self.history else None
            return snap
        nodes = node_rows(records, now, self.hostname)
        failures = self.tasks.node_failures()
        for row in nodes:
            if row["failed"] is None:  # heartbeats carry no failure count: the tasks' view
                row["failed"] = failures.get(row["name"], 0)
        counters = {"time": now, "succeeded": totals["SUCCESS"], "failed": totals["FAILURE"],
                    "processed": {n["name"]: (n["processed"] or 0, n["queues"])
                                  for n in nodes},
                    "held": {q: d.ready + d.scheduled + d.leased for q, d in details.items()}}
        prev, self._prev = self._prev, counters
        span = (now - prev["time"]) if prev else 0.0
        outs = out_rates(prev, counters, span)
        queues = []
        for name, d in details.items():
            held_before = prev["held"].get(name, 0) if prev else None
            rate_out = outs.get(name, 0.0)
            rate_in = None
            if held_before is not None and span > 0:
                rate_in = max(0.0, rate_out + (counters["held"][name] - held_before) / span)
            queues.append({"name": name, "depth": d.ready, "scheduled": d.scheduled,
                           "leased": d.leased, "dead": d.dead,
                           "in_rate": rate_in, "out_rate": rate_out if prev else None,
                           "oldest_age": self._oldest_age(name, d.head, now)})
        point = {"t": now, "succeeded": _rate(prev, counters, "succeeded", span),
                 "failed": _rate(prev, counters, "failed", span), "p50": p50, "p95": p95,
                 "depth": {q["name"]: q["depth"] for q in queues}}
        if prev:
            self.history.append(point)
        snap.update(nodes=nodes, queues=queues, history=point, **self._slow)
        return snap

    def _oldest_age(self, queue: str, head: str | None, now: float) -> float | None:
        """Seconds since the message now at the head was first seen there: messages carry
        no send time, so this is a lower bound that grows while the queue is stuck."""
        if head is None:
            self._heads.pop(queue, None)
            return None
        seen = self._heads.get(queue)
        if seen is None or seen[0] != head:
            self._heads[queue] = seen = (head, now)
        return now - seen[1]


def _rate(prev: dict[str, Any] | None, cur: dict[str, Any], key: str, span: float) -> float:
    if not prev or span <= 0:
        return 0.0
    return max(0.0, (cur[key] - prev[key]) / span)
