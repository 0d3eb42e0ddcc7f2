"""Rendering: the table, the controller lines and the one closing ratio line.

A missing figure (our side not working yet) shows as `n/a` rather than aborting the
run, so Celery's reference numbers are printed whatever state our code is in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bench.outcome import Outcome

Figures = Mapping[str, float]


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    target: str = ""


REDIS_ROWS: Sequence[Row] = (
    Row("drain", "drain, results stored", "tasks/s", True, ">= 3x"),
    Row("drain_ignored", "drain, results ignored", "tasks/s", True, ""),
    Row("enqueue", "enqueue (delay() loop)", "tasks/s", True, ">= 4x"),
    Row("rtt_p50", "delay().get() p50", "ms", False, ">= 2x"),
    Row("rtt_p99", "delay().get() p99", "ms", False, ""),
    Row("rss", "idle node RSS (main+children)", "MiB", False, ">= 2x"),
)


def best(runs: Sequence[Outcome]) -> Outcome:
    """Each table figure at its best over the runs; errors of every run, kept once."""
    merged = Outcome()
    for row in REDIS_ROWS:
        values = [r.figures[row.key] for r in runs if row.key in r.figures]
        if values:
            merged.figures[row.key] = max(values) if row.higher_is_better else min(values)
    for run in runs:
        for key, value in run.figures.items():
            merged.figures.setdefault(key, value)
        merged.errors += [e for e in run.errors if e not in merged.errors]
    return merged


def breakdown(celery: Figures, ours: Figures) -> str:
    """Where the RSS goes: a node's main process and its largest pool child."""
    parts = []
    for who, f in (("celery", celery), ("qmulti", ours)):
        if "rss_main" in f:
            parts.append(f"{who} main {f['rss_main']:.1f} + {int(f['children'])} children "
                         f"(largest {f['rss_child']:.1f}), PSS {f.get('pss', 0):.1f}")
    return "  RSS MiB: " + "; ".join(parts) if parts else ""


def ratio(row_key: str, celery: Figures, ours: Figures, higher_is_better: bool) -> float | None:
    """Oriented so that higher is better: ours/celery for rates, celery/ours otherwise."""
    a, b = celery.get(row_key), ours.get(row_key)
    if a is None or b is None or a <= 0 or b <= 0:
        return None
    return b / a if higher_is_better else a / b


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def table(celery: Figures, ours: Figures) -> str:
    lines = [f"{'metric':32} {'unit':8} {'celery':>10} {'qmulti':>10} {'ratio':>7}  target",
             "-" * 80]
    for row in REDIS_ROWS:
        digits = 2 if row.unit == "ms" else 1 if row.unit == "MiB" else 0
        r = ratio(row.key, celery, ours, row.higher_is_better)
        lines.append(f"{row.label:32} {row.unit:8} {fmt(celery.get(row.key), digits):>10} "
                     f"{fmt(ours.get(row.key), digits):>10} {fmt(r, 2):>7}  {row.target}")
    return "\n".join(lines)


def ratio_line(celery: Figures, ours: Figures) -> str:
    """The one line the compass reads; keys and order fixed by issue 5."""
    parts = []
    for key, better in (("drain", True), ("enqueue", True), ("rtt_p50", False),
                        ("rss", False)):
        parts.append(f"{key}={fmt(ratio(key, celery, ours, better), 2)}")
    return "ratios vs celery: " + " ".join(parts)
