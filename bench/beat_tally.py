"""Counting a beat run's ticks from the schedulers' logs: sent, doubled, missed, late.

Pure functions over parsed log lines, so both contenders are judged by one yardstick.
The two schedulers define "due" differently, and each is held to its own definition:
qmulti's interval ticks sit on a grid of the broker's clock (the due time is in the
"sent" line); Celery's next run is its last run plus the interval (`last_run_at` is
set just before its "Sending due task" line), so its lateness is the gap between two
sends of an entry minus the interval.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from qmulti.node.beatlog import Sent

CELERY_SENT = re.compile(r"^\[(?P<at>[\d-]+ [\d:,]+): INFO/[^\]]+\] Scheduler: Sending due "
                         r"task (?P<entry>\S+) \((?P<task>[^)\s]+)\)$")
EDGE = 0.25  # seconds: a tick due this close to the stop may be cut off by it


@dataclass
class Tally:
    sent: int = 0
    doubled: int = 0
    missed: int = 0
    lateness: list[float] = field(default_factory=list)  # seconds, sorted
    drift: float = 0.0  # seconds the last send of an entry lies past its first one's grid

    def pct_ms(self, q: float) -> float | None:
        """Nearest-rank percentile in ms (q = 1.0 is the maximum)."""
        if not self.lateness:
            return None
        rank = max(1, math.ceil(q * len(self.lateness)))
        return 1000 * self.lateness[rank - 1]


def qmulti_tally(sends: Iterable[Sent], intervals: Mapping[str, float],
                 stopped_at: float) -> Tally:
    """Each entry's grid from its first due time to the stop: every point sent once.

    The first tick of an entry the broker never sent is due when first seen (the
    interval's current tick, sent at once, as a new Celery entry runs), so it is not
    timed."""
    t = Tally()
    sends = list(sends)
    for entry, step in intervals.items():
        mine = [s for s in sends if s.entry == entry]
        if not mine:
            continue
        dues = Counter(s.due for s in mine)
        first = min(dues)
        t.sent += len(mine)
        t.doubled += sum(n - 1 for n in dues.values())
        wanted = {first + k * step for k in range(int((stopped_at - EDGE - first) // step) + 1)}
        t.missed += len(wanted - set(dues))
        t.lateness += [s.at - s.due for s in mine if s.due != first]
    t.lateness.sort()
    return t


def celery_sends(log: Path) -> list[tuple[str, float]]:
    """(entry, sent at) of each "Sending due task" line of one celery beat log."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        m = CELERY_SENT.match(line)
        if m:
            at = datetime.strptime(m["at"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            found.append((m["entry"], at))
    return found


def celery_tally(sends: list[tuple[str, float]], intervals: Mapping[str, float]) -> Tally:
    """One beat's sends: each gap minus the interval is a lateness, a gap of k
    intervals is k - 1 missed ticks. (One beat cannot double a tick.) The lateness
    adds up: `drift` is how far the schedule has slid off the grid of its first send."""
    t = Tally()
    for entry, step in intervals.items():
        times = sorted(at for e, at in sends if e == entry)
        t.sent += len(times)
        steps = 0
        for a, b in zip(times, times[1:], strict=False):
            t.lateness.append(b - a - step)  # negative: sent early by its own clock
            t.missed += max(0, round((b - a) / step) - 1)
            steps += max(1, round((b - a) / step))
        if times:
            t.drift = max(t.drift, times[-1] - times[0] - steps * step)
    t.lateness.sort()
    return t
