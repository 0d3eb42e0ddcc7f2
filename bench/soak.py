"""`python -m bench.soak`: the chaos drill at scale, with a report.

Three nodes on a private Redis (append-only, so a restart keeps every message) work
through tracked tasks while, every couple of seconds, a random node main process or
pool child is KILLed, and Redis restarts once. Each task appends "<n> <pid>" to a runs
file when it starts, so afterwards every re-run can be matched to a process that was
killed while running it. The promises checked: 0 lost (every task SUCCESS), and a task
runs more than once only if an earlier run was in a killed process.

Dead nodes are restarted by `qmulti supervise` when it works here, else by the drill
re-running `qmulti start` for them. `tests/drills/test_drill_chaos.py` runs the short
form in CI through `ChaosDrill`; this module's `main` is the long soak (not in CI):

    python -m bench.soak --tasks 10000 --duration 120
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.chaos_runs import count_reruns
from bench.redis_proc import RedisProc

TASKS = '''
import os
import time

from qmulti import App

app = App("tasks", broker={url!r}, backend={backend!r})
app.conf.update(worker_heartbeat_interval={beat!r}, worker_heartbeat_expiry={expiry!r})
RUNS = {runs!r}


@app.task(name="tasks.tracked")
def tracked(n, seconds=0.0):
    # O_APPEND: one whole line a run, whichever process writes it.
    fd = os.open(RUNS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, ("%d %d %.3f\\n" % (n, os.getpid(), time.time())).encode())
    finally:
        os.close(fd)
    if seconds:
        time.sleep(seconds)
    return n
'''


@dataclass
class ChaosConfig:
    tasks: int = 600
    nodes: int = 3
    concurrency: int = 2
    task_seconds: float = 0.1
    kill_every: float = 2.0
    chaos_for: float = 20.0  # seconds of killing at most (less when the work is done)
    main_share: float = 1 / 3  # how many kills hit a node's main process, not a child
    redis_restarts: int = 1
    drain_timeout: float = 60.0  # after the chaos, for the rest of the work
    heartbeat: float = 0.5
    expiry: float = 3.0
    restarter: str = "auto"  # auto: supervise if it works, else `qmulti start`; or one
    # RabbitMQ: a restart closes every connection, so a task running then (or begun from
    # the prefetch before its node noticed) is re-run; such re-runs are counted apart.
    outage_reruns: bool = False
    seed: int | None = None


@dataclass
class ChaosReport:
    sent: int = 0
    completed: int = 0
    lost: int = 0
    reruns: int = 0  # extra runs, all tasks together
    unexplained: list[str] = field(default_factory=list)  # re-runs with no killed run
    outage_reruns: int = 0  # re-runs of a run begun around a broker restart (outage_reruns)
    child_kills: int = 0
    main_kills: int = 0
    redis_restarts: int = 0
    node_restarts: int = 0  # by the drill (`qmulti start` mode); supervise does its own
    restarter: str = ""
    elapsed: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)

    @property
    def kills(self) -> int:
        return self.child_kills + self.main_kills

    def rerun_bound(self, concurrency: int) -> int:
        """A killed child was running one task; a killed main, one per child."""
        return self.child_kills + self.main_kills * concurrency

    def line(self) -> str:
        return (f"sent={self.sent} completed={self.completed} lost={self.lost} "
                f"re-run={self.reruns} unexplained-re-runs={len(self.unexplained)} "
                f"outage-re-runs={self.outage_reruns} "
                f"kills={self.kills} (children={self.child_kills} mains={self.main_kills}) "
                f"redis-restarts={self.redis_restarts} restarter={self.restarter} "
                f"node-restarts-by-drill={self.node_restarts} elapsed={self.elapsed:.1f}s "
                f"statuses={dict(self.statuses)}")


class ChaosDrill:
    """One chaos run in `root`; `close()` kills every process working in `root`."""

    def __init__(self, root: Path, url: str, restart_redis: Callable[[], None],
                 cfg: ChaosConfig, say: Callable[[str], None] = print,
                 backend: str | None = None) -> None:
        self.root = root
        self.url = url
        self.backend = backend  # results elsewhere than the broker (Redis beside amqp://)
        self.outages: list[tuple[float, float]] = []  # (down, up), unix time
        self.restart_redis = restart_redis
        self.cfg = cfg
        self.say = say
        self.rng = random.Random(cfg.seed)
        self.runs = root / "runs.log"
        self.names = [f"n{i + 1}" for i in range(cfg.nodes)]
        self.node_args = ["-A", "tasks", "-c", str(cfg.concurrency), "-l", "info"]
        self.killed: set[int] = set()
        self.supervise: subprocess.Popen[bytes] | None = None
        self.report = ChaosReport()

    # -- processes ---------------------------------------------------------------------
    def _qmulti(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        return subprocess.run([sys.executable, "-m", "qmulti.supervisor", *args], cwd=self.root,
                              env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def processes(self) -> list[psutil.Process]:
        found = []
        where = str(self.root)
        for proc in psutil.process_iter():
            if proc.pid == os.getpid():
                continue
            with contextlib.suppress(OSError, psutil.Error):
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                cwd = proc.cwd()
                if cwd == where or cwd.startswith(where + os.sep):
                    found.append(proc)
        return found

    def mains(self) -> dict[str, psutil.Process]:
        """Live node main processes by short node name (n1, n2...)."""
        out = {}
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                title = " ".join(proc.cmdline()).strip()
                if title.startswith("qworker: ") and title.split()[2:3] == ["main"]:
                    out[title.split()[1].split("@")[0]] = proc
        return out

    def _consuming(self) -> bool:
        mains = self.mains()
        if set(mains) != set(self.names):
            return False
        with contextlib.suppress(psutil.Error):
            return all(len(p.children()) >= self.cfg.concurrency for p in mains.values())
        return False

    def _wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def start_nodes(self) -> None:
        mode = self.cfg.restarter
        if mode in ("auto", "supervise"):
            out = open(self.root / "supervise.out", "wb")  # noqa: SIM115
            with out:
                env = dict(os.environ)
                env.pop("NOTIFY_SOCKET", None)
                self.supervise = subprocess.Popen(
                    [sys.executable, "-m", "qmulti.supervisor", "supervise", *self.names,
                     *self.node_args], cwd=self.root, env=env, stdin=subprocess.DEVNULL,
                    stdout=out, stderr=out, start_new_session=True)
            if self._wait(lambda: self._consuming() or self.supervise.poll() is not None, 30) \
                    and self.supervise.poll() is None:
                self.report.restarter = "supervise"
                return
            why = (self.root / "supervise.out").read_text(errors="replace").strip()[-300:]
            if mode == "supervise":
                raise RuntimeError(f"qmulti supervise did not bring the nodes up: {why}")
            self.say(f"chaos: qmulti supervise unusable here ({why or 'no output'}); "
                     "restarting dead nodes with qmulti start")
            self.kill_everything()
            self.supervise = None
        done = self._qmulti("start", *self.names, *self.node_args)
        if done.returncode != 0:
            raise RuntimeError(f"qmulti start failed: {done.stdout}{done.stderr}")
        self.report.restarter = "qmulti start"

    def revive(self) -> None:
        """`qmulti start` mode: start again every node whose main process is gone."""
        if self.supervise is not None:
            return
        missing = [n for n in self.names if n not in self.mains()]
        if missing:
            self._qmulti("start", *missing, *self.node_args, "--timeout", "20")
            self.report.node_restarts += len(missing)

    def kill_one(self) -> None:
        mains = self.mains()
        if not mains:
            return
        name = self.rng.choice(sorted(mains))
        main = mains[name]
        try:
            children = main.children()
            if self.rng.random() < self.cfg.main_share or not children:
                # Its children die with it (PDEATHSIG): each may have been running a task.
                self.killed.update([main.pid, *(c.pid for c in children)])
                main.kill()
                self.report.main_kills += 1
                # A child forked between the listing and the kill dies too: count it.
                self.killed.update(p.pid for p in self.processes()
                                   if _title(p).startswith(f"qworker: {name}@")
                                   and " child " in _title(p))
            else:
                child = self.rng.choice(children)
                self.killed.add(child.pid)
                child.kill()
                self.report.child_kills += 1
        except psutil.Error:
            pass

    def kill_everything(self) -> None:
        if self.supervise is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.supervise.pid, signal.SIGKILL)
        procs = self.processes()
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(procs, timeout=10)
        if self.supervise is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.supervise.wait(10)

    def stop_nodes(self) -> None:
        if self.supervise is not None:
            self.supervise.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.supervise.wait(30)
        else:
            self._qmulti("stopwait", *self.names, *self.node_args, "--timeout", "15")

    # -- the drill ---------------------------------------------------------------------
    def run(self) -> ChaosReport:
        from qmulti import App
        from qmulti.brokers.redis import RedisStore

        cfg, rep = self.cfg, self.report
        began = time.monotonic()
        (self.root / "tasks.py").write_text(textwrap.dedent(TASKS).format(
            url=self.url, backend=self.backend, beat=cfg.heartbeat, expiry=cfg.expiry,
            runs=str(self.runs)))
        self.start_nodes()
        producer = App("producer", broker=self.url, backend=self.backend)
        ids = [producer.send_task("tasks.tracked", (n, cfg.task_seconds), check=False).id
               for n in range(cfg.tasks)]
        rep.sent = len(ids)
        store = RedisStore(self.backend or self.url)
        pending = dict(enumerate(ids))

        def settle() -> None:
            for n, task_id in list(pending.items()):
                blob = _get(store, task_id)
                if blob is not None and b'"status":"SUCCESS"' in blob:
                    del pending[n]

        self.chaos(lambda: bool(pending), settle)
        rep.elapsed = time.monotonic() - began
        for task_id in ids:
            blob = _get(store, task_id)
            rep.statuses["PENDING" if blob is None else _status(blob)] += 1
        rep.completed = rep.statuses.get("SUCCESS", 0)
        rep.lost = rep.sent - rep.completed
        self._count_reruns()
        self.stop_nodes()
        return rep

    def chaos(self, pending: Callable[[], bool], settle: Callable[[], None]) -> None:
        """While `pending()`: one kill per `kill_every` on a fixed clock (the kill, the
        restart and `settle` eat into the period, not add to it), for `chaos_for` at most,
        with `redis_restarts` at random points; then up to `drain_timeout` for the rest.
        `settle` polls the outcome; it may fail while Redis restarts."""
        cfg = self.cfg
        chaos_began = time.monotonic()
        chaos_end = chaos_began + cfg.chaos_for
        restart_at = sorted(self.rng.uniform(0.2, 0.6) * cfg.chaos_for
                            for _ in range(cfg.redis_restarts))
        next_kill = chaos_began + cfg.kill_every
        while pending() and time.monotonic() < chaos_end:
            time.sleep(max(0.0, next_kill - time.monotonic()))  # the chaos's pace
            next_kill += cfg.kill_every
            if restart_at and time.monotonic() - chaos_began >= restart_at[0]:
                restart_at.pop(0)
                self._restart()
            self.kill_one()
            self.revive()
            with contextlib.suppress(Exception):  # Redis may be restarting
                settle()
        for _ in restart_at:  # the work ended early: the restart still happens once
            self._restart()
        drain_end = time.monotonic() + cfg.drain_timeout
        while pending() and time.monotonic() < drain_end:
            self.revive()
            with contextlib.suppress(Exception):
                settle()
            if pending():
                time.sleep(0.3)

    def _restart(self) -> None:
        down = time.time()
        self.restart_redis()
        self.outages.append((down, time.time()))
        self.report.redis_restarts += 1

    def _count_reruns(self) -> None:
        slack = self.cfg.task_seconds + 1.0
        count_reruns(self.report, self.runs, self.killed,
                     [(down - slack, up + slack) for down, up in self.outages]
                     if self.cfg.outage_reruns else [])

    def close(self) -> None:
        self.kill_everything()


def read_runs(path: Path) -> dict[str, list[int]]:
    """The runs log (`<key> <pid> [<time begun>]` a line, one a run): the pids that ran
    each key."""
    out: dict[str, list[int]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 2:
                out.setdefault(fields[0], []).append(int(fields[1]))
    return out


def _title(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline()).strip()
    except psutil.Error:
        return ""


def _get(store: object, task_id: str) -> bytes | None:
    return store.get(task_id)  # type: ignore[attr-defined]


def _status(blob: bytes) -> str:
    import json

    return str(json.loads(blob).get("status"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=120.0,
                        help="seconds of chaos at most (default 120)")
    parser.add_argument("--task-seconds", type=float, default=0.01)
    parser.add_argument("--kill-every", type=float, default=2.0)
    parser.add_argument("--redis-restarts", type=int, default=1)
    parser.add_argument("--restarter", choices=("auto", "supervise", "start"), default="auto")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    cfg = ChaosConfig(tasks=args.tasks, chaos_for=args.duration, task_seconds=args.task_seconds,
                      kill_every=args.kill_every, redis_restarts=args.redis_restarts,
                      restarter=args.restarter, seed=args.seed, drain_timeout=600.0)
    root = Path(tempfile.mkdtemp(prefix="qmulti-soak-"))
    redis = RedisProc(root, run_id=root.name, appendonly=True).start()
    project = root / "project"
    project.mkdir()
    drill = ChaosDrill(project, redis.url(0), redis.restart, cfg)
    try:
        rep = drill.run()
    finally:
        drill.close()
        redis.stop()
    bound = rep.rerun_bound(cfg.concurrency)
    print("qmulti chaos soak")
    print(f"  {rep.line()}")
    print(f"  re-run bound (child kills + main kills x concurrency) = {bound}")
    for line in rep.unexplained[:20]:
        print(f"  unexplained: {line}")
    ok = rep.lost == 0 and not rep.unexplained and rep.reruns <= bound
    print(f"  verdict: {'OK' if ok else 'FAILED'} (work dir {root})")
    if ok:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
