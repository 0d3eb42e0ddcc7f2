"""Issue 15's cost bullet: what a running dashboard adds to the broker, and how fresh
its pages are, with 3 nodes draining a deep queue.

Rounds (`--repeat N`, default 2) of four drains of the same size on one private
redis-server, 3 nodes at -c 2 each: two without a dashboard, two with `qmulti
dashboard` running and a page subscribed to its event stream (as an open browser tab
is), in the order without-with-with-without, so a drift of the machine's load cancels
out. Every drain starts from an empty server. The figure is redis-server's CPU time
(user + system, from the process table) per task drained, so a drain that runs slower
or faster on a noisy machine does not skew it; each round gives one, and the spread
of the rounds is printed with the pooled figure. Freshness is the gap between
consecutive updates the page received plus the collector's own time for that tick:
the longest a change in the broker can wait to reach the page.
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

from bench import procs
from bench.outcome import Sizes
from bench.redis_proc import RedisProc

TASKS = '''from qmulti import App

app = App("tasks", broker={url!r})


@app.task
def noop():
    return None
'''
NODES = ("w1", "w2", "w3")
MSGS = "{qmulti:celery}:msgs"
CPU_TARGET = 0.05  # at most 5 % more broker CPU with the dashboard
FRESH_TARGET = 1.0  # every page updates within 1 s
# Commands only the dashboard sends (the nodes never do): their server time, from
# INFO commandstats, is its own broker cost with none of the machine's noise in it.
DASHBOARD_ONLY = ("scan", "mget", "smembers", "lindex", "zcard", "hgetall", "xread")


def _redis_cpu(server: RedisProc) -> float:
    assert server.proc is not None
    t = psutil.Process(server.proc.pid).cpu_times()
    return t.user + t.system


def _command_usec(server: RedisProc) -> tuple[float, float]:
    """(server microseconds in every command, in the dashboard's own commands)."""
    stats = server.client().info("commandstats")
    every = sum(float(v["usec"]) for v in stats.values())
    own = sum(float(stats.get(f"cmdstat_{c}", {}).get("usec", 0)) for c in DASHBOARD_ONLY)
    return every, own


def _enqueue(root: Path, run_id: str, url: str, count: int) -> None:
    code = ("import sys; sys.path.insert(0, '.'); from tasks import noop\n"
            f"for _ in range({count}): noop.delay()\n")
    proc = procs.spawn([sys.executable, "-c", code], root, procs.bench_env(run_id),
                       root / "enqueue.log")
    if proc.wait(timeout=600) != 0:
        raise RuntimeError(f"enqueue failed: {procs.tail(root / 'enqueue.log')}")


def _drain(root: Path, run_id: str, server: RedisProc,
           count: int) -> tuple[float, float, float, float]:
    """Start 3 nodes on `count` queued tasks; (redis CPU seconds, wall seconds, command
    seconds, the dashboard's own command seconds) from the nodes' start to the last
    completion. The nodes are stopped afterwards."""
    client = server.client()
    env = procs.bench_env(run_id)
    every0, own0 = _command_usec(server)
    cpu0, t0 = _redis_cpu(server), time.monotonic()
    nodes = [procs.spawn([sys.executable, "-m", "qmulti", "-A", "tasks", "-c", "2", "-n",
                          f"{n}@%h", "-l", "warning"], root, env, root / f"{n}.log")
             for n in NODES]
    try:
        procs.wait_until(lambda: int(client.hlen(MSGS)) == 0, 1200, f"{count} tasks drained",
                         interval=0.05)
        cpu1, t1 = _redis_cpu(server), time.monotonic()
        every1, own1 = _command_usec(server)
    finally:
        for node in nodes:
            procs.stop_group(node, timeout=30)
    return cpu1 - cpu0, t1 - t0, (every1 - every0) / 1e6, (own1 - own0) / 1e6


class _Subscriber(threading.Thread):
    """An open page: reads the dashboard's event stream and notes when each update came."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.arrivals: list[float] = []
        self.ticks: list[float] = []
        self.stop = False

    def run(self) -> None:
        try:
            with urllib.request.urlopen(self.url + "api/stream", timeout=30) as resp:
                for raw in resp:
                    if self.stop:
                        return
                    line = raw.decode()
                    if line.startswith("data: "):
                        self.arrivals.append(time.monotonic())
                        self.ticks.append(float(json.loads(line[6:]).get("tick_seconds", 0.0)))
        except OSError:  # the dashboard stopped (or never answered: _start_dashboard says)
            return


def _start_dashboard(root: Path, run_id: str) -> tuple[Any, _Subscriber]:
    # A log of its own per start: an earlier round's "listening" line must not be read.
    log = root / f"dashboard-{len(list(root.glob('dashboard-*.log')))}.log"
    dash = procs.spawn([sys.executable, "-m", "qmulti.supervisor", "dashboard", "-A", "tasks",
                        "--port", "0"], root, procs.bench_env(run_id), log)
    found: list[str] = []

    def listening() -> bool:
        for line in log.read_text().splitlines():
            if line.startswith("dashboard: http://"):
                found.append(line.split()[1])
                return True
        if dash.poll() is not None:
            raise RuntimeError(f"dashboard exited: {procs.tail(log)}")
        return False

    procs.wait_until(listening, 30, "the dashboard")
    page = _Subscriber(found[0])
    page.start()
    procs.wait_until(lambda: len(page.arrivals) >= 2, 30, "the first page updates")
    return dash, page


def _round(root: Path, run_id: str, server: RedisProc, count: int) -> dict[str, Any]:
    """One ABBA round, each drain from an empty server: a drift of the machine's load
    over the round cancels out of its ratio. The dashboard runs through both B drains
    with one page subscribed, and is stopped before the second A."""
    url = server.url(0)
    cpu = {"A": 0.0, "B": 0.0}
    wall = {"A": 0.0, "B": 0.0}
    dash: Any = None
    page: _Subscriber | None = None
    dash_cpu = 0.0
    commands = {"all": 0.0, "own": 0.0}  # command seconds in the B drains
    try:
        for phase in "ABBA":
            server.flush()
            _enqueue(root, run_id, url, count)
            if phase == "B" and dash is None:
                dash, page = _start_dashboard(root, run_id)
            if phase == "A" and dash is not None:
                assert page is not None
                page.stop = True
                procs.stop_group(dash, timeout=10)
                dash = None
            before = _process_cpu(dash)
            used, took, every, own = _drain(root, run_id, server, count)
            if phase == "B":
                commands["all"] += every
                commands["own"] += own
            dash_cpu += _process_cpu(dash) - before
            cpu[phase] += used
            wall[phase] += took
    finally:
        if dash is not None:
            procs.stop_group(dash, timeout=10)
    assert page is not None
    # Only the updates that came during the B drains: the page is subscribed then.
    gaps = [b - a for a, b in zip(page.arrivals, page.arrivals[1:], strict=False)]
    # A change made just after a tick's reads began shows with the next update: the
    # gap plus that tick's own time is the longest a page can lag the broker.
    lags = [g + t for g, t in zip(gaps, page.ticks, strict=False)]
    return {"cpu": cpu, "wall": wall, "dash_cpu": dash_cpu, "commands": commands,
            "overhead": cpu["B"] / cpu["A"] - 1 if cpu["A"] else 0.0,
            "gaps": gaps, "lags": lags, "ticks": page.ticks}


def _process_cpu(proc: Any) -> float:
    """The dashboard process's own CPU seconds (it shares the nodes' cores)."""
    if proc is None:
        return 0.0
    try:
        t = psutil.Process(proc.pid).cpu_times()
        return t.user + t.system
    except psutil.Error:
        return 0.0


def run(root: Path, run_id: str, server: RedisProc, sizes: Sizes) -> dict[str, Any]:
    """`sizes.repeats` ABBA rounds (see `_round`); each round gives one overhead figure,
    and their spread says how much of the figure is the machine's noise."""
    root = root / "dashboard"
    root.mkdir()
    (root / "tasks.py").write_text(TASKS.format(url=server.url(0)))
    count = sizes.queued
    rounds = [_round(root, run_id, server, count) for _ in range(max(1, sizes.repeats))]
    gaps = [g for r in rounds for g in r["gaps"]]
    lags = [g for r in rounds for g in r["lags"]]
    ticks = [t for r in rounds for t in r["ticks"]]
    base = sum(r["cpu"]["A"] for r in rounds)
    dash = sum(r["cpu"]["B"] for r in rounds)
    drains = 2 * len(rounds)
    return {"tasks": count, "rounds": len(rounds),
            "base_cpu": base / drains, "dash_cpu": dash / drains,
            "base_wall": sum(r["wall"]["A"] for r in rounds) / drains,
            "dash_wall": sum(r["wall"]["B"] for r in rounds) / drains,
            "dash_proc_cpu": sum(r["dash_cpu"] for r in rounds) / drains,
            "own_share": sum(r["commands"]["own"] for r in rounds)
            / max(1e-9, sum(r["commands"]["all"] for r in rounds)),
            "own_cmd": sum(r["commands"]["own"] for r in rounds) / drains,
            "overheads": [r["overhead"] for r in rounds],
            "overhead": dash / base - 1 if base else 0.0,
            "gap_max": max(gaps) if gaps else float("inf"),
            "lag_max": max(lags) if lags else float("inf"),
            "gap_p95": statistics.quantiles(gaps, n=20)[-1] if len(gaps) >= 2 else float("inf"),
            "tick_max": max(ticks) if ticks else 0.0, "updates": len(gaps) + len(rounds)}


