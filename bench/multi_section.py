"""Issue 4's bench: `qmulti start/stopwait` against `celery multi start/stopwait`.

Three nodes at -c 1 on the same private Redis. "Started" means consuming: for qmulti,
`qmulti start` itself returns only then (READY=1 from each node); for Celery, whose
`multi start` returns once the daemons have forked, a probe armed beforehand pings
until all three have answered. The probe is connected before the clock starts and
pings in 0.1 s rounds that end early once everyone replied, so Celery's figure is the
best its own tooling can show. Stopwait is timed on idle nodes, then every node
process is checked to be gone.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path

import psutil

from bench import procs
from bench.celery_side import CelerySide
from bench.outcome import Outcome, Sizes
from bench.qmulti_side import QmultiSide
from bench.redis_proc import RedisProc
from bench.side import Side

NAMES = ["w1", "w2", "w3"]
START_TARGET = 0.4  # ours / celery's, issue 4
STOPWAIT_TARGET = 0.1


def _command(side: Side, command: str, timeout: float) -> float:
    """Run a controller command to completion; returns its wall time. A non-zero exit
    is an error carrying its output."""
    start = time.monotonic()
    proc = subprocess.Popen(side.multi_argv(command, NAMES), cwd=side.dir, env=side.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        procs.stop_group(proc, timeout=1)
        raise RuntimeError(f"`{command}` did not return within {timeout:.0f} s") from None
    took = time.monotonic() - start
    if proc.returncode != 0:
        text = output.decode(errors="replace").strip()[-1500:]
        raise RuntimeError(f"`{command}` exited {proc.returncode}:\n{text}")
    return took


def _node_procs(workdir: Path) -> list[psutil.Process]:
    """The nodes' processes by their pidfiles, with children, for the 'all gone' check
    and as a second line of cleanup should a controller drop the bench's marker."""
    found: list[psutil.Process] = []
    for pidfile in sorted(workdir.glob("*.pid")):
        try:
            main = psutil.Process(int(pidfile.read_text().split()[0]))
            found += [main, *main.children(recursive=True)]
        except (ValueError, IndexError, OSError, psutil.Error):
            continue
    return found


def _gone(tracked: list[psutil.Process], out: Outcome, who: str) -> None:
    _, alive = psutil.wait_procs(tracked, timeout=5)
    if alive:
        out.errors.append(f"{who}: stopwait returned with {len(alive)} node process(es) "
                          f"still alive: {[p.pid for p in alive]} (killed)")
        for p in alive:
            try:
                p.kill()
            except psutil.Error:
                pass


def _celery_round(side: CelerySide, out: Outcome) -> tuple[float, float]:
    probe = side.arm_ping(NAMES)
    try:
        assert probe.stdin is not None and probe.stdout is not None
        start = time.monotonic()
        probe.stdin.write("go\n")
        probe.stdin.flush()
        _command(side, "start", 60)
        line = probe.stdout.readline().strip()
        started = time.monotonic() - start
        if line != "ready":
            raise RuntimeError(f"celery nodes never all answered ping: {line}")
    finally:
        procs.stop_group(probe, timeout=1)
    tracked = _node_procs(side.dir)
    stopped = _command(side, "stopwait", 120)
    _gone(tracked, out, "celery")
    return started, stopped


def _qmulti_round(side: QmultiSide, out: Outcome) -> tuple[float, float]:
    started = _command(side, "start", 60)
    tracked = _node_procs(side.dir)
    mains = [p for p in tracked if p.pid in _pidfile_pids(side.dir)]
    if len(mains) != len(NAMES):
        out.errors.append(f"qmulti: {len(mains)} of {len(NAMES)} node pidfiles after start")
    stopped = _command(side, "stopwait", 120)
    _gone(tracked, out, "qmulti")
    left = sorted(p.name for p in side.dir.glob("*.pid"))
    if left:
        out.errors.append(f"qmulti: pidfiles left after stopwait: {left}")
    return started, stopped


def _pidfile_pids(workdir: Path) -> set[int]:
    pids = set()
    for pidfile in workdir.glob("*.pid"):
        try:
            pids.add(int(pidfile.read_text().split()[0]))
        except (ValueError, IndexError, OSError):
            continue
    return pids


def run(root: Path, run_id: str, server: RedisProc,
        sizes: Sizes) -> tuple[Outcome, Outcome]:
    """Alternates sides each round, so slow drifts in the machine's load hit both."""
    results: dict[str, tuple[Outcome, list[float], list[float]]] = {}
    celery = CelerySide(root / "multi", run_id)
    ours = QmultiSide(root / "multi", run_id)
    for side in (celery, ours):
        side.write_tasks(server.url(0), server.url(1))
        results[side.name] = (Outcome(), [], [])
    for _ in range(sizes.rounds):
        for side in (celery, ours):
            out, starts, stops = results[side.name]
            server.flush()

            def one_round(side: Side = side, out: Outcome = out, starts: list[float] = starts,
                          stops: list[float] = stops) -> None:
                if isinstance(side, CelerySide):
                    a, b = _celery_round(side, out)
                elif isinstance(side, QmultiSide):
                    a, b = _qmulti_round(side, out)
                else:
                    raise TypeError(side)
                starts.append(a)
                stops.append(b)
            ok = out.attempt("start/stopwait", one_round)
            if not ok:
                for p in _node_procs(side.dir):  # a failed round must not leak nodes
                    try:
                        p.kill()
                    except psutil.Error:
                        pass
    outs = []
    for name in ("celery", "qmulti"):
        out, starts, stops = results[name]
        if starts:
            out.figures["start"] = statistics.median(starts)
        if stops:
            out.figures["stopwait"] = statistics.median(stops)
        outs.append(out)
    return outs[0], outs[1]


def render(celery: Outcome, ours: Outcome, rounds: int) -> str:
    lines = [f"Controller: 3 nodes (w1 w2 w3 -c 1) on the same Redis, median of {rounds} "
             f"round(s)",
             f"  {'':24} {'celery':>9} {'qmulti':>9} {'ours/celery':>12}  target"]
    for key, label, target in (("start", "start until consuming", START_TARGET),
                               ("stopwait", "stopwait (idle nodes)", STOPWAIT_TARGET)):
        c, o = celery.figures.get(key), ours.figures.get(key)
        r = o / c if c and o else None
        verdict = "" if r is None else ("met" if r <= target else "MISSED")
        lines.append(f"  {label:24} {_secs(c):>9} {_secs(o):>9} "
                     f"{'n/a' if r is None else f'{r:.2f}x':>12}  <= {target}x {verdict}")
    for who, out in (("celery", celery), ("qmulti", ours)):
        lines += [f"  problem ({who}): {e}" for e in out.errors]
    return "\n".join(lines)


def _secs(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"
