"""Issue 12's bench: a group of N `add` calls sent and collected, a starmap of N in one
message, a chord of N with a `tsum` body, and a 1,000-step chain, on one private Redis,
Celery and qmulti in turn.

Each side gets a warm node (-c 2) and runs the same driver code; the figure is calls
per second from the first publish to the last result in hand.
"""

from __future__ import annotations

from pathlib import Path

from bench import report
from bench.celery_side import CelerySide
from bench.outcome import Outcome, Sizes, stop_node
from bench.qmulti_side import QmultiSide
from bench.redis_proc import RedisProc
from bench.side import Side

ROWS = (("group", "group(add.s(i, i) for N).get()"), ("starmap", "add.starmap(N).get()"),
        ("chord", "chord(N x add)(tsum.s()).get()"), ("chain", "chain of 1,000 add steps"))
CHAIN_STEPS = 1000


def run(root: Path, run_id: str, server: RedisProc, sizes: Sizes) -> tuple[Outcome, Outcome]:
    count = 1000 if sizes.tasks <= 1000 else 10_000
    celery, ours = CelerySide(root / "canvas", run_id), QmultiSide(root / "canvas", run_id)
    return run_side(celery, server, sizes, count), run_side(ours, server, sizes, count)


def run_side(side: Side, server: RedisProc, sizes: Sizes, count: int) -> Outcome:
    out = Outcome()
    server.flush()
    side.write_tasks(server.url(0), server.url(1))
    node = side.start_node(sizes.concurrency)
    try:
        node.wait_ready(30)
        for kind, _ in ROWS:
            def measure(kind: str = kind) -> None:
                n = CHAIN_STEPS if kind == "chain" else count
                seconds = float(side.driver("canvas", kind, str(n))["seconds"])
                out.figures[kind] = n / seconds
            out.attempt(kind, measure)
    finally:
        stop_node(node, out)
    out.figures["count"] = count
    return out


def render(celery: Outcome, ours: Outcome) -> str:
    count = int(ours.figures.get("count") or celery.figures.get("count") or 0)
    lines = [f"Canvas on Redis, N = {count:,}, -c 2",
             f"{'metric':32} {'unit':8} {'celery':>10} {'qmulti':>10} {'ratio':>7}", "-" * 72]
    parts = []
    for key, label in ROWS:
        r = report.ratio(key, celery.figures, ours.figures, True)
        unit = "steps/s" if key == "chain" else "calls/s"
        lines.append(f"{label:32} {unit:8} {report.fmt(celery.figures.get(key), 0):>10} "
                     f"{report.fmt(ours.figures.get(key), 0):>10} {report.fmt(r, 2):>7}")
        parts.append(f"{key}={report.fmt(r, 2)}")
    for who, o in (("celery", celery), ("qmulti", ours)):
        lines += [f"  problem ({who}): {e}" for e in o.errors]
    lines.append("canvas ratios vs celery: " + " ".join(parts))
    return "\n".join(lines)
