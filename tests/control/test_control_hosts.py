"""Remote control across two "hosts" sharing one private redis-server: two nodes in each
of two UTS namespaces (hostnames hostA and hostB), or, as the one-host variant, the same
four node names side by side on this host.

Queues: every node consumes `default`; w1@hostB also `rl` (the rate-limit test's) and
w2@hostB also `b2` (so a task can be sent to it alone). The tests of one cluster run in
order; the shutdown of w2@hostB is the last."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from ctl_support import Node, producer, qmulti, uts_unavailable, wait_answering, write_project

from helpers import wait_for
from redis_server import RedisServer

NAMES = ["w1@hostA", "w2@hostA", "w1@hostB", "w2@hostB"]
EXTRA = {"w1@hostB": ["-Q", "default,rl"], "w2@hostB": ["-Q", "default,b2"]}


class Cluster:
    def __init__(self, root: Path, url: str, nodes: dict[str, Node], hosts: bool) -> None:
        self.root, self.url, self.nodes, self.hosts = root, url, nodes, hosts
        self.app = producer(root, url)


@pytest.fixture(scope="module", params=["two-hosts", "one-host"])
def cluster(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    hosts = request.param == "two-hosts"
    if hosts:
        why = uts_unavailable()
        if why:
            pytest.skip(why)
    root = tmp_path_factory.mktemp(request.param)
    with RedisServer(root) as server:
        write_project(root, server.url)
        nodes: dict[str, Node] = {}
        try:
            for name in NAMES:
                host = name.split("@")[1] if hosts else None
                nodes[name] = Node(root, name, "-c", "1", "--prefetch-multiplier", "1",
                                   *EXTRA.get(name, ["-Q", "default"]), host=host)
            c = Cluster(root, server.url, nodes, hosts)
            wait_answering(c.app, NAMES)
            yield c
        finally:
            for node in nodes.values():
                node.close()


@pytest.mark.timeout(120)
def test_inspect_ping_reaches_all_four_fast(cluster: Cluster) -> None:
    took = []
    for _ in range(21):
        start = time.monotonic()
        got = cluster.app.control.inspect(timeout=2.0).ping()
        took.append(time.monotonic() - start)
        assert got == {n: {"ok": "pong"} for n in NAMES}
    median = statistics.median(took)
    print(f"inspect ping, 4 nodes: median {median * 1000:.1f} ms, max {max(took) * 1000:.1f} ms")
    assert median < 0.1
    stats = cluster.app.control.inspect().stats()
    assert stats is not None
    if cluster.hosts:  # each node really is on its own "host"
        assert {n: stats[n]["hostname"] for n in NAMES} == {n: n.split("@")[1] for n in NAMES}
    out = qmulti(cluster.root, "inspect", "ping", "-A", "tasks", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {n: {"ok": "pong"} for n in NAMES}


@pytest.fixture
def logs_on_failure(cluster: Cluster) -> Iterator[None]:
    """The nodes' logs in the report of a failed test (a cluster is torn down after)."""
    failed = True
    try:
        yield
        failed = False
    finally:
        if failed:
            for name, node in cluster.nodes.items():
                print(f"--- {name}:\n{node.text()[-4000:]}")


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("logs_on_failure")
def test_inspect_active_lists_a_running_task(cluster: Cluster) -> None:
    r = cluster.app.send_task("tasks.slow", (10, "ten"), queue="b2")
    wait_for(lambda: cluster.app.AsyncResult(r.id).state == "STARTED", 30, "the task started")
    out = qmulti(cluster.root, "inspect", "active", "-A", "tasks", "--json")
    assert out.returncode == 0, out.stderr
    active = json.loads(out.stdout)
    assert set(active) == set(NAMES)
    [task] = active["w2@hostB"]
    assert (task["id"], task["name"], task["args"]) == (r.id, "tasks.slow", [10, "ten"])
    assert all(active[n] == [] for n in NAMES if n != "w2@hostB")
    table = qmulti(cluster.root, "inspect", "active", "-A", "tasks", "-d", "w2@hostB")
    assert table.returncode == 0 and r.id in table.stdout and "tasks.slow" in table.stdout
    # revoke(terminate=True) from here: the task runs on another host; it stops within 1 s.
    child = psutil.Process(task["worker_pid"])
    start = time.monotonic()
    cluster.app.control.revoke(r.id, terminate=True)
    wait_for(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, 5,
             "the pool child running the task to end")
    stopped = time.monotonic() - start
    print(f"revoke(terminate=True) across hosts: task stopped after {stopped * 1000:.0f} ms")
    assert stopped < 1.0
    assert cluster.app.AsyncResult(r.id).state == "REVOKED"
    wait_for(lambda: cluster.app.control.inspect(destination="w2@hostB").active()
             == {"w2@hostB": []}, 10, "w2@hostB idle again")


