"""Issue 13's bench: periodic tasks, qmulti's three schedulers against Celery's one beat.

Both sides get the same two entries (every 1 s, every 5 s, `tasks.add`) on the private
Redis, qmulti in db 0 and Celery in db 2, and are timed by their own INFO lines (see
bench/beat_tally.py for what "due" means on each side). qmulti runs what the issue
promises is safe: two `qworker -B` and one `qmulti beat` at once; the figures are
ticks sent, doubled, missed, lateness of the send and the schedulers' RSS. Celery runs
one `celery beat` (it cannot run two safely) beside a worker for the same time; then a
second beat joins for a short while, and what the second one sends again is counted:
the known Celery problem (celery#2856), printed for information.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from bench import procs
from bench.beat_tally import Tally, celery_sends, celery_tally, qmulti_tally
from bench.celery_side import CelerySide
from bench.outcome import Outcome
from bench.qmulti_side import QmultiSide
from bench.redis_proc import RedisProc
from bench.side import BIN, Side
from qmulti.node import beatlog

ENTRIES = {"every-1s": 1.0, "every-5s": 5.0}
TARGET_MS = 100.0
SCHEDULE = "\napp.conf.beat_schedule = {!r}\n".format(
    {name: {"task": "tasks.add", "schedule": step, "args": (1, 1)}
     for name, step in ENTRIES.items()})


class QmultiBeatSide(QmultiSide):
    def tasks_source(self, broker: str, backend: str | None) -> str:
        return super().tasks_source(broker, backend) + SCHEDULE


class CeleryBeatSide(CelerySide):
    def tasks_source(self, broker: str, backend: str | None) -> str:
        return super().tasks_source(broker, backend) + SCHEDULE


class Proc:
    """One scheduler (or worker) process with its log; started = a line in the log."""

    def __init__(self, side: Side, argv: list[str], label: str, ready: str,
                 clean: bool) -> None:
        self.label, self.ready = label, ready
        self.clean = clean  # qmulti's own: a non-zero exit on TERM is a finding
        self.log = side.dir / f"{label}.log"
        self.proc = procs.spawn(argv, side.dir, side.env(), self.log)

    def started(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.label} exited ({self.proc.returncode}):\n"
                               f"{procs.tail(self.log)}")
        return self.ready in self.log.read_text(errors="replace")

    def rss_mib(self) -> float:
        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def stop(self, out: Outcome) -> None:
        alive = self.proc.poll() is None
        procs.stop_group(self.proc, timeout=15)
        if self.clean and alive and self.proc.returncode != 0:
            out.errors.append(f"{self.label}: exit {self.proc.returncode} on TERM")


def _hold(seconds: float, running: list[Proc]) -> None:
    """Let the schedulers work for `seconds` while checking they stay up."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for p in running:
            p.started()  # raises if it exited
        time.sleep(0.2)


def _started(running: list[Proc]) -> None:
    procs.wait_until(lambda: all(p.started() for p in running), 60,
                     ", ".join(p.label for p in running) + " started", interval=0.05)


def _run(out: Outcome, what: str, body: Callable[[list[Proc]], None]) -> None:
    """Run `body` with a list it fills with the processes it starts; all are stopped
    (and a failure recorded) whatever happens."""
    running: list[Proc] = []
    try:
        out.attempt(what, lambda: body(running))
    finally:
        for p in running:
            p.stop(out)


def run_qmulti(root: Path, run_id: str, server: RedisProc, seconds: float) -> Outcome:
    side = QmultiBeatSide(root / "beat", run_id)
    side.write_tasks(server.url(0), None)
    out = Outcome()

    def body(running: list[Proc]) -> None:
        py = sys.executable
        for i in range(2):
            running.append(Proc(side, [py, "-m", "qmulti", "-A", "tasks", "-B", "-c", "1",
                                       "-n", f"b{i}@%h", "-l", "info"], f"qworker-B{i}",
                                " in zone ", True))
        running.append(Proc(side, [py, "-m", "qmulti.supervisor", "beat", "-A", "tasks",
                                   "-l", "info"], "qmulti-beat", " in zone ", True))
        _started(running)
        _hold(seconds, running)
        out.figures["rss_beat"] = running[2].rss_mib()
        out.figures["rss_node"] = running[0].rss_mib()
        stopped_at = time.time()
        for p in running:
            p.stop(out)
        tally = qmulti_tally(beatlog.read(p.log for p in running), ENTRIES, stopped_at)
        _figures(out, tally)
        out.figures["doubled"] = tally.doubled

    _run(out, "qmulti: 3 schedulers", body)
    return out


