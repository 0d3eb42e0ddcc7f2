"""Drill: KILL a random node main process or pool child every 2 s, restart Redis once.

Three nodes (`-c 2`) on a private append-only Redis work through the issue's 1,000 tracked
tasks of 0.06 s (the short CI form; `python -m bench.soak` runs 10,000). Dead nodes come back
through `qmulti supervise` when it works here, else the drill re-runs `qmulti start`
for them. The heartbeat expiry is 3 s so that a killed main's prefetched tasks return
quickly. Asserted: 0 lost (every task SUCCESS), and every re-run is of a task whose
earlier run was in a process that was killed, so re-runs <= child kills + main kills x
concurrency. The engine is `bench.soak.ChaosDrill`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from drill_support import Project

from bench.soak import ChaosConfig, ChaosDrill
from redis_server import RedisServer


@pytest.mark.timeout(170)
def test_chaos_loses_nothing_and_reruns_only_killed_work(tmp_path: Path) -> None:
    project = Project.make(tmp_path / "proj")
    cfg = ChaosConfig(tasks=1000, task_seconds=0.06, chaos_for=24.0, kill_every=2.0,
                      drain_timeout=60.0)
    with RedisServer(tmp_path, appendonly=True) as server:
        drill = ChaosDrill(project.path, server.url, lambda: server.restart(down_for=1.0), cfg)
        try:
            rep = drill.run()
        finally:
            drill.close()
            project.kill_all()
    bound = rep.rerun_bound(cfg.concurrency)
    print(f"\nchaos drill: {rep.line()} re-run-bound={bound}")
    assert rep.redis_restarts == 1
    assert rep.kills >= 3, "too few kills to call it chaos"
    assert rep.lost == 0, f"{rep.lost} task(s) lost: {dict(rep.statuses)}"
    assert not rep.unexplained, "re-runs not explained by a kill:\n" + "\n".join(
        rep.unexplained[:20])
    assert rep.reruns <= bound
