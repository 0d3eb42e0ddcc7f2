"""Which re-runs of a chaos drill are explained: `runs.log` has one line per run,
`<task> <pid> <unix time begun>`, appended by the task itself."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def count_reruns(report: Any, runs_path: Path, killed: set[int],
                 outages: Sequence[tuple[float, float]] = ()) -> None:
    """Add to `report.reruns`; a task run more often than its earlier runs in killed
    processes (and, given `outages`, begun inside one: a broker restart that closed its
    connection) explain goes to `report.unexplained`."""
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
        in_killed = sum(1 for pid, _ in where if pid in killed)
        in_outage = sum(1 for pid, began in where if pid not in killed
                        and any(lo <= began <= hi for lo, hi in outages))
        report.outage_reruns += max(0, min(in_outage, extra - in_killed))
        if in_killed + in_outage < extra:
            report.unexplained.append(f"task {n} ran in pids {[pid for pid, _ in where]}")
