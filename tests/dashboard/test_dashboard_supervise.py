"""`qmulti supervise ... --dashboard`: the dashboard beside supervised nodes, and the
option parsing that keeps its options away from the qworkers."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from dashboard_stack import Stack
from helpers import wait_for
from qmulti.exceptions import UsageError
from qmulti.supervisor.dashboard.embedded import take_options
from redis_server import RedisServer


@pytest.mark.parametrize("argv, rest, opts", [
    (["2", "-A", "proj"], ["2", "-A", "proj"], None),
    (["2", "--dashboard", "-A", "proj"], ["2", "-A", "proj"], {}),
    (["2", "--dashboard", "--dashboard-port", "0", "--dashboard-address=0.0.0.0", "-c", "1"],
     ["2", "-c", "1"], {"--dashboard-port": "0", "--dashboard-address": "0.0.0.0"}),
    (["2", "--dashboard", "--", "--dashboard"], ["2", "--", "--dashboard"], {}),
])
def test_take_options(argv: list[str], rest: list[str], opts: dict[str, str] | None) -> None:
    assert take_options(argv) == (rest, opts)


@pytest.mark.parametrize("argv", [["2", "--dashboard-port", "1"], ["2", "--dashboard",
                                                                    "--dashboard-port"]])
def test_take_options_errors(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        take_options(argv)


@pytest.mark.timeout(120)
def test_supervise_with_dashboard(tmp_path: Path) -> None:
    with RedisServer(tmp_path) as redis:
        s = Stack(tmp_path, redis)
        err = tmp_path / "supervise.err"
        with open(err, "wb") as handle:
            proc = subprocess.Popen(
                [sys.executable, "-m", "qmulti.supervisor", "supervise", "2", "-A", "proj",
                 "-c", "1", "--dashboard", "--dashboard-port", "0"],
                cwd=tmp_path, env=s.env, stdout=subprocess.DEVNULL, stderr=handle)
        try:
            def url() -> str | None:
                assert proc.poll() is None, err.read_text()
                found = re.search(r"dashboard: (http://\S+/)", err.read_text())
                return found.group(1) if found else None

            base = wait_for(url, 60, "the dashboard line")

            def nodes() -> list[str] | None:
                with urllib.request.urlopen(base + "api/nodes", timeout=5) as resp:
                    rows = json.loads(resp.read())
                names = sorted(r["name"] for r in rows if r["state"] == "running")
                return names if len(names) == 2 else None

            assert [n.split("@")[0] for n in wait_for(nodes, 60, "2 nodes")] == [
                "celery1", "celery2"]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            s.close()
