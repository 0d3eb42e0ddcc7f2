"""The seed's tutorial (tests/worker/test_qworker_tutorial.py) on amqp://, with rpc://
results and with a Redis backend: the same project and client, only the URLs differ."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from amqp_support import load_test_module

from helpers import wait_for

_t = load_test_module("test_qworker_tutorial")


def _seed(root: Path, broker: str, backend: str) -> None:
    _t.write_seed(root)
    config = _t.CONFIG.replace("BROKER_URL = 'sqlite:///queue.sqlite3'",
                               f"BROKER_URL = {broker!r}")
    config = config.replace("CELERY_RESULT_BACKEND = 'sqlite:///queue.sqlite3'",
                            f"CELERY_RESULT_BACKEND = {backend!r}")
    assert broker in config and backend in config
    (root / "config.py").write_text(config)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["rpc", "redis"])
def test_tutorial_on_amqp(tmp_path: Path, amqp_url: str, backend: str,
                          request: pytest.FixtureRequest) -> None:
    from node_fixtures import NodeProcess

    backend_url = ("rpc://" if backend == "rpc"
                   else request.getfixturevalue("redis_server").url)
    _seed(tmp_path, amqp_url, backend_url)
    with NodeProcess(tmp_path, "-A", "mycelery", "-l", "info", "-c", "2", name="") as node:
        node.wait_ready()
        wait_for(lambda: any("child 1 idle" in t for t in node.titles()), 20, "child titles")
        client = subprocess.run([sys.executable, "-c", _t.CLIENT], cwd=tmp_path,
                                capture_output=True, text=True, timeout=90)
        assert client.returncode == 0, client.stderr + node.stderr()
        out = json.loads(client.stdout)
        assert (out["local"], out["one"], out["all_correct"]) == (10, 8, True)
        assert out["exc_type"] == "ZeroDivisionError" and out["failed"] is True
        assert "return a / b" in out["traceback"] and out.get("reraised") is True
        lines = (tmp_path / "failures.log").read_text().splitlines()
        assert any(line.startswith(out["failure_id"]) for line in lines)
        assert node.stop(signal.SIGTERM) == 0
    err = node.stderr()
    assert "Traceback" not in err.replace("raised ZeroDivisionError", "")
    assert "guest:guest" not in err  # the password is masked in every log line
