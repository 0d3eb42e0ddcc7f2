"""Reading back the scheduler's "sent" lines, for the beat drills and the bench.

`qmulti.node.beat` logs each tick it sends at INFO as `beat NAME: sent ENTRY (TASK) due
ISO, task id ID`, under the `[asctime: LEVEL/who]` prefix that `qworker` and `qmulti
beat` both write. That line is the only record of which scheduler sent which tick, so
the tests that count ticks and the bench that times them parse it here, in one place,
next to the code that writes it: a change of the format breaks both loudly, not one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

SENT = re.compile(r"^\[(?P<at>[\d-]+ [\d:,]+): INFO/[^\]]+\] beat (?P<beat>\S+): sent "
                  r"(?P<entry>\S+) \((?P<task>[^)\s]+)\) due (?P<due>\S+), "
                  r"task id (?P<id>\S+)$")


@dataclass(frozen=True)
class Sent:
    """One tick as logged: `due` from the message (UTC), `at` the line's own time,
    both as POSIX seconds (`at` to the millisecond, the log's resolution)."""

    beat: str
    entry: str
    task: str
    due: float
    at: float
    task_id: str


def parse(line: str) -> Sent | None:
    """The tick a log line records, or None for any other line. The prefix's time is
    local (logging's asctime), the due time carries its UTC offset."""
    m = SENT.match(line)
    if m is None:
        return None
    at = datetime.strptime(m["at"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    due = datetime.fromisoformat(m["due"]).timestamp()
    return Sent(m["beat"], m["entry"], m["task"], due, at, m["id"])


def read(logs: Iterable[Path]) -> list[Sent]:
    """Every tick the given log files record as sent, in file then line order."""
    found = []
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            sent = parse(line)
            if sent is not None:
                found.append(sent)
    return found
