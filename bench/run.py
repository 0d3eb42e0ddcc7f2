"""`python -m bench`: runs the sections, prints the figures, and cleans up everything.

Everything the run starts (redis-server, nodes, controller daemons, producers) carries
one marker in its environment and works under one temp dir; the `finally` below finds
those processes (see `procs.ours`), ends them and removes the dir on success, failure,
Ctrl-C or TERM alike.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from bench import (
    amqp_section,
    beat_section,
    canvas_section,
    dashboard_section,
    events_section,
    multi_section,
    procs,
    redis_section,
    report,
    sentinel_section,
    sqlite_section,
)
from bench.outcome import Outcome, Sizes
from bench.redis_proc import RedisProc

# redis last: its ratio line ends the output
SECTIONS = ("sqlite", "sentinel", "multi", "canvas", "events", "dashboard", "beat",
            "amqp", "redis")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="qmulti against Celery 5 on a private redis-server (see bench/README.md)")
    parser.add_argument("--quick", action="store_true",
                        help="1,000 tasks, 50 round trips, 1 controller round (< 1 min)")
    parser.add_argument("--only", choices=SECTIONS, action="append",
                        help="run one section (repeatable); default: all")
    parser.add_argument("--tasks", type=int, help="tasks per drain (default 5,000)")
    parser.add_argument("--round-trips", type=int, help="delay().get() calls (default 200)")
    parser.add_argument("--rounds", type=int, help="controller rounds (default 3)")
    parser.add_argument("--repeat", type=int,
                        help="Redis-section repetitions per side, best kept (default 2)")
    parser.add_argument("--queued", type=int,
                        help="dashboard section: tasks queued per drain (default 100,000)")
    parser.add_argument("--beat-seconds", type=float,
                        help="beat section: seconds each side schedules (default 30)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temp dir (task modules, node logs) for inspection")
    return parser.parse_args(argv)


def _sizes(args: argparse.Namespace) -> Sizes:
    quick = args.quick
    return Sizes(tasks=args.tasks or (1000 if quick else 5000),
                 round_trips=args.round_trips or (50 if quick else 200),
                 rounds=args.rounds or (1 if quick else 3),
                 repeats=args.repeat or (1 if quick else 2),
                 queued=args.queued or (10_000 if quick else 100_000),
                 beat_seconds=args.beat_seconds or (10.0 if quick else 30.0))


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """TERM/HUP take the same path as Ctrl-C, through the cleanup in `main`."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _header(sizes: Sizes) -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"qmulti bench: {sizes.tasks:,} tasks/drain, {sizes.round_trips} round trips, "
            f"-c {sizes.concurrency}; {os.cpu_count()} CPUs, load average {load}\n"
            "(a shared machine: absolute figures are noisy, the ratios less so)")


def _print_errors(who: str, out: Outcome) -> None:
    for err in out.errors:
        print(f"  problem ({who}): {err}")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    sizes = _sizes(args)
    wanted = [s for s in SECTIONS if not args.only or s in args.only]
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    run_id = procs.new_run_id()
    root = Path(tempfile.mkdtemp(prefix="qmulti-bench-"))
    server: RedisProc | None = None
    began = time.monotonic()
    print(_header(sizes), flush=True)
    try:
        if "sqlite" in wanted:
            print(sqlite_section.render(sqlite_section.run(root, run_id, sizes)), flush=True)
        if "sentinel" in wanted:
            print(sentinel_section.render(sentinel_section.run(root, run_id, sizes)),
                  flush=True)
        if {"multi", "canvas", "events", "dashboard", "beat", "amqp", "redis"} & set(wanted):
            server = RedisProc(root, run_id).start()
        if "multi" in wanted and server is not None:
            celery_m, ours_m = multi_section.run(root, run_id, server, sizes)
            print(multi_section.render(celery_m, ours_m, sizes.rounds), flush=True)
        if "canvas" in wanted and server is not None:
            celery_c, ours_c = canvas_section.run(root, run_id, server, sizes)
            print(canvas_section.render(celery_c, ours_c), flush=True)
        if "events" in wanted and server is not None:
            print(events_section.render(events_section.run(root, run_id, server, sizes), sizes),
                  flush=True)
        if "dashboard" in wanted and server is not None:
            print(dashboard_section.render(dashboard_section.run(root, run_id, server,
                                                                 sizes)), flush=True)
        if "beat" in wanted and server is not None:
            print(beat_section.render(beat_section.run(root, run_id, server,
                                                       sizes.beat_seconds),
                                      sizes.beat_seconds), flush=True)
        if "amqp" in wanted and server is not None:
            why = amqp_section.unavailable()
            if why:
                print(f"amqp section skipped: {why}", flush=True)
            else:
                celery_a, ours_a = amqp_section.run(root, run_id, server, sizes)
                print(amqp_section.render(celery_a, ours_a, sizes), flush=True)
        if "redis" in wanted and server is not None:
            celery, ours = redis_section.run(root, run_id, server, sizes)
            print(f"Redis broker and backend, -c {sizes.concurrency} "
                  f"({time.monotonic() - began:.0f} s so far)")
            print(report.table(celery.figures, ours.figures))
            _print_errors("celery", celery)
            _print_errors("qmulti", ours)
            print(report.breakdown(celery.figures, ours.figures))
            print(report.ratio_line(celery.figures, ours.figures), flush=True)
        return 0
    except KeyboardInterrupt as exc:
        print(f"interrupted ({exc or 'INT'}); cleaning up", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip this
        if server is not None:
            server.stop()
        leftover = procs.sweep(run_id, root)
        if leftover:
            print(f"cleanup: killed {leftover} leftover process(es) of this run",
                  file=sys.stderr)
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
