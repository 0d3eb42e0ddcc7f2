"""Rendering of results and status rows, and the log tail a FAILED node shows."""

from __future__ import annotations

import io
from pathlib import Path

from qmulti.supervisor.grammar import build
from qmulti.supervisor.launch import log_tail
from qmulti.supervisor.report import NodeResult, TextReporter, render
from qmulti.supervisor.status import NodeStatus, render_table, run_status


def test_render_lines() -> None:
    assert render(NodeResult("w1@h", True, "OK", 12)) == ["w1@h: OK (pid 12)"]
    assert render(NodeResult("w2@h", False, "FAILED", None, "bad -A", ("a", "b"))) == [
        "w2@h: FAILED: bad -A", "    a", "    b"]


def test_text_reporter_tracks_failures() -> None:
    out, err = io.StringIO(), io.StringIO()
    reporter = TextReporter(out, err)
    reporter.node(NodeResult("w1@h", True, "OK", 1))
    reporter.progress("waiting")
    assert reporter.all_ok
    reporter.node(NodeResult("w2@h", False, "FAILED"))
    assert not reporter.all_ok
    assert out.getvalue() == "w1@h: OK (pid 1)\nw2@h: FAILED\n"
    assert err.getvalue() == "> waiting\n"
    quiet_err = io.StringIO()
    TextReporter(io.StringIO(), quiet_err, quiet=True).progress("x")
    assert quiet_err.getvalue() == ""


def test_log_tail_shows_only_this_runs_lines(tmp_path: Path) -> None:
    log = tmp_path / "w1.log"
    log.write_text("old 1\nold 2\n")
    offset = log.stat().st_size
    with log.open("a") as fh:
        fh.write("".join(f"new {i}\n" for i in range(15)) + "\n")
    assert log_tail(str(log), 10, since=offset) == [f"new {i}" for i in range(5, 15)]
    assert log_tail(str(log), 3) == ["new 12", "new 13", "new 14"]
    assert log_tail(str(tmp_path / "missing.log")) == []
    log.write_text("rotated\n")  # smaller than the offset: read from the start
    assert log_tail(str(log), since=offset) == ["rotated"]


def test_status_table_and_exit_code(tmp_path: Path) -> None:
    rows = [NodeStatus("w1@h", "running", 10, "w1.pid", 3725.0, 50 * 1024 * 1024, 2),
            NodeStatus("w2@h", "stopped", pidfile="w2.pid")]
    assert render_table(rows) == [
        "NODE  STATE    PID  UPTIME  RSS      CHILDREN",
        "w1@h  running  10   1h02m   50.0MiB  2",
        "w2@h  stopped  -    -       -        -",
    ]
    out = io.StringIO()
    assert run_status(build(["w1", "w2"], "h"), str(tmp_path), out) == 1
    assert "stopped" in out.getvalue()
    assert list(tmp_path.iterdir()) == []  # status creates nothing either
