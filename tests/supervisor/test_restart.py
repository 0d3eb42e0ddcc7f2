"""Rolling `qmulti restart` under load: no task lost or run twice, never fewer than two up."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import pytest
from cluster_harness import Cluster

from qmulti.pidfiles import probe

NODES = ["w1", "w2", "w3"]
OPTS = ["-A", "tasks", "-c", "2", "--timeout", "60"]


@pytest.mark.timeout(180)
def test_rolling_restart_while_a_producer_sends(cluster: Cluster) -> None:
    start = cluster.qmulti("start", *NODES, *OPTS)
    assert start.returncode == 0, start.stdout + start.stderr
    old = {m.group(1): int(m.group(2))
           for m in re.finditer(r"^(\w+)@\S+: OK \(pid (\d+)\)", start.stdout, re.M)}

    done = threading.Event()
    samples: list[int] = []
    sent: list[Any] = []
    errors: list[BaseException] = []
    pidfiles = [str(cluster.pidfile(n)) for n in NODES]

    def sample() -> None:
        while not done.is_set():
            samples.append(sum(probe(p).state == "running" for p in pidfiles))
            time.sleep(0.02)

    def produce() -> None:
        app = cluster.app()
        try:
            n = 0
            while not done.is_set():
                sent.append(app.send_task("tasks.tracked", (n,), check=False))
                n += 1
                time.sleep(0.01)
        except BaseException as exc:  # surfaced by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=sample), threading.Thread(target=produce)]
    for thread in threads:
        thread.start()
    try:
        proc = cluster.qmulti("restart", *NODES, *OPTS, timeout=150)
    finally:
        done.set()
        for thread in threads:
            thread.join(30)
    assert not errors, errors
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in NODES:
        line = re.search(rf"^{name}@\S+: OK \(pid (\d+)\): restarted \(was pid {old[name]}\)$",
                         proc.stdout, re.M)
        assert line and int(line.group(1)) != old[name], proc.stdout

    assert len(sent) > 50 and len(samples) > 10
    assert min(samples) >= 2, f"capacity dropped: samples {sorted(set(samples))}"
    assert [r.get(timeout=60) for r in sent] == list(range(len(sent)))
    runs = (cluster.path / "runs.log").read_text().split()
    assert sorted(map(int, runs)) == list(range(len(sent))), "a task ran twice or never"
