"""Producers that keep calling delay() while the master is KILLed and Sentinel promotes
the replica: each gets at most one clear exception, and no call waits past its
`failover_timeout` (plus one socket timeout). Three producer processes, each its own
App and link, as three web workers would be."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sentinel_cluster import PASSWORD, SentinelCluster

from helpers import wait_for
from qmulti.brokers import create_broker

PRODUCER = '''
import json, sys, time
from qmulti import App

url, options, out, stop = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
app = App("producer", broker=url, broker_transport_options=options)
import os
with open(out, "w") as sink:
    n = 0
    while not os.path.exists(stop):
        started = time.monotonic()
        try:
            task_id = app.send_task("tasks.nothing", (n,)).id
            error = None
        except Exception as exc:
            task_id, error = None, f"{type(exc).__name__}: {exc}"
        sink.write(json.dumps({"n": n, "id": task_id, "error": error,
                               "took": time.monotonic() - started}) + "\\n")
        sink.flush()
        n += 1
        time.sleep(0.01)
'''


def _run_producers(tmp_path: Path, cluster: SentinelCluster, failover_timeout: float,
                   count: int = 3) -> list[list[dict]]:
    script = tmp_path / "producer.py"
    script.write_text(textwrap.dedent(PRODUCER))
    stop = tmp_path / f"stop-{failover_timeout}"
    options = json.dumps(cluster.options(failover_timeout=failover_timeout))
    outs = [tmp_path / f"producer-{failover_timeout}-{i}.jsonl" for i in range(count)]
    procs = [subprocess.Popen([sys.executable, str(script), cluster.url, options, str(out),
                               str(stop)], stderr=subprocess.PIPE) for out in outs]
    try:
        wait_for(lambda: all(out.exists() and out.read_text().count("\n") >= 20
                             for out in outs), 60, "every producer under way")
        old = cluster.current()
        old.kill()
        new = cluster.wait_promoted(old.port)
        old.start()  # back as the new master's replica, for the next round
        sent = sum(o.read_text().count("\n") for o in outs)
        wait_for(lambda: sum(o.read_text().count("\n") for o in outs) >= sent + 3 * count,
                 60, "the producers sending to the new master")
        assert cluster.master_port() == new.port
    finally:
        stop.touch()
        for proc in procs:
            try:
                _, err = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
            assert proc.returncode == 0, err.decode()[-2000:]
    return [[json.loads(line) for line in out.read_text().splitlines()] for out in outs]


@pytest.mark.timeout(240)
def test_producers_ride_out_a_failover(tmp_path: Path, cluster: SentinelCluster) -> None:
    # failover_timeout longer than the failover: delay() waits for the new master.
    calls = _run_producers(tmp_path, cluster, failover_timeout=20.0)
    store = create_broker(cluster.url, **cluster.options())
    for mine in calls:
        errors = [c["error"] for c in mine if c["error"]]
        assert len(errors) <= 1, errors
        assert max(c["took"] for c in mine) < 20.0 + 10.0
    stored = store.stats().queues.get("celery", 0)
    returned = sum(1 for mine in calls for c in mine if c["id"])
    print(f"\nproducers, failover_timeout=20: calls={sum(map(len, calls))} "
          f"returned={returned} stored={stored} "
          f"longest={max(c['took'] for mine in calls for c in mine):.1f}s")

    # failover_timeout shorter than the failover: one clear error per wait, no hang.
    calls = _run_producers(tmp_path, cluster, failover_timeout=0.5)
    errors = [c["error"] for mine in calls for c in mine if c["error"]]
    longest = max(c["took"] for mine in calls for c in mine)
    print(f"producers, failover_timeout=0.5: calls={sum(map(len, calls))} "
          f"errors={len(errors)} longest={longest:.1f}s")
    assert errors, "the master was gone longer than 0.5 s: some call must have said so"
    # failover_timeout, plus one command in flight at the deadline: its socket timeout
    # (10 s) or a sentinel's connect timeout (3 s); a loaded machine adds some.
    assert longest < 0.5 + 10.0 + 3.0
    for error in errors:
        assert error.startswith("BrokerConnectionError: cannot reach the redis master") or \
            "names a master 'mymaster'" in error, error
        assert PASSWORD not in error and "\n" not in error
    store.close()


def test_a_wrong_master_name_is_one_clear_line(tmp_path: Path, cluster: SentinelCluster) -> None:
    started = time.monotonic()
    store = create_broker(cluster.url, master_name="nosuch", failover_timeout=0.5)
    with pytest.raises(Exception, match="names a master 'nosuch'") as info:
        store.publish("q", "m", b"x")
    assert time.monotonic() - started < 10
    assert PASSWORD not in str(info.value)
