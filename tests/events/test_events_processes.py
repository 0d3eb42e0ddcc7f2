"""-E end to end: real nodes started by `qmulti start ... -E`, a private redis-server (or
a SQLite file), and `qmulti events --json` reading the stream live."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from events_harness import Project, by_task

from qmulti import App
from qmulti.events import EventReader

pytestmark = pytest.mark.timeout(240)

FINAL = ("task-succeeded", "task-failed")


@pytest.fixture
def cleanup() -> Iterator[list[Project]]:
    projects: list[Project] = []
    yield projects
    for p in projects:
        p.qmulti("kill", "w1", "w2")
        p.kill_all()


def _run(project: Project, count: int, nodes: tuple[str, ...] = ("w1",),
         waves: int = 1) -> None:
    """Start the tail, then the nodes with -E, send `count` tasks (every 10th fails) in
    `waves` (each sent once the tail saw the last one end), and check what the tail saw,
    in order per task; then stop everything. Waves keep a burst under a small cap: a
    reader of a capped stream that falls a whole cap behind misses what was trimmed."""
    tail = project.tail("--json", "-A", "tasks", "--oldest")
    started = project.qmulti("start", *nodes, "-A", "tasks", "-E", "-c", "2")
    assert started.returncode == 0, started.stdout + started.stderr
    app = App("producer", broker=project.url)
    results: list = []
    events: list = []
    for wave in range(waves):
        end = count * (wave + 1) // waves
        batch = [app.send_task("tasks.boom", (i,)) if i % 10 == 0
                 else app.send_task("tasks.add", (i, i)) for i in range(len(results), end)]
        results += batch
        for r in batch:
            r.get(timeout=120, propagate=False)
        events = tail.wait_for(lambda ev, n=end: sum(1 for t in by_task(ev).values()
                                                     if t and t[-1] in FINAL) >= n,
                               timeout=60, what=f"a final event for each of {end} tasks")
    ids = {r.id for r in results}
    tasks = by_task(events)
    assert ids <= set(tasks)
    for task_id in ids:
        assert tasks[task_id] in (["task-received", "task-started", "task-succeeded"],
                                  ["task-received", "task-started", "task-failed"]), task_id
    failed = [e for e in events if e["type"] == "task-failed"]
    assert len(failed) == count // 10
    assert all("ValueError" in e["exception"] and "boom" in e["traceback"] for e in failed)
    done = next(e for e in events if e["type"] == "task-succeeded")
    assert isinstance(done["runtime"], float) and done["result"].isdigit()
    received = next(e for e in events if e["type"] == "task-received")
    for field in ("uuid", "name", "args", "kwargs", "retries", "eta", "hostname",
                  "timestamp", "root_id", "parent_id", "clock", "pid", "utcoffset"):
        assert field in received, field
    stopped = project.qmulti("stopwait", *nodes, "--timeout", "60")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    events = tail.wait_for(
        lambda ev: len({e["hostname"] for e in ev if e["type"] == "worker-offline"})
        == len(nodes), timeout=30, what="worker-offline of every node")
    kinds = {e["type"] for e in events}
    assert {"worker-online", "worker-heartbeat", "worker-offline"} <= kinds
    beat = next(e for e in events if e["type"] == "worker-heartbeat")
    assert {"freq", "sw_ident", "sw_ver", "sw_sys", "active", "processed"} <= set(beat)
    assert tail.interrupt() == 0  # Ctrl-C ends the tail cleanly
    assert "Traceback" not in tail.err.read_text()
    app.close()


def test_thousand_tasks_on_redis(redis_server, tmp_path: Path, cleanup) -> None:
    project = Project(tmp_path, redis_server.url, maxlen=2000)
    cleanup.append(project)
    _run(project, 1000, nodes=("w1", "w2"))
    # The stream stayed capped (MAXLEN ~ trims whole nodes: a little over the cap).
    length = redis_server.client().xlen("{qmulti}:events")
    assert 2000 <= length <= 2300, length


def test_sqlite_nodes_and_a_capped_table(tmp_path: Path, cleanup) -> None:
    project = Project(tmp_path, f"sqlite:///{tmp_path / 'q.db'}", maxlen=400)
    cleanup.append(project)
    _run(project, 200, waves=4)  # 150 task events a wave, 600 in all: the cap trims
    import sqlite3

    with sqlite3.connect(tmp_path / "q.db") as db:
        (rows,) = db.execute("SELECT COUNT(*) FROM events").fetchone()
    assert rows <= 400


def test_retried_rejected_revoked_and_sent(redis_server, tmp_path: Path, cleanup) -> None:
    project = Project(tmp_path, redis_server.url)
    cleanup.append(project)
    app = App("producer", broker=project.url, task_send_sent_event=True)
    revoked = app.send_task("tasks.add", (1, 1), countdown=1.5)
    revoked.revoke()
    started = project.qmulti("start", "w1", "-A", "tasks", "-E", "-c", "1")
    assert started.returncode == 0, started.stdout + started.stderr
    again = app.send_task("tasks.again", (7,))
    refused = app.send_task("tasks.refuse", (8,))
    assert again.get(timeout=30) == 7
    reader = EventReader(app.broker, "oldest")
    seen: dict[str, list[str]] = {}

    def complete() -> bool:
        for e in reader.read(0.5):
            if e.get("uuid"):
                seen.setdefault(e["uuid"], []).append(e["type"])
        return ("task-revoked" in seen.get(revoked.id, ())
                and "task-rejected" in seen.get(refused.id, ())
                and seen.get(again.id, [])[-1:] == ["task-succeeded"])

    from helpers import wait_for

    wait_for(complete, timeout=30, what="retried, rejected and revoked events")
    # task-sent comes from the producer's own buffer: it may land after the node's first
    # events of the task (two senders); each sender's events are in order.
    def node_side(task_id: str) -> list[str]:
        assert seen[task_id].count("task-sent") == 1
        return [t for t in seen[task_id] if t != "task-sent"]

    assert node_side(again.id) == ["task-received", "task-started", "task-retried",
                                   "task-received", "task-started", "task-succeeded"]
    assert node_side(refused.id) == ["task-received", "task-started", "task-rejected"]
    assert node_side(revoked.id)[-1] == "task-revoked"
    project.qmulti("stopwait", "w1", "--timeout", "30")
    app.close()
