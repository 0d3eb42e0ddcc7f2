"""The command line's failures: each one line on stderr, no traceback, non-zero exit;
and `call` + `result` against a real store."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from ctl_support import qmulti

from helpers import free_port
from redis_server import RedisServer


def _one_line(out: object) -> str:
    err = out.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_unreachable_broker_is_one_line(tmp_path: Path) -> None:
    out = qmulti(tmp_path, "inspect", "ping", "-b", f"redis://127.0.0.1:{free_port()}/0")
    assert out.returncode == 1
    assert "cannot reach redis" in _one_line(out)


def test_missing_sqlite_store_is_not_made(tmp_path: Path) -> None:
    out = qmulti(tmp_path, "inspect", "ping")  # the default sqlite:///qmulti.sqlite3
    assert out.returncode == 1
    assert "no broker store" in _one_line(out)
    assert not (tmp_path / "qmulti.sqlite3").exists()


@pytest.mark.timeout(60)
def test_no_node_and_silent_node_and_bad_destination(tmp_path: Path,
                                                      redis_server: RedisServer) -> None:
    url = redis_server.url
    out = qmulti(tmp_path, "inspect", "ping", url=url)
    assert out.returncode == 1 and "no node is alive" in _one_line(out)
    # A heartbeat record whose node never answers (it hangs, say): a timeout, one line.
    from qmulti.brokers import create_broker

    broker = create_broker(url)
    broker.heartbeat("ghost#1.1", {"name": "ghost@x"})
    start = time.monotonic()
    out = qmulti(tmp_path, "inspect", "ping", "--timeout", "0.3", url=url)
    assert out.returncode == 1 and "no node answered ping within 0.3s" in _one_line(out)
    assert time.monotonic() - start < 20
    out = qmulti(tmp_path, "control", "pool_grow", "-d", "w9@nowhere", url=url)
    assert out.returncode == 1
    assert "no live node named w9@nowhere" in _one_line(out) and "ghost@x" in out.stderr
    broker.close()


@pytest.mark.parametrize("args", [
    ["inspect", "bogus"],
    ["inspect", "query_task"],
    ["control", "pool_grow", "x"],
    ["control", "rate_limit", "tasks.add", "3/x"],
    ["control", "autoscale", "4"],
    ["control", "frobnicate"],
    ["control", "terminate", "SIGWHAT", "some-id"],
    ["call", "tasks.add", "--args", "{"],
    ["call", "tasks.add", "--kwargs", "[1]"],
    ["purge", "-Q", ","],
])
def test_usage_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    out = qmulti(tmp_path, *args, url="redis://127.0.0.1:1/0")
    assert out.returncode == 2, out.stderr
    assert _one_line(out).startswith(f"qmulti {args[0]}: ")


@pytest.mark.timeout(60)
def test_call_then_result(tmp_path: Path, redis_server: RedisServer) -> None:
    url = redis_server.url
    out = qmulti(tmp_path, "call", "tasks.add", "--args", "[2, 3]", "--queue", "q1", url=url)
    assert out.returncode == 0, out.stderr
    task_id = out.stdout.strip()
    from qmulti import App

    app = App("t", broker=url, set_as_current=False)
    assert app.broker.stats().queues["q1"] == 1
    pending = qmulti(tmp_path, "result", task_id, "--json", url=url)
    assert json.loads(pending.stdout)["state"] == "PENDING"
    from qmulti.protocol import encode_result

    app.backend.set(task_id, "SUCCESS", encode_result(task_id, "SUCCESS", 5), None)
    done = qmulti(tmp_path, "result", task_id, url=url)
    assert done.returncode == 0 and "SUCCESS" in done.stdout and "5" in done.stdout
    doc = json.loads(qmulti(tmp_path, "result", task_id, "--json", url=url).stdout)
    assert (doc["id"], doc["state"], doc["result"]) == (task_id, "SUCCESS", 5)
    later = qmulti(tmp_path, "call", "tasks.add", "--countdown", "60", url=url)
    assert later.returncode == 0
    assert app.broker.stats().scheduled == 1