def run_celery(root: Path, run_id: str, server: RedisProc, seconds: float,
               overlap: float) -> Outcome:
    side = CeleryBeatSide(root / "beat", run_id)
    side.write_tasks(server.url(2), server.url(3))
    out = Outcome()
    celery = str(BIN / "celery")

    def beat(label: str) -> Proc:
        return Proc(side, [celery, "-A", "tasks", "beat", "-l", "info",
                           "-s", str(side.dir / f"{label}-schedule"),
                           f"--pidfile={side.dir / label}.pid"], label, "beat: Starting...",
                    False)

    def body(running: list[Proc]) -> None:
        running.append(Proc(side, [celery, "-A", "tasks", "worker", "-c", "1", "-P",
                                   "prefork", "-n", "cw@%h", "-l", "info"], "celery-worker",
                            " ready.", False))
        running.append(beat("celery-beat-a"))
        _started(running)
        alone_from = time.time()  # the worker's start-up is not part of the window
        _hold(seconds, running)
        out.figures["rss_beat"] = running[1].rss_mib()
        alone_until = time.time()
        running.append(beat("celery-beat-b"))
        _started(running)
        both_from = time.time()
        _hold(overlap, running)
        stopped_at = time.time()
        for p in running:
            p.stop(out)
        a = celery_sends(running[1].log)
        alone = celery_tally([s for s in a if alone_from <= s[1] < alone_until], ENTRIES)
        _figures(out, alone)
        out.figures["drift"] = 1000 * alone.drift
        b = celery_sends(running[2].log)
        out.figures["overlap"] = stopped_at - both_from
        out.figures["ticks_two"] = sum(1 for _, at in a if both_from <= at <= stopped_at)
        out.figures["doubled_two"] = sum(1 for _, at in b if both_from <= at <= stopped_at)

    _run(out, "celery: beat", body)
    return out


def _figures(out: Outcome, tally: Tally) -> None:
    out.figures.update(sent=tally.sent, missed=tally.missed, timed=len(tally.lateness))
    for key, q in (("p50", 0.5), ("p99", 0.99), ("max", 1.0)):
        value = tally.pct_ms(q)
        if value is not None:
            out.figures[key] = value


def run(root: Path, run_id: str, server: RedisProc, seconds: float) -> dict[str, Outcome]:
    server.flush()
    ours = run_qmulti(root, run_id, server, seconds)
    celery = run_celery(root, run_id, server, seconds, overlap=min(10.0, seconds * 0.6))
    return {"qmulti": ours, "celery": celery}


def _ms(f: dict[str, float], key: str) -> str:
    return f"{f[key]:.0f}" if key in f else "n/a"


def _lateness(f: dict[str, float]) -> str:
    return f"lateness p50 {_ms(f, 'p50')} p99 {_ms(f, 'p99')} max {_ms(f, 'max')} ms"


def render(outs: dict[str, Outcome], seconds: float) -> str:
    ours, celery = outs["qmulti"].figures, outs["celery"].figures
    lines = [f"Beat (periodic tasks) on Redis, {seconds:.0f} s, entries every 1 s and every 5 s"]
    if "sent" in ours:
        lines.append(f"  qmulti, 3 schedulers (2 qworker -B + 1 qmulti beat): "
                     f"{ours['sent']:.0f} ticks sent, {ours['doubled']:.0f} doubled, "
                     f"{ours['missed']:.0f} missed; {_lateness(ours)} "
                     f"({ours['timed']:.0f} timed)")
        lines.append(f"    RSS: qmulti beat {ours.get('rss_beat', 0):.1f} MiB, "
                     f"qworker -B main process {ours.get('rss_node', 0):.1f} MiB")
    if "sent" in celery:
        lines.append(f"  celery, 1 beat: {celery['sent']:.0f} ticks sent, "
                     f"{celery['missed']:.0f} missed; {_lateness(celery)} "
                     f"({celery['timed']:.0f} timed; due = last run + interval, so the "
                     f"schedule slid {_ms(celery, 'drift')} ms off its first tick's grid)")
        lines.append(f"    RSS: celery beat {celery.get('rss_beat', 0):.1f} MiB")
    if "doubled_two" in celery:
        lines.append(f"  celery, 2 beats for {celery['overlap']:.0f} s (for information): "
                     f"the second beat sent {celery['doubled_two']:.0f} ticks again beside "
                     f"the first one's {celery['ticks_two']:.0f}")
    if "p99" in ours and "p99" in celery and ours["p99"] > 0:
        lines.append(f"  lateness p99 celery/qmulti: {celery['p99'] / ours['p99']:.2f}")
    if "max" in ours:
        met = ours["max"] <= TARGET_MS and ours["doubled"] == 0 and ours["missed"] == 0
        lines.append(f"  target each tick within {TARGET_MS:.0f} ms, 0 doubled, 0 missed: "
                     f"{'met' if met else 'MISSED'}")
    for who, out in outs.items():
        lines += [f"  problem ({who}): {e}" for e in out.errors]
    lines.append(f"beat: qmulti 3 schedulers lateness p99 {_ms(ours, 'p99')} ms max "
                 f"{_ms(ours, 'max')}, doubled {_ms(ours, 'doubled')}, missed "
                 f"{_ms(ours, 'missed')}; celery 1 beat p99 {_ms(celery, 'p99')} ms; "
                 f"celery 2 beats doubled {_ms(celery, 'doubled_two')} of "
                 f"{_ms(celery, 'ticks_two')} ticks")
    return "\n".join(lines)
