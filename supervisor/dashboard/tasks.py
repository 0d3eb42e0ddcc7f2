"""The dashboard's memory of tasks: recent rows, counts by (name, state), runtimes.

Fed from two sources, whichever the deployment has: task events (`-E`) when the
broker carries them, and the stored results, read a page at a time. A task is
counted once per final state however often either source reports it, so the
counters (and Prometheus's, which are these) only ever rise. Memory is bounded:
past `cap` rows the oldest-updated are forgotten (a forgotten task that shows up
again would be counted again; the cap is far above what a page can show).
"""

from __future__ import annotations

import bisect
import json
import threading
import time
from collections import Counter, OrderedDict, deque
from dataclasses import asdict, dataclass, field
from typing import Any

from qmulti.events.state import TASK_STATES

FINAL = frozenset({"SUCCESS", "FAILURE", "REVOKED"})
STATES = ("PENDING", "RECEIVED", "STARTED", "RETRY", "SUCCESS", "FAILURE", "REVOKED")
# Prometheus-style upper bounds, seconds; +Inf is implied.
RUNTIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                   60.0, 300.0)
RECENT_WINDOW = 60.0  # p50/p95 are over the runtimes of the last minute


@dataclass
class TaskRow:
    id: str
    name: str | None = None
    state: str = "PENDING"
    node: str | None = None
    queue: str | None = None
    updated: float = 0.0  # unix time of the latest news (date_done, event timestamp)
    started: float | None = None
    runtime: float | None = None
    retries: int = 0
    parent_id: str | None = None
    root_id: str | None = None
    args: str | None = None  # a short repr, for the list
    exception: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RuntimeHistogram:
    buckets: list[int] = field(default_factory=lambda: [0] * (len(RUNTIME_BUCKETS) + 1))
    total: float = 0.0
    count: int = 0

    def observe(self, seconds: float) -> None:
        self.buckets[bisect.bisect_left(RUNTIME_BUCKETS, seconds)] += 1
        self.total += seconds
        self.count += 1


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, default=repr)
    return text if len(text) <= limit else text[:limit - 1] + "…"


