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
    revoked_in_the_queue_never_runs(tmp_path, redis_server.url)


def revoked_in_the_queue_never_runs(root: Path, broker: str, backend: str | None = None) -> None:
    """A one-child node, prefetch 1: the task revoked behind a slow one is skipped (the
    RabbitMQ suite runs it too, with a Redis backend)."""
    config = f"app.conf.broker_url = {broker!r}\napp.conf.worker_prefetch_multiplier = 1\n"
    if backend:
        config += f"app.conf.result_backend = {backend!r}\n"
    write_tasks(root, extra_config=config)
    app = App("producer", broker=broker, backend=backend)
    with NodeProcess(root, "-A", "tasks", "-c", "1", "-l", "info") as node:
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
