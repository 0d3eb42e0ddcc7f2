"""The producer side of a measurement, run as its own process in the task module's dir.

`python -m bench.driver enqueue|rtt|ping ...` imports the generated `tasks` module the
way user code would and prints one JSON line. A separate process per side keeps the
two apps (both named `tasks`) apart, gives each a cold, equal start, and keeps the
bench's own polling out of the producer's timings.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from typing import Any


def _task(name: str) -> Any:
    return getattr(importlib.import_module("tasks"), name)


def enqueue(task_name: str, count: int) -> dict[str, Any]:
    """`delay()` in a plain loop: what a web request handler does."""
    task = _task(task_name)
    start = time.perf_counter()
    for _ in range(count):
        task.delay()
    return {"seconds": time.perf_counter() - start, "count": count}


def rtt(task_name: str, count: int, warmup: int) -> dict[str, Any]:
    """Sequential `delay().get()`; the warm-up pays for connections and subscriptions
    that a long-lived producer pays once."""
    task = _task(task_name)
    for _ in range(warmup):
        task.delay().get(timeout=30)
    latencies = []
    for _ in range(count):
        start = time.perf_counter()
        task.delay().get(timeout=30)
        latencies.append(time.perf_counter() - start)
    return {"latencies": latencies}


def canvas(kind: str, count: int, limit: float = 600.0) -> dict[str, Any]:
    """One canvas call, send to last result: the same code on both sides (the task
    module imports `group` from its own library). A side that has not finished within
    `limit` seconds is reported as such (`{"timeout": limit}`), not as a crash."""
    tasks = importlib.import_module("tasks")
    tasks.add.delay(1, 1).get(timeout=30)  # connected and warm before the clock starts
    start = time.perf_counter()
    try:
        values = _canvas_values(tasks, kind, count, lambda: max(
            0.1, limit - (time.perf_counter() - start)))
    except Exception as exc:  # both libraries name their get() timeout TimeoutError
        if type(exc).__name__ != "TimeoutError":
            raise
        return {"timeout": limit, "count": count}
    seconds = time.perf_counter() - start
    if values != [2 * i for i in range(count)]:
        raise SystemExit(f"{kind}: wrong results")
    return {"seconds": seconds, "count": count}


def _canvas_values(tasks: Any, kind: str, count: int, left: Any) -> Any:
    """The results of one canvas call as a list to check; `left()`: seconds to wait."""
    if kind == "group":
        return tasks.group(tasks.add.s(i, i) for i in range(count)).apply_async().get(
            timeout=left())
    if kind == "chord":  # the body gets every header result: one value to check
        total = tasks.chord(tasks.add.s(i, i) for i in range(count))(tasks.tsum.s()).get(
            timeout=left())
        return [2 * i for i in range(count)] if total == count * (count - 1) else None
    if kind == "chain":  # `count` steps one after the other, each adding 1
        last = tasks.chain([tasks.add.s(0, 1)] + [tasks.add.s(1) for _ in range(count - 1)])
        return [2 * i for i in range(count)] if last.apply_async().get(
            timeout=left()) == count else None
    # "starmap": one message, the node loops
    return tasks.add.starmap([(i, i) for i in range(count)]).apply_async().get(
        timeout=left())


def ping(names: list[str], timeout: float) -> None:
    """Celery's readiness: `control.ping` until every node has answered once.

    Armed before the bench starts the nodes (so imports and the connection are not
    timed), it waits for `go` on stdin, then prints `ready` the moment all answered.
    """
    app = importlib.import_module("tasks").app
    app.control.ping(timeout=0.05)  # connect now, not inside the timed part
    print("armed", flush=True)
    sys.stdin.readline()
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while not seen.issuperset(names):
        if time.monotonic() > deadline:
            print(json.dumps({"error": f"no ping from {sorted(set(names) - seen)}"}),
                  flush=True)
            return
        missing = sorted(set(names) - seen)
        for reply in app.control.ping(destination=missing, timeout=0.1, limit=len(missing)):
            seen.update(reply)
    print("ready", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.driver")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("enqueue")
    p.add_argument("task")
    p.add_argument("count", type=int)
    p = sub.add_parser("rtt")
    p.add_argument("task")
    p.add_argument("count", type=int)
    p.add_argument("--warmup", type=int, default=10)
    p = sub.add_parser("canvas")
    p.add_argument("kind", choices=("group", "starmap", "chord", "chain"))
    p.add_argument("count", type=int)
    p.add_argument("--limit", type=float, default=600.0)
    p = sub.add_parser("ping")
    p.add_argument("names", nargs="+")
    p.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    if args.cmd == "enqueue":
        out = enqueue(args.task, args.count)
    elif args.cmd == "rtt":
        out = rtt(args.task, args.count, args.warmup)
    elif args.cmd == "canvas":
        out = canvas(args.kind, args.count, args.limit)
    else:
        ping(args.names, args.timeout)
        return 0
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