class TaskTable:
    """Thread-safe: the collector writes, request threads read."""

    def __init__(self, cap: int = 200_000) -> None:
        self.cap = cap
        self._lock = threading.Lock()
        self._rows: OrderedDict[str, TaskRow] = OrderedDict()
        self.counts: Counter[tuple[str, str]] = Counter()  # (name, final state) -> tasks
        self.by_node: Counter[tuple[str, str]] = Counter()  # (node name, final state)
        self.histograms: dict[str, RuntimeHistogram] = {}
        self._recent: deque[tuple[float, float]] = deque()  # (when, runtime)
        self.final_ids: set[str] = set()
        # rows not final yet, by state: kept as rows change, so that totals() (every
        # tick) costs the same with 200,000 rows as with 10
        self._live: Counter[str] = Counter()

    # -- writing ---------------------------------------------------------------------------
    def observe_result(self, task_id: str, doc: dict[str, Any]) -> None:
        """A stored result document (see qmulti.protocol.encode_result)."""
        state = doc.get("status") or "PENDING"
        when = doc.get("date_done") if isinstance(doc.get("date_done"), (int, float)) else None
        with self._lock:
            row = self._row(task_id)
            if row.state in FINAL:
                return
            row.name = doc.get("name") or row.name
            row.node = doc.get("worker") or doc.get("node") or row.node
            row.queue = doc.get("queue") or row.queue
            row.retries = int(doc.get("retries") or 0)
            row.parent_id = doc.get("parent_id") or row.parent_id
            row.root_id = doc.get("root_id") or row.root_id
            if "args" in doc:
                row.args = _short([doc.get("args"), doc.get("kwargs")])
            if state == "STARTED" and when is not None:
                row.started = when
            if state == "FAILURE" and isinstance(doc.get("result"), dict):
                exc = doc["result"]
                row.exception = f"{exc.get('exc_type')}: {_short(exc.get('exc_message'), 200)}"
            runtime = None
            if state in FINAL and row.started is not None and when is not None:
                runtime = max(0.0, when - row.started)
            self._advance(row, state, when or time.time(), runtime)

    def observe_event(self, event: dict[str, Any]) -> None:
        """A Celery-shaped task event (`task-received`, `task-succeeded`, ...)."""
        kind = str(event.get("type", ""))
        task_id = event.get("uuid")
        if not kind.startswith("task-") or not isinstance(task_id, str):
            return
        state = TASK_STATES.get(kind)
        if state is None:
            return
        if state == "REJECTED":  # counted with the failures: it did not run, for good
            state = "FAILURE"
        when = float(event.get("timestamp") or time.time())
        with self._lock:
            row = self._row(task_id)
            if row.state in FINAL:
                return
            row.name = event.get("name") or row.name
            row.node = event.get("hostname") or row.node
            row.queue = event.get("queue") or row.queue
            row.parent_id = event.get("parent_id") or row.parent_id
            row.root_id = event.get("root_id") or row.root_id
            if event.get("args") is not None:
                row.args = _short([event.get("args"), event.get("kwargs")])
            if event.get("retries") is not None:
                row.retries = int(event["retries"])
            if state == "STARTED":
                row.started = when
            if state == "FAILURE" and event.get("exception"):
                row.exception = str(event["exception"])[:300]
            runtime = event.get("runtime")
            self._advance(row, state, when,
                          float(runtime) if isinstance(runtime, (int, float)) else None)

    def _row(self, task_id: str) -> TaskRow:
        row = self._rows.get(task_id)
        if row is None:
            row = self._rows[task_id] = TaskRow(task_id)
            self._live[row.state] += 1
            while len(self._rows) > self.cap:
                old, gone = self._rows.popitem(last=False)
                self.final_ids.discard(old)
                if gone.state not in FINAL:
                    self._live[gone.state] -= 1
        return row

    def _advance(self, row: TaskRow, state: str, when: float, runtime: float | None) -> None:
        if row.state not in FINAL:
            self._live[row.state] -= 1
        if state not in FINAL:
            self._live[state] += 1
        row.state, row.updated = state, max(row.updated, when)
        self._rows.move_to_end(row.id)
        if state not in FINAL:
            return
        self.final_ids.add(row.id)
        name = row.name or "unknown"
        self.counts[(name, state)] += 1
        if row.node:
            self.by_node[(row.node, state)] += 1
        if runtime is not None and state == "SUCCESS":
            row.runtime = runtime
            self.histograms.setdefault(name, RuntimeHistogram()).observe(runtime)
            self._recent.append((time.time(), runtime))

    # -- reading ---------------------------------------------------------------------------
    def totals(self) -> dict[str, int]:
        with self._lock:
            out = {s: 0 for s in STATES}
            for (_, state), n in self.counts.items():
                out[state] += n
            for state, n in self._live.items():
                out[state] = out.get(state, 0) + n
            return out

    def node_failures(self) -> dict[str, int]:
        with self._lock:
            return {n: c for (n, s), c in self.by_node.items() if s == "FAILURE"}

    def runtime_percentiles(self, now: float | None = None) -> tuple[float | None, float | None]:
        now = time.time() if now is None else now
        with self._lock:
            while self._recent and self._recent[0][0] < now - RECENT_WINDOW:
                self._recent.popleft()
            values = sorted(r for _, r in self._recent)
        if not values:
            return None, None
        return (values[int(0.5 * (len(values) - 1))], values[int(0.95 * (len(values) - 1))])

    def search(self, text: str = "", state: str = "", limit: int = 100) -> list[dict[str, Any]]:
        """Newest first; `text` matches id or name (substring, any case)."""
        text, state = text.strip().lower(), state.strip().upper()
        out: list[dict[str, Any]] = []
        with self._lock:
            for row in reversed(self._rows.values()):
                if state and row.state != state:
                    continue
                if text and text not in row.id.lower() and text not in (row.name or "").lower():
                    continue
                out.append(row.as_dict())
                if len(out) >= limit:
                    break
        return out

    def get(self, task_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._rows.get(task_id)
            if row is None:
                return None
            doc = row.as_dict()
            doc["children"] = [r.id for r in self._rows.values() if r.parent_id == task_id][:100]
            return doc

    def snapshot_counts(self) -> tuple[dict[tuple[str, str], int], dict[str, RuntimeHistogram]]:
        with self._lock:
            hist = {n: RuntimeHistogram(list(h.buckets), h.total, h.count)
                    for n, h in self.histograms.items()}
            return dict(self.counts), hist
