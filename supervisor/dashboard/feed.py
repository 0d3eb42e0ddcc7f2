"""The task feed: a thread of its own that fills the task table from the broker.

Apart from the collector's tick on purpose: paging through 100,000 stored results
takes far longer than reading node records and queue counts, and a slow read must
never hold back the pages' updates. It also keeps to a fixed broker budget,
KEYS_PER_SECOND result keys looked at, however many results are stored: the pass
over results is a SCAN, whose cost is the keys it walks, so after each step the feed
rests for as long as that budget says (a store of 200 results is walked whole twice a
second; one of 100,000 takes minutes a pass, at a broker cost that stays well under
1 % of three draining nodes'). Only results not yet seen final are fetched, and a
finished pass starts again no sooner than one collector interval after the last one.
With the `-E` event stream it reads events too (every state change, with runtimes,
each read once), and then the results pass only fills in what events did not say.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from qmulti.supervisor.dashboard.events import EventSource
from qmulti.supervisor.dashboard.tasks import TaskTable

log = logging.getLogger("qmulti.dashboard")

STEP = 250  # result keys per SCAN
KEYS_PER_SECOND = 500.0  # measured: ~4 us of redis CPU per key walked, ~1 us per MGET
EVENT_STEPS_PER_SECOND = 5.0


class TaskFeed:
    def __init__(self, app: Any, tasks: TaskTable, interval: float) -> None:
        self.app = app
        self.tasks = tasks
        self.interval = interval
        self.events = EventSource()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pair: tuple[Any, Any] | None = None
        self._cursor = ""
        self._pass_began = 0.0
        self._next_page = 0.0  # no results page before this (monotonic): KEYS_PER_SECOND
        self.error: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dashboard-tasks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._close()

    def _close(self) -> None:
        pair, self._pair = self._pair, None
        if pair is not None:
            try:
                pair[0].close()
            except Exception:  # a dead connection: nothing left to release
                pass

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            pause = self.step()
            self._stop.wait(max(pause, 1.0 / EVENT_STEPS_PER_SECOND
                                - (time.monotonic() - began)))

    def step(self) -> float:
        """One step; returns how long to rest before the next."""
        try:
            if self._pair is None:
                from qmulti.brokers import connect

                self._pair = connect(self.app.conf)
            broker, backend = self._pair
            for event in self.events.read(broker):
                self.tasks.observe_event(event)
            rest = self._results(backend)
            self.error = None
            return rest
        except Exception as exc:  # shown by the collector's own read; retried
            self.error = type(exc).__name__
            log.debug("task feed step failed", exc_info=True)
            self._close()
            return self.interval

    def _results(self, backend: Any) -> float:
        if not hasattr(backend, "result_page"):
            return self.interval
        now = time.monotonic()
        if now < self._next_page:  # the budget: events are still read meanwhile
            return 0.0
        if not self._cursor:  # a new pass
            wait = self._pass_began + self.interval - now
            if wait > 0:
                return wait
            self._pass_began = now
        self._cursor, page = backend.result_page(self._cursor, STEP, self.tasks.final_ids)
        self._next_page = now + STEP / KEYS_PER_SECOND
        for task_id, blob in page:
            try:
                doc = json.loads(blob)
            except ValueError:
                continue
            if isinstance(doc, dict):
                self.tasks.observe_result(task_id, doc)
        return 0.0
