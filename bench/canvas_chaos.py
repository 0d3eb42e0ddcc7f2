"""The canvas chaos drill: chords and chains on three nodes while processes are KILLed.

Built on `bench.soak.ChaosDrill` (nodes, kills, restarts, re-run accounting). Chords:
`chords` chords of `members` tasks each, one member of every chord published twice (a
duplicate message of the same task); each body appends one line a run to a file. The
promises: every chord's body message is sent once (runs of a body beyond the first
are explained by a killed process), and its result is the sum of its members. Chains:
`chains` chains of `steps` steps; every chain completes with every step's result, and
a step runs more than once only if an earlier run was in a killed process.

    python -m bench.canvas_chaos --mode chords --store redis
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import textwrap
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.soak import ChaosConfig, ChaosDrill, read_runs

TASKS = '''
import os
import time

from qmulti import App

app = App("tasks", broker={url!r})
app.conf.update(worker_heartbeat_interval={beat!r}, worker_heartbeat_expiry={expiry!r})
RUNS = {runs!r}
BODIES = {bodies!r}


def _line(path, text):
    # O_APPEND: one whole line a run, whichever process writes it.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (text + "\\n").encode())
    finally:
        os.close(fd)


@app.task(name="tasks.member")
def member(key, value, seconds=0.0):
    _line(RUNS, "%s %d" % (key, os.getpid()))
    if seconds:
        time.sleep(seconds)
    return value


@app.task(name="tasks.body")
def body(values, key):
    _line(BODIES, "%s %d %d" % (key, sum(values), os.getpid()))
    return sum(values)


@app.task(name="tasks.step")
def step(acc, key, seconds=0.0):
    _line(RUNS, "%s %d" % (key, os.getpid()))
    if seconds:
        time.sleep(seconds)
    return acc + 1
'''


@dataclass
class CanvasChaosConfig(ChaosConfig):
    mode: str = "chords"  # or "chains"
    chords: int = 200
    members: int = 50
    chains: int = 500
    steps: int = 5


@dataclass
class CanvasReport:
    mode: str = ""
    kills: int = 0
    child_kills: int = 0
    main_kills: int = 0
    done: int = 0  # chords whose body succeeded / chains whose last step did
    expected: int = 0
    wrong: list[str] = field(default_factory=list)  # a body's or chain's wrong result
    double_fired: list[str] = field(default_factory=list)  # body runs not explained
    missing_steps: int = 0
    reruns: int = 0
    unexplained: list[str] = field(default_factory=list)
    duplicates: int = 0
    elapsed: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        return (f"mode={self.mode} done={self.done}/{self.expected} wrong={len(self.wrong)} "
                f"double-fired={len(self.double_fired)} missing-steps={self.missing_steps} "
                f"duplicated-members={self.duplicates} re-runs={self.reruns} "
                f"unexplained={len(self.unexplained)} kills={self.kills} "
                f"(children={self.child_kills} mains={self.main_kills}) "
                f"elapsed={self.elapsed:.1f}s statuses={dict(self.statuses)}")


class CanvasChaosDrill(ChaosDrill):
    cfg: CanvasChaosConfig

    def run(self) -> CanvasReport:  # type: ignore[override]
        from qmulti import App
        from qmulti.canvas import chain, chord, signature
        from qmulti.canvas_plan import Plan, freeze, plan

        cfg = self.cfg
        rep = CanvasReport(mode=cfg.mode)
        began = time.monotonic()
        self.bodies = self.root / "bodies.log"
        (self.root / "tasks.py").write_text(textwrap.dedent(TASKS).format(
            url=self.url, beat=cfg.heartbeat, expiry=cfg.expiry, runs=str(self.runs),
            bodies=str(self.bodies)))
        self.start_nodes()
        app = App("producer", broker=self.url)
        member, body, step = (signature(n, app=app) for n in ("tasks.member", "tasks.body",
                                                               "tasks.step"))
        finals: dict[str, Any] = {}  # key -> the result to check
        all_ids: list[str] = []
        self.dup_keys: set[str] = set()
        out = Plan()
        if cfg.mode == "chords":
            for c in range(cfg.chords):
                header = [member.clone((f"c{c}.{i}", i + 1, cfg.task_seconds))
                          for i in range(cfg.members)]
                sig = chord(header, body.clone(kwargs={"key": f"c{c}"}), app=app)
                finals[f"c{c}"] = freeze(sig, app)
                all_ids += [r.id for r in finals[f"c{c}"].parent.results]
                before = len(out.messages)
                plan(app, sig, out)
                k = self.rng.randrange(before, len(out.messages))  # publish it twice
                dup = out.messages[k]
                out.messages.append(type(dup)(dup.queue, dup.mid + "-dup", dup.body, None))
                self.dup_keys.add(json.loads(dup.body)["payload"][0][0])
            rep.duplicates = len(self.dup_keys)
        else:
            for c in range(cfg.chains):
                sig = chain([step.clone((0, f"s{c}.0", cfg.task_seconds))] +
                            [step.clone((f"s{c}.{k}", cfg.task_seconds))
                             for k in range(1, cfg.steps)], app=app)
                finals[f"s{c}"] = last = freeze(sig, app)
                while last is not None:
                    all_ids.append(last.id)
                    last = last.parent
                plan(app, sig, out)
        rep.expected = len(finals)
        for chord_id, size, msg in out.chords:
            app.broker.chord_init(chord_id, size, msg)
        app.broker.publish_many(out.messages)
        backend = app.backend
        pending = dict(finals)

        def settle() -> None:
            for key, res in list(pending.items()):
                blob = backend.get(res.id)
                if blob is not None and json.loads(blob).get("status") in (
                        "SUCCESS", "FAILURE"):
                    del pending[key]

        self.chaos(lambda: bool(pending), settle)
        rep.elapsed = time.monotonic() - began
        want = cfg.members * (cfg.members + 1) // 2 if cfg.mode == "chords" else cfg.steps
        for key, res in finals.items():
            doc = _doc(backend, res.id)
            rep.statuses[doc.get("status", "PENDING")] += 1
            if doc.get("status") == "SUCCESS":
                rep.done += 1
                if doc.get("result") != want:
                    rep.wrong.append(f"{key}: {doc.get('result')!r} != {want}")
        if cfg.mode == "chains":
            rep.missing_steps = sum(1 for i in all_ids
                                    if _doc(backend, i).get("status") != "SUCCESS")
        self._account(rep)
        self.stop_nodes()
        app.close()
        return rep

    def _account(self, rep: CanvasReport) -> None:
        rep.child_kills, rep.main_kills = self.report.child_kills, self.report.main_kills
        rep.kills = rep.child_kills + rep.main_kills
        for key, pids in read_runs(self.runs).items():
            extra = len(pids) - 1 - (1 if key in self.dup_keys else 0)
            if extra <= 0:
                continue
            rep.reruns += extra
            if sum(1 for p in pids if p in self.killed) < extra:
                rep.unexplained.append(f"{key} ran in pids {pids}")
        bodies: dict[str, list[int]] = {}
        if self.bodies.exists():
            for line in self.bodies.read_text().splitlines():
                key, _, pid = line.split()
                bodies.setdefault(key, []).append(int(pid))
        for key, pids in bodies.items():
            if len(pids) - 1 > sum(1 for p in pids[:-1] if p in self.killed):
                rep.double_fired.append(f"body {key} ran in pids {pids}")


def _doc(backend: Any, task_id: str) -> dict[str, Any]:
    blob = backend.get(task_id)
    return {} if blob is None else json.loads(blob)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.canvas_chaos")
    parser.add_argument("--mode", choices=("chords", "chains"), default="chords")
    parser.add_argument("--store", choices=("redis", "sqlite"), default="redis")
    parser.add_argument("--duration", type=float, default=60.0)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="qmulti-canvas-chaos-"))
    project = root / "project"
    project.mkdir()
    redis = None
    if args.store == "redis":
        from bench.redis_proc import RedisProc

        redis = RedisProc(root, run_id=root.name, appendonly=True).start()
        url = redis.url(0)
    else:
        url = f"sqlite:///{project / 'q.sqlite3'}"
    cfg = CanvasChaosConfig(mode=args.mode, chaos_for=args.duration, redis_restarts=0,
                            task_seconds=0.0, drain_timeout=120.0)
    drill = CanvasChaosDrill(project, url, lambda: None, cfg)
    try:
        rep = drill.run()
    finally:
        drill.close()
        if redis is not None:
            redis.stop()
    print(rep.line())
    ok = (rep.done == rep.expected and not rep.wrong and not rep.double_fired
          and not rep.unexplained and not rep.missing_steps)
    print("verdict:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
