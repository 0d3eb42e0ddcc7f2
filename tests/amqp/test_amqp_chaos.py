"""Issue 16's chaos drill on amqp://: 1,000 tasks, three nodes under `qmulti supervise`,
a KILL of a random node main process or pool child every 2 s, and one restart of the
broker, a private rabbitmq-server (the machine's is shared). Results go to a private
Redis. The engine is tests/drills' `bench.soak.ChaosDrill`.

Asserted: 0 lost; every re-run is of a task whose earlier run was in a killed process,
or begun around the broker's restart. The restart closes every connection, so RabbitMQ
returns every unacked message: a task running then, or begun from a prefetch before its
node noticed, runs again (at least once, never lost). Those are counted apart and
bounded by what the nodes can hold at once (3 nodes x 2 children x prefetch 4).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.soak import ChaosConfig, ChaosDrill


@pytest.mark.long
@pytest.mark.timeout(240)
def test_chaos_on_amqp_loses_nothing(tmp_path: Path, private_rabbit: Any,
                                     redis_server: Any) -> None:
    from drill_support import Project

    project = Project.make(tmp_path / "proj")
    cfg = ChaosConfig(tasks=1000, task_seconds=0.06, chaos_for=24.0, kill_every=2.0,
                      drain_timeout=60.0, outage_reruns=True)
    drill = ChaosDrill(project.path, private_rabbit.url,
                       lambda: private_rabbit.restart(down_for=1.0), cfg,
                       backend=redis_server.url)
    try:
        rep = drill.run()
    finally:
        drill.close()
        project.kill_all()
    bound = rep.rerun_bound(cfg.concurrency)
    print(f"\namqp chaos drill: {rep.line()} re-run-bound={bound}")
    assert rep.redis_restarts == 1  # the broker's restart, whatever the broker
    assert rep.kills >= 3, "too few kills to call it chaos"
    assert rep.lost == 0, f"{rep.lost} task(s) lost: {dict(rep.statuses)}"
    assert not rep.unexplained, "re-runs not explained by a kill or the restart:\n" + (
        "\n".join(rep.unexplained[:20]))
    assert rep.outage_reruns <= cfg.nodes * cfg.concurrency * 4
    assert rep.reruns <= bound + rep.outage_reruns
