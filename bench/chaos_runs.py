"""Which re-runs of a chaos drill are explained: `runs.log` has one line per run,
`<task> <pid> <unix time begun>`, appended by the task itself."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def count_reruns(report: Any, runs_path: Path, killed: set[int],
                 outages: Sequence[tuple[float, float]] = ()) -> None:
    """Add to `report.reruns`; a task whose earlier runs are not each in a killed process
    or (given `outages`) begun inside one, a broker restart that closed its connection,
    goes to `report.unexplained`."""
    runs: dict[str, list[tuple[int, float]]] = {}
    if runs_path.exists():
        for line in runs_path.read_text().splitlines():
            n, pid, began = line.split()
            runs.setdefault(n, []).append((int(pid), float(began)))
    for n, where in runs.items():
        extra = len(where) - 1
        if extra <= 0:
            continue
        report.reruns += extra
        # Each earlier run (all but the last begun) needs a reason. One begun in an
        # outage window is the outage's, even in a process killed later: a killed
        # process's own share is the one task it was running when it died.
        earlier = sorted(where, key=lambda run: run[1])[:-1]
        around = [any(lo <= began <= hi for lo, hi in outages) for _, began in earlier]
        in_outage = sum(around)
        in_killed = sum(1 for (pid, _), out in zip(earlier, around, strict=True)
                        if pid in killed and not out)
        report.outage_reruns += min(in_outage, extra)
        if in_killed + in_outage < extra:
            report.unexplained.append(f"task {n} ran in pids {[pid for pid, _ in where]}")
