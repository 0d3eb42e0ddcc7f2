"""start/stop/stopwait/kill/status with real `qmulti` and real nodes on a SQLite broker."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from cluster_harness import Cluster

from helpers import wait_for
from qmulti.pidfiles import probe

NODES = ["w1", "w2", "w3"]
START = ["-A", "tasks", "-c", "1", "-l", "info", "--timeout", "60"]


def ok_lines(out: str) -> dict[str, int]:
    """{short name: pid} of every `wN@host: OK (pid N)` line."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)@\S+: OK \(pid (\d+)\)",
                                                             out, re.M)}


def running(cluster: Cluster, names: list[str]) -> list[str]:
    return [n for n in names if probe(str(cluster.pidfile(n))).state == "running"]


@pytest.mark.timeout(120)
def test_start_status_stop_three_nodes(cluster: Cluster) -> None:
    proc = cluster.qmulti("start", *NODES, *START)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pids = ok_lines(proc.stdout)
    assert sorted(pids) == NODES
    assert running(cluster, NODES) == NODES

    results = [cluster.app().send_task("tasks.add", (i, i), check=False) for i in range(6)]
    assert [r.get(timeout=30) for r in results] == [2 * i for i in range(6)]

    again = cluster.qmulti("start", *NODES, *START)
    assert again.returncode == 0
    for name in NODES:  # left alone, reported with its pid
        assert f"{name}@" in again.stdout
        assert re.search(rf"^{name}@\S+: already running \(pid {pids[name]}\)", again.stdout, re.M)

    status = cluster.qmulti("status", *NODES, "--json")
    assert status.returncode == 0, status.stderr
    rows = json.loads(status.stdout)["nodes"]
    assert [(r["state"], r["pid"], r["children"]) for r in rows] == \
        [("running", pids[n], 1) for n in NODES]
    assert all(r["rss"] > 1_000_000 and r["uptime"] >= 0 for r in rows)
    table = cluster.qmulti("status", *NODES)
    assert table.stdout.splitlines()[0].split() == ["NODE", "STATE", "PID", "UPTIME", "RSS",
                                                    "CHILDREN"]

    stop = cluster.qmulti("stop", *NODES)
    assert stop.returncode == 0
    assert len(re.findall(r": TERM sent \(pid \d+\)", stop.stdout)) == 3
    wait_for(lambda: not cluster.processes(), 30, "every node process to exit")
    wait_for(lambda: not any(cluster.pidfile(n).exists() for n in NODES), 10, "pidfiles gone")

    down = cluster.qmulti("status", *NODES, "--json")
    assert down.returncode == 1
    assert {r["state"] for r in json.loads(down.stdout)["nodes"]} == {"stopped"}
    assert cluster.qmulti("stop", *NODES).stdout.count(": DOWN") == 3


@pytest.mark.timeout(120)
def test_start_with_a_bad_app_fails_that_node_only(cluster: Cluster) -> None:
    proc = cluster.qmulti("start", *NODES, *START, "-A:2", "no_such_module")
    assert proc.returncode == 1
    assert sorted(ok_lines(proc.stdout)) == ["w1", "w3"]
    failed = re.search(r"^w2@\S+: FAILED: (.+)$", proc.stdout, re.M)
    assert failed and "no_such_module" in failed.group(1)
    assert running(cluster, NODES) == ["w1", "w3"]
    assert not cluster.pidfile("w2").exists()
    result = cluster.app().send_task("tasks.add", (2, 3), check=False)
    assert result.get(timeout=30) == 5  # the good ones consume


@pytest.mark.timeout(120)
def test_failed_node_shows_its_log_lines(cluster: Cluster) -> None:
    """A node that detaches and then gives up shows the tail of its own log."""
    proc = cluster.qmulti("start", "w1", "w2", *START, "--uid:2", "no_such_user_qm",
                          "-l", "debug")
    assert proc.returncode == 1
    assert sorted(ok_lines(proc.stdout)) == ["w1"]
    lines = proc.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("w2@"))
    assert ": FAILED: " in lines[at] and "no_such_user_qm" in lines[at]
    tail = [line for line in lines[at + 1:] if line.startswith("    ")]
    assert any("DEBUG/w2@" in line for line in tail)  # lines of w2.log, indented
    assert "Traceback" not in proc.stderr


@pytest.mark.timeout(120)
def test_stale_pidfile_with_a_dead_pid(cluster: Cluster) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    cluster.pidfile("w1").write_text(f"{dead.pid}\n")
    proc = cluster.qmulti("start", "w1", *START)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "removed stale pidfile" in proc.stderr
    assert running(cluster, ["w1"]) == ["w1"]
    assert cluster.qmulti("stopwait", "w1", "--timeout", "30").returncode == 0
    assert not cluster.pidfile("w1").exists()


