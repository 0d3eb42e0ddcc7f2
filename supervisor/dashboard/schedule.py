"""Scheduled (eta/countdown) messages and periodic entries, as the dashboard lists them.

Periodic entries come from the app's `beat_schedule` and the broker's record of the
last tick sent for each (shared by every scheduler), so the next run time shown is
the one the schedulers will use, whichever runs it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

log = logging.getLogger("qmulti.dashboard")


def scheduled_rows(entries: Sequence[Any]) -> list[dict[str, Any]]:
    rows = []
    for e in entries:
        name = task_id = None
        try:
            doc = json.loads(e.body)
            name, task_id = doc.get("task"), doc.get("id")
        except (ValueError, AttributeError):
            pass
        rows.append({"mid": e.mid, "queue": e.queue, "eta": e.eta, "task": name,
                     "id": task_id})
    return rows


def periodic_rows(app: Any, broker: Any, records: Sequence[Any],
                  now: float) -> list[dict[str, Any]]:
    """Each entry with its schedule and next due time; [] when the app has none."""
    if not (app.conf.beat_schedule or {}):
        return []
    try:
        from qmulti.node.beat import Beat

        beat = Beat(app, "dashboard", broker)
        state = broker.beat_state()
        clock = broker.clock()
    except Exception as exc:  # a bad schedule is beat's to report; show none here
        log.debug("periodic entries unreadable: %s", exc)
        return []
    rows = []
    for entry in beat.entries.values():
        last = state.get(entry.name)
        rows.append({"name": entry.name, "task": entry.task, "schedule": repr(entry.schedule),
                     "last": last, "next": beat._next_due(entry, last, clock)})
    schedulers = [r.info.get("name") for r in records if r.info.get("kind") == "beat"]
    for row in rows:
        row["schedulers"] = len(schedulers)
    return sorted(rows, key=lambda r: r["next"])
