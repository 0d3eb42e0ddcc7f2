"""-E beyond the happy path: the main process's own verdicts, a threads pool, and the
`qmulti events` command line (bad input, --limit, a closed pipe, human lines)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from events_harness import Project, by_task

from helpers import wait_for
from qmulti import App
from qmulti.brokers import create_broker
from qmulti.events import EventReader
from qmulti.events.event import encode, make
from qmulti.supervisor.events_cmd import render

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    p = Project(tmp_path, f"sqlite:///{tmp_path / 'q.db'}")
    yield p
    p.qmulti("kill", "w1")
    p.kill_all()


def _collect(reader: EventReader, seen: dict[str, list[str]]) -> dict[str, list[str]]:
    for e in reader.read(0.3):
        if e.get("uuid"):
            seen.setdefault(e["uuid"], []).append(e["type"])
    return seen


def test_hard_time_limit_is_a_failed_event_from_the_node(project: Project) -> None:
    started = project.qmulti("start", "w1", "-A", "tasks", "-E", "-c", "1",
                             "--time-limit", "1")
    assert started.returncode == 0, started.stdout + started.stderr
    app = App("producer", broker=project.url)
    r = app.send_task("tasks.sleepy", (30,))
    reader, seen = EventReader(app.broker, "oldest"), {}
    wait_for(lambda: "task-failed" in _collect(reader, seen).get(r.id, []), timeout=30,
             what="task-failed after the time limit")
    assert seen[r.id] == ["task-received", "task-started", "task-failed"]
    failed = [e for e in EventReader(app.broker, "oldest").read(0, 5000)
              if e["type"] == "task-failed"]
    assert "TimeLimitExceeded" in failed[0]["exception"]
    assert project.qmulti("stopwait", "w1", "--timeout", "30").returncode == 0
    app.close()


def test_terminated_task_is_a_revoked_event(project: Project) -> None:
    started = project.qmulti("start", "w1", "-A", "tasks", "-E", "-c", "1")
    assert started.returncode == 0, started.stdout + started.stderr
    app = App("producer", broker=project.url)
    r = app.send_task("tasks.sleepy", (30,))
    reader, seen = EventReader(app.broker, "oldest"), {}
    wait_for(lambda: "task-started" in _collect(reader, seen).get(r.id, []), timeout=30,
             what="task-started")
    r.revoke(terminate=True)
    wait_for(lambda: "task-revoked" in _collect(reader, seen).get(r.id, []), timeout=30,
             what="task-revoked")
    revoked = [e for e in EventReader(app.broker, "oldest").read(0, 5000)
               if e["type"] == "task-revoked"]
    assert revoked[0]["terminated"] is True and revoked[0]["expired"] is False
    assert project.qmulti("stopwait", "w1", "--timeout", "30").returncode == 0
    app.close()


def test_threads_pool_sends_events_in_order(project: Project) -> None:
    started = project.qmulti("start", "w1", "-A", "tasks", "-E", "-P", "threads", "-c", "3")
    assert started.returncode == 0, started.stdout + started.stderr
    app = App("producer", broker=project.url)
    ids = [app.send_task("tasks.add", (i, i)).id for i in range(60)]
    reader, seen = EventReader(app.broker, "oldest"), {}
    wait_for(lambda: all(_collect(reader, seen).get(i, [""])[-1] == "task-succeeded"
                         for i in ids), timeout=60, what="60 tasks succeeded")
    assert all(seen[i] == ["task-received", "task-started", "task-succeeded"] for i in ids)
    assert project.qmulti("stopwait", "w1", "--timeout", "30").returncode == 0
    app.close()


def _events_cmd(project: Project, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qmulti.supervisor", "events", *args],
                          cwd=project.path, env=project.env(), capture_output=True, text=True,
                          timeout=60, **kw)  # type: ignore[call-overload]


def test_cli_limit_oldest_human_lines_and_a_closed_pipe(project: Project) -> None:
    store = create_broker(project.url)
    store.events_put([encode(make("task-received", "w1@h", i, uuid=f"u{i}", name="tasks.add",
                                  args="(1, 2)")) for i in range(50)])
    store.close()
    done = _events_cmd(project, "-A", "tasks", "--oldest", "--limit", "3")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and "task-received" in lines[0] and "tasks.add[u0]" in lines[0]
    assert "args=(1, 2)" in lines[0]
    quiet = _events_cmd(project, "-A", "tasks", "--timeout", "0.5")  # from now: nothing
    assert quiet.returncode == 0 and quiet.stdout == ""
    piped = subprocess.run(
        f"{sys.executable} -m qmulti.supervisor events -A tasks --oldest --json --timeout 1"
        " | head -1", shell=True, cwd=project.path, env=project.env(), capture_output=True,
        text=True, timeout=60)
    assert piped.stdout.startswith("{") and "Traceback" not in piped.stderr


def test_cli_bad_input_is_one_line(project: Project) -> None:
    for args, code in ((["-b", "redis://:sekrit@127.0.0.1:1/0"], 1), (["--limit", "0"], 2),
                       (["--bogus"], 2), (["-b", "nope://x"], 1), (["-A", "no_such_mod"], 1)):
        done = _events_cmd(project, *args)
        assert done.returncode == code, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr and "sekrit" not in done.stderr


def test_render_is_aligned_and_skips_nothing_useful() -> None:
    line = render(make("task-succeeded", "w1@host", 3, uuid="abc", result="8", runtime=0.5))
    assert "task-succeeded" in line and "[abc]" in line and "result=8" in line
    assert "runtime=0.5" in line
    beat = render(make("worker-heartbeat", "w1@host", 4, active=1, processed=9, freq=2.0))
    assert beat.index("w1@host") == line.index("w1@host")  # aligned columns
    assert "processed=9" in beat
    assert by_task([make("task-started", "h", 1, uuid="x")]) == {"x": ["task-started"]}
