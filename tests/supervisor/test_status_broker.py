"""`qmulti status`: the broker side (heartbeat counts per node, queue/eta/lease/dead counts).

Real stores: a SQLite file and a private redis-server; the node records are written
with `broker.heartbeat` exactly as a node's main process writes them.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import free_port
from qmulti.brokers import Delivery, create_broker
from qmulti.supervisor.grammar import build
from qmulti.supervisor.status import run_status
from redis_server import RedisServer

HOST = "testhost"
TASKS = """
from qmulti import App
app = App('tasks', broker='sqlite:///q.sqlite3')

@app.task
def add(a, b):
    return a + b
"""


def status(tmp_path: Path, *argv: str, environ: dict[str, str] | None = None) -> tuple[int, str]:
    out = io.StringIO()
    code = run_status(build(list(argv), HOST), cwd=str(tmp_path), out=out,
                      environ=environ or {})
    return code, out.getvalue()


def fill(url: str) -> None:
    """Two ready in `celery`, one in `hi`, one scheduled, one leased, one dead letter."""
    broker = create_broker(url)
    try:
        broker.heartbeat("w1@testhost#1.0", {"name": "w1@testhost", "active": 1,
                                             "finished": 7})
        for i in range(3):
            broker.publish("celery", f"m{i}", b"{}")
        broker.publish("hi", "h1", b"{}")
        broker.publish("celery", "later", b"{}", eta=time.time() + 3600)
        held = broker.claim(["celery"], "w1@testhost#1.0", "c1.1", 1, 0)
        assert len(held) == 1
        broker.publish("dlq", "bad", b"not json")
        bad: Delivery = broker.claim(["dlq"], "w1@testhost#1.0", "c1.1", 1, 0)[0]
        broker.dead_letter(bad, "malformed")
    finally:
        broker.close()


def check_json(doc: dict, url_shown: str) -> None:
    broker = doc["broker"]
    assert broker["url"] == url_shown
    assert broker["error"] is None
    assert broker["queues"].get("celery") == 2 and broker["queues"].get("hi") == 1
    assert broker["scheduled"] == 1 and broker["leased"] == 1 and broker["dead"] == 1
    w1, w2 = doc["nodes"]
    assert (w1["active"], w1["finished"]) == (1, 7)
    assert 0 <= w1["heartbeat_age"] < 60
    assert (w2["active"], w2["finished"], w2["heartbeat_age"]) == (None, None, None)


@pytest.mark.timeout(30)
def test_sqlite_from_app(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text(TASKS)
    fill(f"sqlite:///{tmp_path / 'q.sqlite3'}")
    code, out = status(tmp_path, "w1", "w2", "-A", "tasks", "--json")
    assert code == 1  # the nodes themselves are not running
    check_json(json.loads(out), "sqlite:///q.sqlite3")
    code, out = status(tmp_path, "w1", "w2", "-A", "tasks")
    lines = out.splitlines()
    assert "ACTIVE" in lines[0] and "HEARTBEAT" in lines[0]
    assert lines[1].split()[-4:-2] == ["1", "7"] and lines[1].endswith("ago")
    assert "broker: sqlite:///q.sqlite3" in out
    assert "queues: celery=2 hi=1" in out
    assert "scheduled: 1  leased: 1  dead-letter: 1" in out


@pytest.mark.timeout(30)
def test_missing_sqlite_store_is_reported_not_created(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text(TASKS)
    before = set(os.listdir(tmp_path))
    for argv in (["-A", "tasks"], ["-b", "sqlite:///q.sqlite3"]):
        code, out = status(tmp_path, "w1", *argv)
        assert code == 1
        assert "broker: sqlite:///q.sqlite3: no such store" in out
        code, out = status(tmp_path, "w1", *argv, "--json")
        assert json.loads(out)["broker"]["error"] == "no such store"
    after = {n for n in os.listdir(tmp_path) if n != "__pycache__"}
    assert after == before


@pytest.mark.timeout(30)
def test_no_app_no_broker_section(tmp_path: Path) -> None:
    code, out = status(tmp_path, "w1", "--json")
    assert "broker" not in json.loads(out)
    code, out = status(tmp_path, "w1")
    assert "broker:" not in out and "ACTIVE" not in out


@pytest.mark.timeout(60)
def test_redis_password_masked(tmp_path: Path) -> None:
    secret = "s3cr3t-pw"
    with RedisServer(tmp_path, password=secret) as server:
        fill(server.url)
        masked = server.url.replace(secret, "***")
        code, out = status(tmp_path, "w1", "w2", "-b", server.url, "--json")
        assert secret not in out
        check_json(json.loads(out), masked)
        # From the environment, as a unit's EnvironmentFile gives it.
        code, out = status(tmp_path, "w1", "w2", environ={"QMULTI_BROKER_URL": server.url})
        assert secret not in out and f"broker: {masked}" in out
        wrong = server.url.replace(secret, "wrong-pw")
        code, out = status(tmp_path, "w1", "-b", wrong)
        assert "wrong-pw" not in out and "broker: " in out
        assert "dead-letter" not in out  # an error line, not counts


@pytest.mark.timeout(30)
def test_unreachable_redis_is_one_footer_line(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    code, out = status(tmp_path, "w1", "-b", url)
    assert time.monotonic() - started < 15
    footer = [line for line in out.splitlines() if line.startswith("broker:")]
    assert len(footer) == 1 and url in footer[0] and "dead-letter" not in out
    assert code == 1


@pytest.mark.timeout(60)
def test_cli_status_with_app(tmp_path: Path) -> None:
    """Through the real `qmulti` command line: no traceback, JSON on stdout."""
    (tmp_path / "tasks.py").write_text(TASKS)
    fill(f"sqlite:///{tmp_path / 'q.sqlite3'}")
    env = dict(os.environ)
    env.pop("QMULTI_BROKER_URL", None)
    proc = subprocess.run([sys.executable, "-m", "qmulti.supervisor", "status", "w1", "w2",
                           "-n", HOST, "-A", "tasks", "--json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1, proc.stderr
    check_json(json.loads(proc.stdout), "sqlite:///q.sqlite3")
