"""Drain-rate measurement: pre-enqueued work, a node started on it, the broker polled.

The clock runs from the first completion to the last, as seen by polling the broker
every few milliseconds from outside: node start-up time is not part of a drain rate,
and neither contender can skew the figure by how it reports.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.outcome import Outcome, Sizes, stop_node
from bench.side import Node, Side


@dataclass(frozen=True)
class Drain:
    tasks: int  # completions between the first sample that saw one and the last
    seconds: float

    @property
    def rate(self) -> float:
        return self.tasks / self.seconds if self.seconds > 0 else float("inf")


def measure(finished: Callable[[], int], count: int, node: Node, stall: float = 60.0,
            interval: float = 0.005) -> Drain:
    """Poll `finished()` until it reaches `count`.

    The rate counts only completions after the first sample that saw any, over the time
    since that sample, so the polling interval costs accuracy at most one interval at
    each end. A node that dies or makes no progress for `stall` seconds fails loudly.
    """
    first: tuple[float, int] | None = None
    last_change, last_done = time.monotonic(), -1
    next_check = 0.0
    while True:
        done = finished()
        now = time.monotonic()
        if done > 0 and first is None:
            first = (now, done)
        if done >= count:
            break
        if done != last_done:
            last_change, last_done = now, done
        elif now - last_change > stall:
            raise RuntimeError(f"no progress for {stall:.0f} s: {done}/{count} done")
        if now >= next_check:
            node.check()
            next_check = now + 0.25
        time.sleep(interval)
    assert first is not None
    return Drain(tasks=done - first[1], seconds=now - first[0])


def round_trips(side: Side, node: Node, sizes: Sizes, out: Outcome) -> None:
    """Figures `rtt_p50` and `rtt_p99` (ms): sequential `delay().get()` on a warm node."""
    node.wait_ready(30)
    lat = sorted(side.driver("rtt", "noop", str(sizes.round_trips))["latencies"])
    out.figures["rtt_p50"] = statistics.median(lat) * 1000
    out.figures["rtt_p99"] = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))] * 1000


def enqueue_then_drain(side: Side, sizes: Sizes, finished: Callable[[], int],
                       interval: float = 0.005,
                       verify: Callable[[], None] | None = None,
                       with_round_trips: bool = False) -> Outcome:
    """Figures `enqueue` (a fresh producer's `delay()` loop of `sizes.tasks` no-ops,
    tasks/s) and `drain` (one node started on that backlog, results stored) on a side
    whose task module is written: the pair of figures a store is judged by when Celery
    has nothing beside it. `verify` runs once the drain is over (a result count);
    `with_round_trips` adds `round_trips` on the same node after a good drain."""
    out = Outcome()
    n = sizes.tasks

    def enqueue() -> None:
        out.figures["enqueue"] = n / float(side.driver("enqueue", "noop", str(n))["seconds"])

    if not out.attempt("enqueue", enqueue):
        return out
    node = side.start_node(sizes.concurrency)
    try:
        def drain_stored() -> None:
            out.figures["drain"] = measure(finished, n, node, interval=interval).rate
            if verify is not None:
                verify()
        if out.attempt("drain (results stored)", drain_stored) and with_round_trips:
            out.attempt("round trips", lambda: round_trips(side, node, sizes, out))
    finally:
        stop_node(node, out)
    return out
