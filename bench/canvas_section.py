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
# Past this a side's call is "did not finish" (Celery's chord of 10,000 on Redis may
# never): the row then says so, with the lower bound of our ratio that it implies.
LIMITS = {1000: 60.0, 10_000: 120.0}


def run(root: Path, run_id: str, server: RedisProc, sizes: Sizes) -> tuple[Outcome, Outcome]:
    count = 1000 if sizes.tasks <= 1000 else 10_000
    celery, ours = CelerySide(root / "canvas", run_id), QmultiSide(root / "canvas", run_id)
    return run_side(celery, server, sizes, count), run_side(ours, server, sizes, count)


def run_side(side: Side, server: RedisProc, sizes: Sizes, count: int) -> Outcome:
    out = Outcome()
    limit = LIMITS.get(count, 120.0)
    server.flush()
    side.write_tasks(server.url(0), server.url(1))
    node = side.start_node(sizes.concurrency)
    try:
        node.wait_ready(30)
        for kind, _ in ROWS:
            def measure(kind: str = kind) -> None:
                n = CHAIN_STEPS if kind == "chain" else count
                got = side.driver("canvas", kind, str(n), "--limit", str(limit),
                                  timeout=limit + 60)
                if "timeout" in got:  # the row reports a bound, not a rate
                    out.figures[f"{kind}_dnf"] = float(got["timeout"])
                    out.figures[f"{kind}_bound"] = n / float(got["timeout"])
                else:
                    out.figures[kind] = n / float(got["seconds"])
            out.attempt(kind, measure)
            if f"{kind}_dnf" in out.figures:  # its backlog would slow the next rows
                stop_node(node, out)
                server.flush()
                node = side.start_node(sizes.concurrency)
                node.wait_ready(30)
    finally:
        stop_node(node, out)
    out.figures["count"] = count
    return out


def _cells(key: str, celery: Outcome, ours: Outcome) -> tuple[str, str, str, str | None]:
    """(celery, qmulti, ratio, note) for one row; a side that did not finish shows its
    limit, and the ratio the bound that implies."""
    r = report.ratio(key, celery.figures, ours.figures, True)
    cells = [report.fmt(o.figures.get(key), 0) for o in (celery, ours)]
    note = None
    dnf = celery.figures.get(f"{key}_dnf")
    if dnf is not None:
        cells[0] = f"dnf {dnf:.0f}s"
        mine = ours.figures.get(key)
        if mine is not None:
            r = mine / celery.figures[f"{key}_bound"]
            note = f"  {key}: Celery did not finish in {dnf:.0f} s, ratio > {r:.2f}"
    if ours.figures.get(f"{key}_dnf") is not None:
        cells[1] = f"dnf {ours.figures[f'{key}_dnf']:.0f}s"
        note = f"  {key}: qmulti did not finish in {ours.figures[f'{key}_dnf']:.0f} s"
    shown = report.fmt(r, 2)
    return cells[0], cells[1], (f">{shown}" if dnf is not None and r else shown), note


def render(celery: Outcome, ours: Outcome) -> str:
    count = int(ours.figures.get("count") or celery.figures.get("count") or 0)
    lines = [f"Canvas on Redis, N = {count:,}, -c 2",
             f"{'metric':32} {'unit':8} {'celery':>10} {'qmulti':>10} {'ratio':>7}", "-" * 72]
    parts, notes = [], []
    for key, label in ROWS:
        theirs, mine, r, note = _cells(key, celery, ours)
        unit = "steps/s" if key == "chain" else "calls/s"
        lines.append(f"{label:32} {unit:8} {theirs:>10} {mine:>10} {r:>7}")
        parts.append(f"{key}={r}")
        notes += [note] if note else []
    lines += notes
    for who, o in (("celery", celery), ("qmulti", ours)):
        lines += [f"  problem ({who}): {e}" for e in o.errors]
    lines.append("canvas ratios vs celery: " + " ".join(parts))
    return "\n".join(lines)
