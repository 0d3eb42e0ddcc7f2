"""On Redis the node learns of a REVOKED mark from `start` itself (no extra read per
task): a task revoked while queued behind a slow one never runs, on a real node."""

from __future__ import annotations

from pathlib import Path

import pytest
from node_fixtures import NodeProcess, write_tasks

from helpers import wait_for
from qmulti import App


@pytest.mark.timeout(60)
def test_a_task_revoked_in_the_queue_never_runs(tmp_path: Path, redis_server) -> None:
    write_tasks(tmp_path, extra_config=f"app.conf.broker_url = {redis_server.url!r}\n"
                "app.conf.worker_prefetch_multiplier = 1\n")
    app = App("producer", broker=redis_server.url)
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "1", "-l", "info") as node:
        node.wait_ready()
        slow = app.send_task("tasks.slow", (1.5, "slow"))
        victim = app.send_task("tasks.pid")
        wait_for(lambda: slow.state == "STARTED", 20, "slow task started")
        victim.revoke()
        assert slow.get(timeout=20) == "slow"
        after = app.send_task("tasks.add", (2, 3))
        assert after.get(timeout=20) == 5  # the queue went past the revoked one
        assert victim.state == "REVOKED"
        log = node.stderr()
        assert f"[{victim.id}] was revoked; not running it" in log, log
        assert f"tasks.pid[{victim.id}] succeeded" not in log
    app.close()