def _children(cluster: Cluster) -> dict[str, Any]:
    stats = cluster.app.control.inspect().stats() or {}
    return {n: len(s["pool"]["processes"]) for n, s in stats.items()}


@pytest.mark.timeout(120)
def test_pool_grow_grows_that_node_only(cluster: Cluster) -> None:
    out = qmulti(cluster.root, "control", "pool_grow", "2", "-d", "w1@hostA", "-A", "tasks")
    assert out.returncode == 0, out.stderr
    assert "w1@hostA" in out.stdout and "pool will grow" in out.stdout
    wait_for(lambda: _children(cluster) == {"w1@hostA": 3, "w2@hostA": 1, "w1@hostB": 1,
                                            "w2@hostB": 1}, 30, "w1@hostA at 3 children")
    pidfile = f"--pidfile={cluster.root}/%h.pid"
    status = qmulti(cluster.root, "status", "w1@hostA", pidfile, "--json", "-A", "tasks")
    assert status.returncode == 0, status.stdout + status.stderr
    doc = json.loads(status.stdout)
    [row] = [r for r in doc["nodes"] if r["name"] == "w1@hostA"]
    assert row["children"] == 3
    remote = {r["name"]: r for r in doc["nodes"] if r.get("remote")}
    if cluster.hosts:  # the other nodes, seen from this host by their heartbeats
        assert set(remote) == {"w2@hostA", "w1@hostB", "w2@hostB"}
        assert remote["w1@hostB"]["hostname"] == "hostB"
        assert remote["w1@hostB"]["children"] == 1
    shrink = qmulti(cluster.root, "control", "pool_shrink", "2", "-d", "w1@hostA", "-A",
                    "tasks")
    assert shrink.returncode == 0, shrink.stderr
    wait_for(lambda: _children(cluster)["w1@hostA"] == 1, 30, "w1@hostA back to 1 child")


def _drain_time(cluster: Cluster, count: int) -> float:
    start = time.monotonic()
    results = [cluster.app.send_task("tasks.add", (i, i), queue="rl") for i in range(count)]
    assert [r.get(timeout=60) for r in results] == [2 * i for i in range(count)]
    return time.monotonic() - start


@pytest.mark.timeout(120)
def test_rate_limit_changes_a_running_node(cluster: Cluster) -> None:
    free = _drain_time(cluster, 10)
    got = cluster.app.control.rate_limit("tasks.add", "4/s", destination=["w1@hostB"],
                                         reply=True)
    assert got == [{"w1@hostB": {"ok": "new rate limit set successfully"}}]
    limited = _drain_time(cluster, 10)
    # 4 a second: the 10th starts at least 9/4 s after the first (bounds, not exact).
    print(f"10 tasks: {free:.2f}s without a limit, {limited:.2f}s at 4/s")
    assert limited >= 1.9
    assert limited > free + 1.0
    cluster.app.control.rate_limit("tasks.add", None, destination=["w1@hostB"], reply=True)
    assert _drain_time(cluster, 10) < limited


@pytest.mark.timeout(120)
def test_shutdown_one_node_is_a_warm_stop(cluster: Cluster) -> None:
    r = cluster.app.send_task("tasks.slow", (2, "done"), queue="b2")
    wait_for(lambda: cluster.app.AsyncResult(r.id).state == "STARTED", 30, "the task started")
    out = qmulti(cluster.root, "control", "shutdown", "-d", "w2@hostB", "-A", "tasks")
    assert out.returncode == 0, out.stderr
    node = cluster.nodes["w2@hostB"]
    assert node.wait(30) == 0
    assert r.get(timeout=5) == "done"  # it finished its running task first
    assert "remote control: shutdown: warm stop" in node.text()
    others = cluster.app.control.inspect(timeout=2.0).ping()
    assert set(others or {}) == {"w1@hostA", "w2@hostA", "w1@hostB"}
