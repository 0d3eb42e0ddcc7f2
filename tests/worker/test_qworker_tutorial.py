"""The Celery tutorial layout, unchanged but for the import, run by a real node."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from node_fixtures import NodeProcess

from helpers import wait_for

CONFIG = """
BROKER_URL = 'sqlite:///queue.sqlite3'
CELERY_RESULT_BACKEND = 'sqlite:///queue.sqlite3'
CELERY_IMPORTS = ('mycelery.tasks',)
CELERY_TASK_SERIALIZER = 'json'
CELERY_ACCEPT_CONTENT = ['json']
CELERY_TIMEZONE = 'Europe/Paris'
CELERY_ENABLE_UTC = True
CELERY_ROUTES = {}
BROKER_POOL_LIMIT = 10
CELERY_TASK_RESULT_EXPIRES = 3600
CELERY_MAX_CACHED_RESULTS = 100


def record_failure(self, exc, task_id, args, kwargs, einfo):
    import os
    with open('failures.log', 'a') as f:
        f.write(f'{task_id} {type(exc).__name__} {os.getpid()}\\n')


CELERY_ANNOTATIONS = {'*': {'on_failure': record_failure}}
"""

CELERY_PY = """
from qmulti import App

app = App('mycelery')
app.config_from_object('config')

if __name__ == '__main__':
    app.start()
"""

TASKS_PY = """
from .celery import app


@app.task
def add(a, b):
    return a + b


@app.task
def divide(a, b):
    return a / b
"""

CLIENT = """
import json, os
from concurrent.futures import ThreadPoolExecutor
from mycelery.tasks import add, divide

out = {}
out['local'] = add(4, 6)
out['one'] = add.delay(4, 4).get(timeout=10)
results = [add.delay(i, i) for i in range(200)]
with ThreadPoolExecutor(8) as pool:
    values = list(pool.map(lambda r: r.get(timeout=30), results))
out['all_correct'] = values == [2 * i for i in range(200)]
r = divide.delay(1, 0)
exc = r.get(timeout=10, propagate=False)
out['exc_type'] = type(exc).__name__
out['failed'] = r.failed()
out['traceback'] = r.traceback
try:
    divide.delay(1, 0).get(timeout=10)
except ZeroDivisionError:
    out['reraised'] = True
out['failure_id'] = r.id
out['client_pid'] = os.getpid()
print(json.dumps(out))
"""


def write_seed(root: Path) -> None:
    (root / "config.py").write_text(CONFIG)
    pkg = root / "mycelery"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "celery.py").write_text(CELERY_PY)
    (pkg / "tasks.py").write_text(TASKS_PY)


@pytest.mark.timeout(90)
def test_tutorial_layout_end_to_end(tmp_path: Path) -> None:
    write_seed(tmp_path)
    with NodeProcess(tmp_path, "-A", "mycelery", "-l", "info", "-c", "2", name="") as node:
        node.wait_ready()
        wait_for(lambda: any("child 1 idle" in t for t in node.titles()), 10, "child titles")
        client = subprocess.run([sys.executable, "-c", CLIENT], cwd=tmp_path,
                                capture_output=True, text=True, timeout=60)
        assert client.returncode == 0, client.stderr
        out = json.loads(client.stdout)
        assert out["local"] == 10
        assert out["one"] == 8
        assert out["all_correct"] is True
        assert out["exc_type"] == "ZeroDivisionError"
        assert out["failed"] is True
        assert "ZeroDivisionError" in out["traceback"]
        assert "tasks.py" in out["traceback"] and "return a / b" in out["traceback"]
        assert out.get("reraised") is True
        # The '*' annotation ran in a pool child of the node, not in the client.
        lines = (tmp_path / "failures.log").read_text().splitlines()
        ran = [line for line in lines if line.startswith(out["failure_id"])]
        assert ran and ran[0].split()[1] == "ZeroDivisionError"
        assert int(ran[0].split()[2]) != out["client_pid"]
        assert node.stop(signal.SIGTERM) == 0
        node.wait_message("STOPPING=1", 5)
    err = node.stderr()
    assert "Traceback" not in err.replace("raised ZeroDivisionError", "")
    assert "/celery@" in err and "ready" in err


@pytest.mark.timeout(60)
def test_app_start_runs_the_node_from_celery_py(tmp_path: Path) -> None:
    """`python -m mycelery.celery worker -l info`: the app's own start() entry."""
    write_seed(tmp_path)
    import os
    import socket
    import uuid

    address = f"\0qmulti-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(30)
    env = dict(os.environ, NOTIFY_SOCKET="@" + address[1:])
    proc = subprocess.Popen([sys.executable, "-m", "mycelery.celery", "worker", "-l", "info",
                             "-c", "1"], cwd=tmp_path, env=env, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        assert b"READY=1" in sock.recv(4096)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        sock.close()
