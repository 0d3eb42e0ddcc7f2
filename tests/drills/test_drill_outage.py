"""Drill: the broker goes away for twice the heartbeat expiry under busy nodes, then back.

Issue 11's third defect: when Redis came back, the first node to heartbeat judged the
others dead (their heartbeats were older than the expiry, through no fault of theirs)
and requeued leases whose tasks their children had already begun again. Here 300
tasks run on 3 nodes (`-c 2`); a private append-only redis-server is stopped for 2x the
expiry and started again on the same port. Asserted: 0 lost; no task whose first start
came after the recovery ran twice; `qmulti status` exits 1 while Redis is down and 0
once it is back.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from pathlib import Path

import pytest
from drill_support import Node, Project, envelope, result_doc, run_starts, statuses, write_tasks

from helpers import wait_for
from redis_server import RedisServer

BEAT, EXPIRY = 0.5, 3.0
TASKS = 300
NODES = ("w1", "w2", "w3")


@pytest.mark.timeout(170)
def test_outage_longer_than_the_expiry_reruns_nothing_begun_after_it(tmp_path: Path) -> None:
    from qmulti.brokers.redis import RedisStore

    project = Project.make(tmp_path / "proj")
    with RedisServer(tmp_path, appendonly=True) as server:
        runs = write_tasks(project.path, server.url, beat=BEAT, expiry=EXPIRY)
        store = RedisStore(server.url)
        ids = [str(uuid.uuid4()) for _ in range(TASKS)]
        for n, tid in enumerate(ids):
            body = envelope(tid, "tasks.stamped", [n, 0.1])
            store.publish("celery", uuid.uuid4().hex, json.dumps(body).encode())
        store.close()
        nodes = [Node(project, "-A", "tasks", "-c", "2", "-l", "info", "-n", f"{name}@%h",
                      "--pidfile", f"{name}.pid") for name in NODES]
        status = ("status", *NODES, "-b", server.url)
        try:
            for node in nodes:
                node.wait_ready()
            assert project.qmulti(*status).returncode == 0
            wait_for(lambda: len(run_starts(runs)) >= 40, 60, "work under way")
            server.stop()
            down_at = time.monotonic()
            during = project.qmulti(*status)
            assert during.returncode == 1, during.stdout + during.stderr
            # The outage is the fault under test: 2x the expiry, counted from the stop.
            time.sleep(max(0.0, 2 * EXPIRY - (time.monotonic() - down_at)))
            server.start()
            recovered = time.time()

            store = RedisStore(server.url)

            def settled() -> bool:
                return statuses(store, ids)["SUCCESS"] == TASKS

            wait_for(settled, 90, "every task SUCCESS", interval=0.5)
            assert project.qmulti(*status).returncode == 0
            for node in nodes:
                node.proc.send_signal(signal.SIGTERM)
            for node in nodes:
                node.proc.wait(60)
            logs = "".join(node.log() for node in nodes)
            assert store.stats().leased == 0
            wrong = [t for n, t in enumerate(ids) if result_doc(store, t)["result"] != n]
            assert not wrong, wrong[:3]
            store.close()
        finally:
            for node in nodes:
                node.close()
            project.kill_all()

    starts = run_starts(runs)
    after = {n: at for n, at in starts.items() if at[0] > recovered}
    twice_after = {n: len(at) for n, at in after.items() if len(at) > 1}
    reruns = {n: len(at) for n, at in starts.items() if len(at) > 1}
    print(f"\noutage drill: tasks={TASKS} down={2 * EXPIRY:g}s begun-after={len(after)} "
          f"re-run-after={len(twice_after)} re-run-before={len(reruns) - len(twice_after)}")
    assert len(starts) == TASKS
    assert after, "no task began after the recovery: the drill proved nothing"
    assert not twice_after, f"tasks first begun after the recovery ran twice: {twice_after}"
    assert "Traceback" not in logs, logs[-3000:]
