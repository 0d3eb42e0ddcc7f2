"""The periodic-task scheduler: any number may run, and each tick is sent exactly once.

Every scheduler reads the same two things from the broker, its clock and the due time
of each entry's last tick, and computes the same next due time (`qmulti.schedules`).
When it comes, each one asks the broker to `claim_tick(entry, due)`: the claim and
the publish are one atomic step, so the first asker sends the task and the others do
nothing. No local schedule file: a restart neither repeats nor skips a tick, and after
downtime the missed ticks of an entry coalesce into one run (logged with the count).

Used by `qworker -B` (a thread of the node's main process) and `qmulti beat`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from typing import Any

from qmulti.exceptions import BrokerError, ConfigError
from qmulti.protocol import encode_message, new_id
from qmulti.schedules import as_schedule, crontab, schedule, zone

log = logging.getLogger("qmulti.beat")

MAX_SLEEP = 5.0  # seconds: the loop re-reads the broker's state at least this often
MAX_COALESCE = 1_000_000  # due times walked when catching up, at most
OFFSET_WINDOW = 10.0  # seconds of clock readings the offset bound is taken over
BEAT_EVERY = 2.0  # seconds between a scheduler's heartbeats (what `qmulti status` shows)


@dataclass(frozen=True)
class Entry:
    """One `beat_schedule` entry."""

    name: str
    task: str
    schedule: schedule | crontab
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def first_due(self, now: float, tz: tzinfo) -> float:
        """The due time of an entry never sent: an interval's current tick (it runs now,
        as a new Celery entry does), a crontab's next one."""
        if isinstance(self.schedule, schedule):
            return self.schedule.last_at_or_before(now)
        return self.schedule.next_after(now, tz)


def entries_of(app: Any) -> dict[str, Entry]:
    """The app's `beat_schedule`, checked: a bad entry is a ConfigError at start."""
    found: dict[str, Entry] = {}
    table: Mapping[str, Any] = app.conf.beat_schedule or {}
    for name, spec in table.items():
        if not isinstance(spec, Mapping) or not spec.get("task"):
            raise ConfigError(f"beat_schedule entry {name!r} needs a 'task' name")
        unknown = set(spec) - {"task", "schedule", "args", "kwargs", "options", "relative"}
        if unknown:
            raise ConfigError(f"beat_schedule entry {name!r}: unknown keys "
                              f"{', '.join(sorted(unknown))}")
        if "schedule" not in spec:
            raise ConfigError(f"beat_schedule entry {name!r} needs a 'schedule'")
        found[str(name)] = Entry(str(name), str(spec["task"]), as_schedule(spec["schedule"]),
                                 tuple(spec.get("args") or ()), dict(spec.get("kwargs") or {}),
                                 dict(spec.get("options") or {}))
    return found


