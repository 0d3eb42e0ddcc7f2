"""Drill: a pool child that cannot store an outcome for STORE_PATIENCE (60 s) gives up.

Issue 11, defect 3's last item: the child used to end with a traceback. Here a task
begins, Redis stops for longer than the child's patience, and the child must leave with
one log line (no traceback); the node starts a new child, and once Redis is back the
task's lease goes back and it runs again to SUCCESS: nothing lost.
"""

from __future__ import annotations

import json
import signal
import uuid
from pathlib import Path

import pytest
from drill_support import Node, Project, envelope, result_doc, run_starts, write_tasks

from helpers import wait_for
from qmulti.node.retry import STORE_PATIENCE
from redis_server import RedisServer


@pytest.mark.timeout(200)
def test_a_child_out_of_patience_leaves_with_one_line(tmp_path: Path) -> None:
    from qmulti.brokers.redis import RedisStore

    project = Project.make(tmp_path / "proj")
    with RedisServer(tmp_path, appendonly=True) as server:
        runs = write_tasks(project.path, server.url)
        store = RedisStore(server.url)
        tid = str(uuid.uuid4())
        store.publish("celery", uuid.uuid4().hex,
                      json.dumps(envelope(tid, "tasks.stamped", [7, 1.0])).encode())
        store.close()
        node = Node(project, "-A", "tasks", "-c", "1", "-l", "info", "-n", "w1@%h")
        try:
            node.wait_ready()
            wait_for(lambda: "7" in run_starts(runs), 30, "the task to begin")
            server.stop()
            wait_for(lambda: "leaves:" in node.log(), STORE_PATIENCE + 30,
                     "the child to give up", interval=0.5)
            server.start()
            store = RedisStore(server.url)
            wait_for(lambda: (result_doc(store, tid) or {}).get("status") == "SUCCESS", 60,
                     "the task to run again", interval=0.2)
            store.close()
            node.proc.send_signal(signal.SIGTERM)
            assert node.proc.wait(60) == 0
        finally:
            node.close()
            project.kill_all()
    log = node.log()
    gave_up = [line for line in log.splitlines() if "leaves:" in line]
    print(f"\npatience drill: {gave_up} runs={len(run_starts(runs)['7'])}")
    assert len(gave_up) == 1 and "broker unreachable" in gave_up[0], log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert len(run_starts(runs)["7"]) == 2