@pytest.mark.timeout(120)
def test_stale_pidfile_naming_an_unrelated_live_process(cluster: Cluster) -> None:
    """Its pid is alive but it holds no lock: never signalled, pidfile replaced."""
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        cluster.pidfile("w1").write_text(f"{stranger.pid}\n")
        for command in ("stop", "kill", "stopwait"):
            proc = cluster.qmulti(command, "w1")
            assert proc.returncode == 0 and ": DOWN" in proc.stdout, (command, proc.stdout)
            assert stranger.poll() is None, f"{command} signalled an unrelated process"
            cluster.pidfile("w1").write_text(f"{stranger.pid}\n")

        proc = cluster.qmulti("start", "w1", *START)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        node_pid = ok_lines(proc.stdout)["w1"]
        assert node_pid != stranger.pid
        assert int(cluster.pidfile("w1").read_text().split()[0]) == node_pid
        stop = cluster.qmulti("stop", "w1")
        assert stop.returncode == 0 and f"pid {node_pid}" in stop.stdout
        wait_for(lambda: not cluster.processes(), 30, "the node to exit")
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


@pytest.mark.timeout(120)
def test_stopwait_lets_a_running_task_finish(cluster: Cluster) -> None:
    assert cluster.qmulti("start", "w1", "w2", *START).returncode == 0
    result = cluster.app().send_task("tasks.sleep", (3,), check=False)
    wait_for(lambda: result.state == "STARTED", 30, "the task to start")

    proc = cluster.qmulti("stopwait", "w1", "w2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(re.findall(r"^w\d@\S+: OK \(pid \d+\): stopped$", proc.stdout, re.M)) == 2
    assert re.search(r"\(1 busy: tasks\.sleep\[", proc.stderr)  # who was still busy
    assert result.state == "SUCCESS" and result.get(timeout=5) == 3
    assert not cluster.processes()  # every node and child exited
    assert not list(cluster.path.glob("*.pid"))


@pytest.mark.timeout(120)
def test_stopwait_timeout_escalates_and_gives_the_task_back(cluster: Cluster) -> None:
    assert cluster.qmulti("start", "w1", *START).returncode == 0
    app = cluster.app()
    result = app.send_task("tasks.sleep", (30,), check=False)
    wait_for(lambda: result.state == "STARTED", 30, "the task to start")

    proc = cluster.qmulti("stopwait", "w1", "--timeout", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sent QUIT" in proc.stderr
    assert re.search(r"^w1@\S+: OK \(pid \d+\): (cold stop|killed)", proc.stdout, re.M)
    assert not cluster.processes()
    assert not cluster.pidfile("w1").exists()
    stats = app.broker.stats()
    assert stats.queues.get("celery", 0) + stats.leased == 1  # not lost
    assert result.state != "SUCCESS"


@pytest.mark.timeout(120)
def test_kill_takes_node_and_children_and_the_pidfile(cluster: Cluster) -> None:
    start = cluster.qmulti("start", "w1", "w2", "-A", "tasks", "-c", "2", "--timeout", "60")
    assert start.returncode == 0, start.stdout + start.stderr
    pids = ok_lines(start.stdout)
    assert len(cluster.processes()) >= 6
    proc = cluster.qmulti("kill", "w1", "w2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("w1", "w2"):
        assert re.search(rf"^{name}@\S+: KILLED \(pid {pids[name]}\): with 2 children$",
                         proc.stdout, re.M), proc.stdout
    assert not list(cluster.path.glob("*.pid"))
    wait_for(lambda: not cluster.processes(), 15, "every process to be gone")


def test_unwritable_pid_directory_starts_nothing(cluster: Cluster) -> None:
    (cluster.path / "afile").write_text("")
    proc = cluster.qmulti("start", "w1", "w2", "-A", "tasks", "--pidfile:2=afile/%n.pid")
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1 and "afile" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not cluster.processes()
    assert not list(cluster.path.glob("*.pid"))


def test_start_without_app_is_a_usage_error(cluster: Cluster) -> None:
    for command in ("start", "restart"):
        proc = cluster.qmulti(command, "w1", "w2", "-A:1", "tasks")
        assert proc.returncode == 2
        assert len(proc.stderr.splitlines()) == 1
        assert f"qmulti {command}: {command} needs -A MODULE" in proc.stderr
        assert "(missing for w2@" in proc.stderr
    assert not cluster.processes()


def test_unreadable_pidfile_is_a_failure_line(cluster: Cluster) -> None:
    (cluster.path / "w1.pid").mkdir()
    for command in ("stop", "kill", "status", "start"):
        proc = cluster.qmulti(command, "w1", "-A", "tasks")
        assert proc.returncode == 1, (command, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
        if command != "status":
            assert re.search(r"^w1@\S+: FAILED: unreadable pidfile w1.pid", proc.stdout, re.M)
    assert not cluster.processes()


def test_stop_sends_term_only(cluster: Cluster) -> None:
    """`stop` returns at once; the TERM'd node stops warmly by itself."""
    assert cluster.qmulti("start", "w1", *START).returncode == 0
    proc = cluster.qmulti("stop", "w1")
    assert proc.returncode == 0 and proc.stderr == ""
    wait_for(lambda: not cluster.processes(), 30, "the node to exit")
    assert "TERM: warm stop" in (cluster.path / "w1.log").read_text()