def render(f: dict[str, Any]) -> str:
    base = f["base_cpu"] / f["tasks"] * 1e6
    dash = f["dash_cpu"] / f["tasks"] * 1e6
    ok_cpu = "ok" if f["overhead"] <= CPU_TARGET else "OVER"
    ok_fresh = "ok" if f["lag_max"] <= FRESH_TARGET else "OVER"
    each = ", ".join(f"{o * 100:+.1f}" for o in f["overheads"])
    drains = 2 * f["rounds"]
    return "\n".join([
        f"Dashboard cost, 3 nodes at -c 2 draining {f['tasks']:,} queued tasks (Redis), "
        f"{f['rounds']} ABBA round(s)",
        f"  redis CPU per task, no dashboard:   {base:7.1f} us  (mean of {drains} drains: "
        f"{f['base_cpu']:.2f} s over {f['base_wall']:.1f} s)",
        f"  redis CPU per task, with dashboard: {dash:7.1f} us  (mean of {drains} drains: "
        f"{f['dash_cpu']:.2f} s over {f['dash_wall']:.1f} s, one page subscribed)",
        f"  the dashboard process itself: {f['dash_proc_cpu']:.2f} CPU s per drain",
        f"  the dashboard's own commands ({', '.join(DASHBOARD_ONLY)}): "
        f"{f['own_cmd'] * 1000:.0f} ms of server time per drain, "
        f"{f['own_share'] * 100:.2f} % of all command time in those drains",
        f"  page updates: {f['updates']}, gap p95 {f['gap_p95']:.2f} s, max "
        f"{f['gap_max']:.2f} s; collector tick max {f['tick_max'] * 1000:.0f} ms",
        f"  ACCEPTANCE broker CPU added: {f['overhead'] * 100:+.1f} %  (per round: {each} %; "
        f"target <= {CPU_TARGET * 100:.0f} %: {ok_cpu})",
        f"  ACCEPTANCE max page update lag: {f['lag_max']:.2f} s  (update gap + that tick's "
        f"reads; target <= {FRESH_TARGET:.0f} s: {ok_fresh})"])
