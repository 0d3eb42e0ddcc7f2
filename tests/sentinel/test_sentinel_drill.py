"""Drill: the Redis master is KILLed under 3 busy nodes and a producer; Sentinel promotes
the replica; every process follows it without a restart.

1,000 tasks are sent through `sentinel://` while 3 nodes (`-c 2`) run them; when ~400
have begun, the master gets SIGKILL. Once the replica is promoted the old master is
started again (empty: no persistence), and Sentinel makes it the new master's replica.
- with `wait_replicas=1`: every task `delay()` returned for ends SUCCESS (0 lost), and no
  task first begun after the promotion runs twice;
- without: how many are lost is counted and printed, not asserted (Redis replicates
  asynchronously: a publish or a result the master acknowledged in the last moment
  before the kill may never have reached the replica).
Both: no node is reaped for the failover (it outlasts the heartbeat expiry), each node
logs the new master, `qmulti status` names it and its replica, no password anywhere.
"""

from __future__ import annotations

import json
import signal
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from drill_support import Node, Project, run_starts, statuses
from sentinel_cluster import PASSWORD, SentinelCluster

from helpers import wait_for
from qmulti import App
from qmulti.brokers import create_broker

BEAT, EXPIRY = 0.5, 3.0
TASKS = 1000
KILL_AT = 400
NODES = ("w1", "w2", "w3")
MOVED = "Redis master 'mymaster' is now at"

TASKS_PY = '''
import os
import time

from qmulti import App

app = App("tasks", broker={url!r}, broker_transport_options={options!r})
app.conf.update(worker_heartbeat_interval={beat!r}, worker_heartbeat_expiry={expiry!r})


@app.task(name="tasks.stamped")
def stamped(n, seconds=0.0):
    fd = os.open({runs!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, ("%s %.6f\\n" % (n, time.time())).encode())
    finally:
        os.close(fd)
    time.sleep(seconds)
    return n
'''


class Producer(threading.Thread):
    """Sends TASKS tasks at a steady pace; keeps what each call returned or raised."""

    def __init__(self, app: App, pace: float) -> None:
        super().__init__(daemon=True)
        self.app, self.pace = app, pace
        self.sent: dict[int, str] = {}  # n -> task id, for each delay() that returned
        self.errors: list[str] = []
        self.longest = 0.0

    def run(self) -> None:
        for n in range(TASKS):
            started = time.monotonic()
            try:
                self.sent[n] = self.app.send_task("tasks.stamped", (n, 0.01)).id
            except Exception as exc:  # counted; the drill asserts on them
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self.longest = max(self.longest, time.monotonic() - started)
            time.sleep(self.pace)


def _drill(tmp_path: Path, wait_replicas: int) -> None:
    project = Project.make(tmp_path / "proj")
    with SentinelCluster(tmp_path) as cluster:
        options = cluster.options(failover_timeout=30.0)
        if wait_replicas:
            options.update(wait_replicas=wait_replicas, wait_timeout_ms=500)
        runs = project.path / "runs.log"
        (project.path / "tasks.py").write_text(textwrap.dedent(TASKS_PY).format(
            url=cluster.url, options=options, beat=BEAT, expiry=EXPIRY, runs=str(runs)))
        nodes = [Node(project, "-A", "tasks", "-c", "2", "-l", "info", "-n", f"{name}@%h",
                      "--pidfile", f"{name}.pid") for name in NODES]
        producer = Producer(App("producer", broker=cluster.url,
                                broker_transport_options=options), pace=0.004)
        try:
            for node in nodes:
                node.wait_ready()
            producer.start()
            wait_for(lambda: len(run_starts(runs)) >= KILL_AT, 90, f"{KILL_AT} tasks begun",
                     interval=0.05)
            old = cluster.master.port
            cluster.master.kill()
            killed_at = time.time()
            new = cluster.wait_promoted(old)
            promoted_at = time.time()
            cluster.master.start()  # back, empty: Sentinel makes it the new replica
            producer.join(120)
            assert not producer.is_alive(), "the producer hung"
            store = create_broker(cluster.url, **cluster.options())
            ids = list(producer.sent.values())

            def progress() -> tuple[int, int]:
                return statuses(store, ids)["SUCCESS"], len(run_starts(runs))

            if wait_replicas:
                wait_for(lambda: progress()[0] == len(ids), 120, "every task SUCCESS",
                         interval=0.5)
            else:  # the lost never finish: wait until nothing moves for 3 expiries
                last, still_since = progress(), time.monotonic()
                while progress()[0] < len(ids) and time.monotonic() - still_since < 3 * EXPIRY:
                    time.sleep(0.5)
                    now = progress()
                    if now != last:
                        last, still_since = now, time.monotonic()
            done = statuses(store, ids)["SUCCESS"]
            status = project.qmulti("status", *NODES, "-A", "tasks", "--json")
            for node in nodes:
                node.proc.send_signal(signal.SIGTERM)
            for node in nodes:
                node.proc.wait(60)
            logs = [node.log() for node in nodes]
            leased = store.stats().leased
            store.close()
        finally:
            for node in nodes:
                node.close()
            project.kill_all()

    starts = run_starts(runs)
    lost = len(ids) - done
    after = {n: at for n, at in starts.items() if at[0] > promoted_at}
    twice_after = sorted(n for n, at in after.items() if len(at) > 1)
    reruns = sum(1 for at in starts.values() if len(at) > 1)
    moved = sum(log.count(MOVED) for log in logs)
    print(f"\nsentinel drill (wait_replicas={wait_replicas}): sent={len(ids)} "
          f"refused={len(producer.errors)} lost={lost} re-run={reruns} "
          f"failover={promoted_at - killed_at:.1f}s longest-delay={producer.longest:.1f}s "
          f"'now at' lines={moved}")
    assert "Traceback" not in "".join(logs), "".join(logs)[-3000:]
    assert all(MOVED in log for log in logs), "a node did not log the new master"
    assert all(PASSWORD not in log for log in logs)
    assert not any("heartbeat expired" in log or "judged dead" in log for log in logs), \
        "a node was reaped for the failover"
    assert producer.longest < 30 + 10  # failover_timeout plus one socket timeout
    assert len(producer.errors) <= 1, producer.errors
    notable = [line for log in logs for line in log.splitlines()
               if any(w in line for w in ("Requeued", "Gave back", "lease", "judged", "ERROR"))]
    assert not twice_after, (f"tasks first begun after the promotion ran twice: "
                             f"{[(n, starts[n]) for n in twice_after]} {promoted_at}\n"
                             + "\n".join(notable[-30:]))
    assert PASSWORD not in status.stdout + status.stderr
    doc: dict[str, Any] = json.loads(status.stdout)
    assert doc["broker"]["sentinel"]["master"] == f"127.0.0.1:{new.port}", status.stdout
    assert f"127.0.0.1:{old}" in doc["broker"]["sentinel"]["replicas"], status.stdout
    if wait_replicas:
        assert lost == 0, f"{lost} task(s) delay() returned for never ran"
        assert leased == 0


@pytest.mark.timeout(400)
def test_failover_with_wait_replicas_loses_nothing(tmp_path: Path) -> None:
    _drill(tmp_path, wait_replicas=1)


@pytest.mark.timeout(400)
def test_failover_without_wait_counts_what_it_lost(tmp_path: Path) -> None:
    _drill(tmp_path, wait_replicas=0)
