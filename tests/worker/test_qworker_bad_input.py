"""Bad input to `qworker`: one line on stderr, the contract's exit code, no traceback,
nothing queued lost."""

from __future__ import annotations

import os
import re
import signal
import socket
import uuid
from pathlib import Path

import pytest
from node_fixtures import NodeProcess, producer, run_qworker, write_tasks

from helpers import wait_for
from qmulti.exceptions import NotRegistered, SerializationError


def one_line_error(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    assert lines[0].startswith("qworker: error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("args", "code", "pattern"),
    [
        (["-A", "nosuchmodule"], 78, r"cannot import module 'nosuchmodule'.*project root"),
        (["-A", "noapp"], 78, r"no app found in module 'noapp'.*noapp\.app"),
        (["-A", "broken"], 78, r"error while importing module 'broken': ModuleNotFoundError: "
                               r"No module named 'not_installed_dep'.*broken\.py:2"),
        (["-A", "tasks:nothing"], 78, r"has no attribute 'nothing'"),
        (["-A", "tasks", "--bogus"], 64, r"No such option '--bogus'; see qworker --help"),
        (["-A", "tasks", "-c", "0"], 64, r"must be greater than 0"),
        (["-A", "tasks", "-c", "many"], 64, r"many"),
        (["-A", "tasks", "-l", "loud"], 64, r"unknown log level 'loud'"),
        (["-A", "tasks", "-P", "nonsense"], 64, r"nonsense"),
        (["-l", "info"], 64, r"missing -A"),
        (["-A", "tasks", "--pidfile", "afile/w1.pid"], 78, r"cannot create pidfile"),
        (["-A", "tasks", "--logfile", "afile/w1.log"], 78, r"cannot open log file"),
        (["-A", "tasks", "--detach", "--pidfile", "afile/w1.pid"], 78,
         r"cannot create pidfile"),
    ],
)
@pytest.mark.timeout(30)
def test_bad_command_line_or_app(tmp_path: Path, args: list[str], code: int,
                                 pattern: str) -> None:
    write_tasks(tmp_path)
    (tmp_path / "noapp.py").write_text("X = 1\n")
    (tmp_path / "broken.py").write_text("# user code with a missing dependency\n"
                                        "import not_installed_dep\n")
    (tmp_path / "afile").write_text("a regular file, so afile/x is ENOTDIR\n")
    result = run_qworker(tmp_path, *args)
    assert result.returncode == code, result.stderr
    line = one_line_error(result.stderr)
    assert re.search(pattern, line), line
    assert not (tmp_path / "q.sqlite3").exists() or code != 64


@pytest.mark.parametrize(
    ("broker", "pattern"),
    [
        ("kafka://guest@localhost//", r"unsupported broker URL 'kafka://guest@localhost//'"),
        ("kafka://user:s3cret@localhost//", r"unsupported broker URL 'kafka://user:\*\*\*@"),
        ("sqlite:///afile/q.sqlite3", r"afile is not a directory"),
        ("sqlite:///nodir/q.sqlite3", r"does not exist"),
    ],
)
@pytest.mark.timeout(30)
def test_bad_broker_url_is_a_config_error(tmp_path: Path, broker: str,
                                          pattern: str) -> None:
    write_tasks(tmp_path, extra_config=f"app.conf.broker_url = {broker!r}")
    (tmp_path / "afile").write_text("x")
    address = f"\0qmulti-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(5)
        result = run_qworker(tmp_path, "-A", "tasks", "--detach",
                             env={"NOTIFY_SOCKET": "@" + address[1:]})
        assert result.returncode == 78, result.stderr
        line = one_line_error(result.stderr)
        assert re.search(pattern, line), line
        notes = [sock.recv(4096).decode(), sock.recv(4096).decode()]
    assert notes[0] == "STATUS=" + line.removeprefix("qworker: error: ")
    assert notes[1] == "EXIT_STATUS=78"
    assert "s3cret" not in result.stderr


@pytest.mark.timeout(60)
def test_live_nodes_pidfile_refuses_a_second_node(tmp_path: Path) -> None:
    write_tasks(tmp_path)
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "1", "--pidfile", "w1.pid") as first:
        first.wait_ready()
        assert (tmp_path / "w1.pid").read_text() == f"{first.pid}\n"
        for extra in ([], ["--detach"]):
            result = run_qworker(tmp_path, "-A", "tasks", "-c", "1", "--pidfile", "w1.pid",
                                 *extra)
            assert result.returncode == 1, result.stderr
            line = one_line_error(result.stderr)
            assert f"pid {first.pid}" in line and "w1.pid" in line
        assert first.proc.poll() is None
        assert first.stop() == 0
    assert not (tmp_path / "w1.pid").exists()


