"""Paths a node refuses before it starts (issue 11, items 6 and 7): a log file or pidfile
that is a symlink or a directory, a pool child's `%I` log file it could not open, and
`--detach` without `--pidfile`. Each is one line, the right exit code, no traceback,
and the file the path points at is left untouched."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest
from node_fixtures import run_qworker, write_tasks

from helpers import processes_of, wait_for
from qmulti.pidfiles import probe

TARGET_TEXT = "precious: a file a symlink points at\n"


def _one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    assert lines[0].startswith("qworker: error: ")
    return lines[0]


def _layout(root: Path) -> Path:
    write_tasks(root)
    target = root / "target.txt"
    target.write_text(TARGET_TEXT)
    (root / "link.log").symlink_to(target)
    (root / "link.pid").symlink_to(target)
    (root / "adir").mkdir()
    (root / "w1-1.log").mkdir()  # pool child 1's %I log file cannot be opened
    return target


@pytest.mark.parametrize(("args", "pattern"), [
    (["--logfile", "link.log"], r"log file \S*link\.log is a symlink; refusing to follow it"),
    (["--detach", "--logfile", "link.log"], r"log file \S*link\.log is a symlink"),
    (["--pidfile", "link.pid"], r"pidfile \S*link\.pid is a symlink; refusing to follow it"),
    (["--detach", "--pidfile", "link.pid"], r"pidfile \S*link\.pid is a symlink"),
    (["--detach", "--pidfile", "adir"], r"pidfile \S*adir is a directory"),
    (["--pidfile", "adir"], r"pidfile \S*adir is a directory"),
    (["--detach", "-c", "2", "-f", "w1%I.log"],
     r"log file \S*w1-1\.log \(from --logfile w1%I\.log\) is a directory"),
])
@pytest.mark.timeout(60)
def test_bad_path_is_one_line_exit_78_and_touches_nothing(tmp_path: Path, args: list[str],
                                                          pattern: str) -> None:
    target = _layout(tmp_path)
    result = run_qworker(tmp_path, "-A", "tasks", "-n", "w1@%h", *args)
    assert result.returncode == 78, result.stderr
    line = _one_line(result.stderr)
    assert re.search(pattern, line), line
    assert target.read_text() == TARGET_TEXT
    assert (tmp_path / "link.log").is_symlink() and (tmp_path / "link.pid").is_symlink()
    assert not processes_of(tmp_path, "none"), "no node may run"


@pytest.mark.timeout(60)
def test_template_is_named_in_the_error_not_its_main_expansion(tmp_path: Path) -> None:
    write_tasks(tmp_path)
    result = run_qworker(tmp_path, "-A", "tasks", "-n", "w1@%h", "-f", "nodir/w1-%I.log")
    assert result.returncode == 78
    line = _one_line(result.stderr)
    assert "w1-%I.log" in line, line


@pytest.mark.timeout(60)
def test_detach_without_pidfile_uses_qmultis_default(tmp_path: Path) -> None:
    write_tasks(tmp_path)
    result = run_qworker(tmp_path, "-A", "tasks", "-n", "w1@%h", "-c", "1", "--detach",
                         "-f", "w1.log")
    assert result.returncode == 0, result.stderr
    pidfile = tmp_path / "w1.pid"
    status = wait_for(lambda: (s := probe(str(pidfile))).state == "running" and s, 30,
                      "the detached node to hold ./w1.pid")
    os.kill(status.pid, signal.SIGTERM)
    wait_for(lambda: probe(str(pidfile)).state != "running", 30, "the node to stop")
