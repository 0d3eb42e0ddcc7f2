"""Issue 3's bench: qmulti's embedded SQLite store, drain with results stored at -c 2.

Celery has nothing comparable (kombu's SQLAlchemy transport polls and is not what its
users run), so the figure is held against issue 3's absolute target instead.
"""

from __future__ import annotations

from pathlib import Path

from bench import drain
from bench.outcome import Outcome, Sizes
from bench.qmulti_side import QmultiSide

TARGET = 1000.0  # tasks/s, issue 3


def run(root: Path, run_id: str, sizes: Sizes) -> Outcome:
    side = QmultiSide(root / "sqlite", run_id)
    db = side.dir / "q.sqlite3"
    side.write_tasks(f"sqlite:///{db}", None)  # absolute path: four slashes
    n = sizes.tasks

    def all_stored() -> None:
        stored = side.sqlite_stored(db)
        if stored < n:
            raise RuntimeError(f"queue empty but only {stored}/{n} results stored")

    return drain.enqueue_then_drain(side, sizes, lambda: side.sqlite_finished(db, n),
                                    interval=0.01, verify=all_stored)


def render(out: Outcome) -> str:
    drain_rate = out.figures.get("drain")
    lines = ["SQLite store (qmulti only), -c 2, results stored"]
    if drain_rate is None:
        lines.append(f"  drain: n/a   (target >= {TARGET:,.0f} tasks/s)")
    else:
        verdict = "met" if drain_rate >= TARGET else "MISSED"
        lines.append(f"  drain: {drain_rate:,.0f} tasks/s   target >= {TARGET:,.0f}: {verdict}")
    if "enqueue" in out.figures:
        lines.append(f"  enqueue: {out.figures['enqueue']:,.0f} tasks/s (for information)")
    lines += [f"  problem: {e}" for e in out.errors]
    return "\n".join(lines)