@pytest.mark.timeout(60)
def test_malformed_message_is_dead_lettered_and_node_keeps_serving(tmp_path: Path) -> None:
    write_tasks(tmp_path)
    app = producer(tmp_path)
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "1") as node:
        node.wait_ready()
        app.broker.publish("celery", "bad-1", b"\x00not json at all")
        app.broker.publish("celery", "bad-2", b'{"v": 1, "id": "t-2"}')
        app.broker.publish("celery", "bad-3", b'{"id": "t-3", "task": "tasks.add", "ct": '
                                              b'"pickle", "payload": "gAR9lC4="}')
        assert app.send_task("tasks.add", (2, 3), check=False).get(timeout=20) == 5
        dead = wait_for(lambda: len(app.broker.dead_letters()) == 3 and app.broker.dead_letters(),
                        20, "three dead letters")
        assert {d.mid for d in dead} == {"bad-1", "bad-2", "bad-3"}
        assert any("pickle" in d.reason for d in dead)
        # A message with a readable id gets a FAILURE, so its caller does not hang.
        with pytest.raises(Exception) as info:
            app.AsyncResult("t-3").get(timeout=10)
        assert "ContentDisallowed" in type(info.value).__name__
        assert app.send_task("tasks.add", (1, 1), check=False).get(timeout=20) == 2
        assert node.proc.poll() is None
        assert node.stop() == 0
    err = node.stderr()
    assert "dead-lettered" in err and "Traceback" not in err


@pytest.mark.timeout(60)
def test_unknown_task_name_on_the_node(tmp_path: Path) -> None:
    write_tasks(tmp_path)
    app = producer(tmp_path)
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "1", "-l", "info") as node:
        node.wait_ready()
        result = app.send_task("tasks.not_here", (1,), check=False)
        with pytest.raises(NotRegistered, match="tasks.not_here"):
            result.get(timeout=20)
        # FAILURE is stored first (a crash in between re-delivers, never leaves the caller
        # waiting forever), then the message is dead-lettered.
        dead = wait_for(app.broker.dead_letters, 10, "the dead letter")
        assert len(dead) == 1 and "tasks.not_here" in dead[0].reason
        assert app.send_task("tasks.add", (1, 2), check=False).get(timeout=20) == 3
        assert node.stop() == 0
    err = node.stderr()
    assert "unregistered task tasks.not_here" in err and "import its module" in err
    assert "Traceback" not in err


@pytest.mark.timeout(30)
def test_non_json_argument_raises_at_delay_and_queues_nothing(tmp_path: Path) -> None:
    app = producer(tmp_path)
    with pytest.raises(SerializationError, match="not JSON-serializable"):
        app.send_task("tasks.add", (object(), 1), check=False)
    stats = app.broker.stats()
    assert sum(stats.queues.values()) == 0 and stats.scheduled == 0


@pytest.mark.timeout(30)
def test_help_and_unwritable_sqlite_path_without_detach(tmp_path: Path) -> None:
    write_tasks(tmp_path, extra_config="app.conf.broker_url = 'sqlite:///afile/q.db'")
    (tmp_path / "afile").write_text("x")
    result = run_qworker(tmp_path, "-A", "tasks")
    assert result.returncode == 78
    assert "afile is not a directory" in one_line_error(result.stderr)
    helped = run_qworker(tmp_path, "--help")
    assert helped.returncode == 0 and "--concurrency" in helped.stdout


def test_sigterm_before_ready_is_clean(tmp_path: Path) -> None:
    """Not a bad input, but the same entry point: a TERM right after READY exits 0."""
    write_tasks(tmp_path)
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "1") as node:
        node.wait_ready()
        assert node.stop(signal.SIGINT) == 0
    assert os.path.exists(tmp_path / "q.sqlite3")