class Beat:
    """One scheduler for one app. `run()` until `stop()`; `tick()` is one pass."""

    def __init__(self, app: Any, name: str = "beat", broker: Any = None,
                 busy: Any = None) -> None:
        self.app = app
        # Held while the scheduler works (never while it sleeps): a node forks its pool
        # children only under it, so no child inherits a lock this thread held mid-call.
        self.busy = busy if busy is not None else threading.Lock()
        self.broker = broker if broker is not None else app.broker
        self.name = name
        self.entries = entries_of(app)
        self.tz = zone(app.conf.timezone, app.conf.enable_utc)
        self._stop = threading.Event()
        self.sent = 0
        self.node_id = f"beat:{name}"  # its record beside the nodes', for `qmulti status`
        self._next_beat = 0.0
        self._next: tuple[str, float] | None = None  # (entry, due) of the next tick
        self._first: dict[str, float] = {}  # first due time of entries the broker never sent
        self._due_now: list[tuple[Entry, float]] = []  # claimed on waking (see `_fire`)
        self._samples: list[tuple[float, float]] = []  # (monotonic, offset) of `_clock`
        self._offset = 0.0  # broker time - time.monotonic(), a lower bound

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> None:
        broker = self.broker
        with self.busy:  # everything but the waits: a node never forks mid-call
            known = broker.beat_state()
            gone = [name for name in known if name not in self.entries]
            if gone:  # removed from the config: they stop, and their state goes
                broker.beat_forget(gone)
            log.info("beat %s: %d entr%s in zone %s", self.name, len(self.entries),
                     "y" if len(self.entries) == 1 else "ies", self.tz)
        failures = 0
        while not self._stop.is_set():
            try:
                with self.busy:
                    if self._due_now:  # woken for them: claim first, look around after
                        self._fire()
                    wait = self.tick()
                    if failures:
                        log.warning("beat %s: broker reachable again", self.name)
                failures = 0
            except BrokerError as exc:
                self._due_now = []
                failures += 1
                if failures == 1:
                    with self.busy:
                        log.error("beat %s: broker error (%s); retrying", self.name, exc)
                wait = min(0.5 * 2 ** failures, MAX_SLEEP)
            self._stop.wait(wait)
        with self.busy:
            try:
                self.broker.unregister(self.node_id)
            except BrokerError:
                pass  # its record expires with the heartbeat expiry

    def stop(self) -> None:
        self._stop.set()

    def tick(self) -> float:
        """Send what is due; returns the seconds to sleep until the next due time
        (capped), for which `_due_now` then holds the entries to claim on waking."""
        now = self._clock()
        state = self.broker.beat_state()
        soonest = now + MAX_SLEEP
        upcoming: tuple[str, float] | None = None
        nexts: list[tuple[Entry, float]] = []
        for entry in self.entries.values():
            due = self._next_due(entry, state.get(entry.name), now)
            if due <= now:
                due, skipped = self._coalesce(entry, due, now)
                self._send(entry, due, skipped)
                due = entry.schedule.next_after(due, self.tz)
            nexts.append((entry, due))
            soonest = min(soonest, due)
            if upcoming is None or due < upcoming[1]:
                upcoming = (entry.name, due)
        self._heartbeat(upcoming)
        self._due_now = [(entry, due) for entry, due in nexts if due == soonest]
        return max(0.0, soonest - self._offset - time.monotonic())

    def _fire(self) -> None:
        """Claim the ticks the last `tick()` slept for: one broker call each, nothing
        read first, so a loaded host adds one round trip to a tick's lateness, not
        three. The wait ended no earlier than the broker's clock reaching their due
        time (see `_clock`), so none is sent early."""
        due_now, self._due_now = self._due_now, []
        for entry, due in due_now:
            self._send(entry, due, 0)

    def _clock(self) -> float:
        """The broker's time, and a lower bound of (broker time - our monotonic time).

        The broker read its clock somewhere inside the call, so `broker - after` can
        only understate the offset: waking at `due - offset` is never early, and late
        by at most the call's round trip. The tightest bound of the last few seconds
        is kept; a reading the bound contradicts means the broker's clock went back,
        and the older ones are dropped."""
        before = time.monotonic()
        broker_now = self.broker.clock()
        after = time.monotonic()
        offset = broker_now - after
        if self._samples and offset + (after - before) < self._offset - 0.001:
            self._samples.clear()  # the broker's clock stepped back
        self._samples = [(at, off) for at, off in self._samples if at > after - OFFSET_WINDOW]
        self._samples.append((after, offset))
        self._offset = max(off for _, off in self._samples)
        return broker_now

    def _heartbeat(self, upcoming: tuple[str, float] | None) -> None:
        """A record in the broker's node registry marked as a scheduler, so `qmulti
        status` can list the schedulers alive and the next tick. It holds no leases."""
        if time.monotonic() < self._next_beat and upcoming == self._next:
            return
        self._next_beat, self._next = time.monotonic() + BEAT_EVERY, upcoming
        info: dict[str, Any] = {"kind": "beat", "name": self.name,
                                "entries": len(self.entries)}
        if upcoming is not None:
            info["next_entry"], info["next_due"] = upcoming
        self.broker.heartbeat(self.node_id, info)

    def _next_due(self, entry: Entry, last: float | None, now: float) -> float:
        """The entry's next due time after the last tick the broker stored for it."""
        if last is None:
            # Fixed when first seen: recomputed from each tick's `now`, a crontab's first
            # due time would move on with the clock and never come (the loop wakes just
            # after it, when the next one is already a minute away).
            return self._first.setdefault(entry.name, entry.first_due(now, self.tz))
        return entry.schedule.next_after(last, self.tz)

    def _coalesce(self, entry: Entry, due: float, now: float) -> tuple[float, int]:
        """The latest due time not after `now`, and how many earlier ones it replaces."""
        skipped = 0
        for _ in range(MAX_COALESCE):
            following = entry.schedule.next_after(due, self.tz)
            if following > now:
                break
            due, skipped = following, skipped + 1
        return due, skipped

    def _send(self, entry: Entry, due: float, skipped: int) -> None:
        queue, mid, task_id, body = self._message(entry)
        if not self.broker.claim_tick(entry.name, due, queue, mid, body):
            return  # another scheduler sent this tick
        self.sent += 1
        when = datetime.fromtimestamp(due, timezone.utc).isoformat(timespec="milliseconds")
        if skipped:
            log.warning("beat %s: %s missed %d tick(s) while no scheduler ran; sending one "
                        "catch-up run", self.name, entry.name, skipped)
        log.info("beat %s: sent %s (%s) due %s, task id %s", self.name, entry.name,
                 entry.task, when, task_id)

    def _message(self, entry: Entry) -> tuple[str, str, str, bytes]:
        """The task message, built as `send_task` builds one (routing, serializer,
        expiry), but not published: the broker publishes it with the claim."""
        app = self.app
        options = dict(entry.options)
        task = app.tasks.get(entry.task)
        queue = options.pop("queue", None) or app._route(entry.task, entry.args,
                                                         entry.kwargs, task)
        expires = options.pop("expires", None)
        expires_at = None if expires is None else app._expires(expires)
        ct = app._content_type(options.pop("serializer", None), task)
        limits = {k: options.pop(k) for k in ("time_limit", "soft_time_limit") if k in options}
        mid = task_id = new_id()
        body = encode_message(mid, task_id, entry.task, entry.args, entry.kwargs, queue,
                              None, expires_at, 0, ct, app._envelope_options(limits))
        return queue, mid, task_id, body

    # -- listing -------------------------------------------------------------------------
    def listing(self) -> list[str]:
        """`qmulti beat --list`: each entry with its next due time, local and UTC."""
        broker = self.broker
        now, state = broker.clock(), broker.beat_state()
        lines = []
        for entry in self.entries.values():
            due = self._next_due(entry, state.get(entry.name), now)
            local = datetime.fromtimestamp(due, self.tz).isoformat(timespec="seconds")
            utc = datetime.fromtimestamp(due, timezone.utc).isoformat(timespec="seconds")
            lines.append(f"{entry.name}: {entry.task} {entry.schedule!r} next {local} "
                         f"({utc})")
        return lines


class Embedded:
    """`qworker -B`: a scheduler thread in the node's main process, on a connection of
    its own (a store connection serves one thread). Any number of nodes may run one."""

    def __init__(self, app: Any, node_name: str) -> None:
        from qmulti.brokers import create_broker, store_options

        self._broker = create_broker(app.conf.broker_url, **store_options(app.conf))
        self.fork_guard = threading.Lock()  # the node forks only while holding it
        self.beat = Beat(app, f"{node_name}-beat", self._broker, self.fork_guard)
        self._thread = threading.Thread(target=self._run, name="beat", daemon=True)

    def _run(self) -> None:
        try:
            self.beat.run()
        except Exception:  # the node keeps serving; the schedule is the other nodes' job
            log.exception("beat %s crashed; this node schedules nothing more",
                          self.beat.name)

    def start(self) -> Embedded:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.beat.stop()
        self._thread.join(10)
        self._broker.close()
