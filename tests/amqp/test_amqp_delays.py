"""Issue 16's delay drill: 1,000 countdowns spread over 30 s wait in the broker's TTL
ladder, none held by a node; all run once, none early. Prints the lateness figures
(the README quotes them)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from test_amqp_acceptance import AmqpProject, _r


@pytest.mark.long
@pytest.mark.timeout(240)
def test_1000_countdowns_over_30s_run_once_never_early(tmp_path: Path, amqp_url: str,
                                                        redis_server: Any) -> None:
    project = AmqpProject(tmp_path, amqp_url, redis_server.url)
    try:
        project.node("a@%h", "-c", "2")
        project.node("b@%h", "-c", "2")
        project.send("work", 0.0, "warm-up", countdown=0.1)  # the ladder is declared once
        start = time.time() + 3.0  # publishing 1,000 with confirms takes ~2 s (a late
        # one would be sent undelayed and still run after its eta)
        etas: dict[str, float] = {}
        for i in range(1000):
            eta = start + 30.0 * i / 1000
            etas[project.send("work", 0.0, i, eta=eta)] = eta
        assert project.stats().scheduled >= 500  # in the broker, not in a node
        assert _r.results(project, list(etas), 120) == list(range(1000))
        late = []
        for tid, eta in etas.items():
            runs = project.runs_of(tid)
            assert len(runs) == 1, (tid, runs)
            assert runs[0][1] >= eta, (tid, runs[0][1] - eta)
            late.append(runs[0][1] - eta)
        late.sort()
        p50, p99, worst = late[500], late[989], late[-1]
        print(f"\namqp countdown lateness: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms,"
              f" max {worst * 1000:.0f} ms")
        assert p99 < 2.0
    finally:
        project.close()
