"""Issue 5's bench: both contenders on one private Redis, one after the other.

Per side: enqueue N (timed: the producer rate) with no node running; start a node on
that backlog (drain rate, results stored); with the node warm, sequential round trips
and then its idle RSS; stop; enqueue N result-less tasks; start a node on them (drain
rate, results ignored). Each phase that fails is reported and the rest still run.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from bench import drain, report
from bench.celery_side import CelerySide
from bench.outcome import Outcome, Sizes, stop_node
from bench.qmulti_side import QmultiSide
from bench.redis_proc import RedisProc
from bench.side import Side

MIB = 1024 * 1024


def run(root: Path, run_id: str, server: RedisProc,
        sizes: Sizes) -> tuple[Outcome, Outcome]:
    celery, ours = CelerySide(root / "redis", run_id), QmultiSide(root / "redis", run_id)
    runs: dict[str, list[Outcome]] = {"celery": [], "qmulti": []}
    for i in range(sizes.repeats):
        for side in (celery, ours) if i % 2 == 0 else (ours, celery):
            runs[side.name].append(run_side(side, server, sizes))
    return report.best(runs["celery"]), report.best(runs["qmulti"])


def run_side(side: Side, server: RedisProc, sizes: Sizes) -> Outcome:
    out = Outcome()
    broker, backend = server.client(0), server.client(1)
    n = sizes.tasks

    server.flush()
    side.write_tasks(server.url(0), server.url(1))

    def enqueue(task: str) -> float:
        return n / float(side.driver("enqueue", task, str(n))["seconds"])

    rates: list[float] = []
    if not out.attempt("enqueue", lambda: rates.append(enqueue("noop"))):
        return out
    node = side.start_node(sizes.concurrency)
    try:
        def drain_stored() -> None:
            d = drain.measure(lambda: side.finished(broker, backend, n, True), n, node)
            out.figures["drain"] = d.rate
            stored = side.stored(backend)
            if stored < n:
                raise RuntimeError(f"queue empty but only {stored}/{n} results stored")

        def idle_rss() -> None:
            time.sleep(sizes.idle_settle)  # let the node go idle; nothing to poll for
            main, children = node.rss()
            out.figures["rss"] = (main + sum(children)) / MIB
            out.figures["rss_main"] = main / MIB
            out.figures["rss_child"] = max(children, default=0) / MIB
            out.figures["children"] = len(children)
            out.figures["pss"] = node.pss() / MIB

        if out.attempt("drain (results stored)", drain_stored):
            out.attempt("round trips", lambda: drain.round_trips(side, node, sizes, out))
            out.attempt("idle RSS", idle_rss)
    finally:
        stop_node(node, out)

    server.flush()
    if out.attempt("enqueue (results ignored)", lambda: rates.append(enqueue("noop_ignored"))):
        node = side.start_node(sizes.concurrency)
        try:
            def drain_ignored() -> None:
                d = drain.measure(lambda: side.finished(broker, backend, n, False), n, node)
                out.figures["drain_ignored"] = d.rate
            out.attempt("drain (results ignored)", drain_ignored)
        finally:
            stop_node(node, out)
    out.figures["enqueue"] = statistics.mean(rates)
    return out
