"""Issue 14's bench: what `-E` costs a drain, on the private Redis, qmulti only.

The same drain (N no-op tasks pre-enqueued, results stored, a node at -c 2 started on
the backlog) with and without `-E`, alternating which goes first in each repetition so
that neither always runs on a warmer machine; the best of each is kept. Target: the
drain with events at least 90 % of the drain without.
"""

from __future__ import annotations

from pathlib import Path

from bench import drain
from bench.outcome import Outcome, Sizes, stop_node
from bench.qmulti_side import QmultiSide
from bench.redis_proc import RedisProc

TARGET = 0.90
STREAM = "{qmulti}:events"


class EventsSide(QmultiSide):
    def __init__(self, root: Path, run_id: str, events: bool) -> None:
        super().__init__(root, run_id)
        self.events = events

    def node_argv(self, concurrency: int) -> list[str]:
        return super().node_argv(concurrency) + (["-E"] if self.events else [])


def run(root: Path, run_id: str, server: RedisProc, sizes: Sizes) -> Outcome:
    out = Outcome()
    sides = {False: EventsSide(root / "events-off", run_id, False),
             True: EventsSide(root / "events-on", run_id, True)}
    best: dict[bool, float] = {}
    for i in range(max(sizes.repeats, 2)):
        for events in (False, True) if i % 2 == 0 else (True, False):
            rate = _drain(sides[events], server, sizes, out)
            if rate is not None:
                best[events] = max(best.get(events, 0.0), rate)
                if events:
                    out.figures["stream"] = float(server.client(0).xlen(STREAM))
    if False in best:
        out.figures["drain_off"] = best[False]
    if True in best:
        out.figures["drain_on"] = best[True]
    return out


def _drain(side: EventsSide, server: RedisProc, sizes: Sizes, out: Outcome) -> float | None:
    broker, backend = server.client(0), server.client(1)
    n = sizes.tasks
    server.flush()
    side.write_tasks(server.url(0), server.url(1))
    label = "on" if side.events else "off"
    if not out.attempt(f"enqueue (-E {label})",
                       lambda: side.driver("enqueue", "noop", str(n))):
        return None
    rates: list[float] = []
    node = side.start_node(sizes.concurrency)
    try:
        def measure() -> None:
            d = drain.measure(lambda: side.finished(broker, backend, n, True), n, node)
            rates.append(d.rate)
        out.attempt(f"drain (-E {label})", measure)
    finally:
        stop_node(node, out)
    return rates[0] if rates else None


def render(out: Outcome, sizes: Sizes) -> str:
    off, on = out.figures.get("drain_off"), out.figures.get("drain_on")
    lines = [f"Events (-E) on Redis, qmulti only, -c {sizes.concurrency}, results stored, "
             f"best of {max(sizes.repeats, 2)} each"]
    lines.append(f"  drain without -E: {off:,.0f} tasks/s" if off else "  drain without -E: n/a")
    lines.append(f"  drain with -E:    {on:,.0f} tasks/s" if on else "  drain with -E:    n/a")
    if off and on:
        ratio = on / off
        verdict = "met" if ratio >= TARGET else "MISSED"
        lines.append(f"  with/without: {ratio:.2f}   target >= {TARGET:.2f}: {verdict}")
    if "stream" in out.figures:
        lines.append(f"  events in the stream after the -E drain: {out.figures['stream']:,.0f}"
                     " (capped)")
    lines += [f"  problem: {e}" for e in out.errors]
    return "\n".join(lines)
