"""The three Celery getting-started examples that use a RabbitMQ broker, rebuilt here as
projects of our own (the same shapes and settings a user copies, `celery` renamed to
`qmulti` in the imports, the URL pointed at this test's vhost):

- first steps: a single `tasks.py` on `pyamqp://guest@host//` (the password left out,
  as the docs do), results over `rpc://` and, the docs' "popular combination", Redis;
- next steps: a `proj` package (`proj/celery.py` with `include=` and `result_expires`,
  `proj/tasks.py`), routed to a `hipri` queue and run with `-A proj -Q hipri,celery`;
- the `app` example: `Celery('myapp', broker=..., task_acks_late=True)` with no result
  backend, started as `-A myapp:app` and as `python myapp.py worker`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from node_fixtures import NodeProcess

from helpers import wait_for

pytestmark = pytest.mark.timeout(120)


def _user_only(url: str) -> str:
    """`amqp://guest:guest@host:port/vhost` -> `pyamqp://guest@host:port/vhost`."""
    rest = url.partition("://")[2]
    credentials, _, where = rest.partition("@")
    return f"pyamqp://{credentials.partition(':')[0]}@{where}"


def _client(root: Path, code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=root,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


FIRST_STEPS = '''
from qmulti import Celery

app = Celery('tasks', backend={backend!r}, broker={broker!r})


@app.task
def add(x, y):
    return x + y


@app.task
def fail(x):
    raise KeyError(x)
'''


@pytest.mark.parametrize("backend", ["rpc", "redis"])
def test_first_steps(tmp_path: Path, amqp_url: str, backend: str,
                     request: pytest.FixtureRequest) -> None:
    backend_url = ("rpc://" if backend == "rpc"
                   else request.getfixturevalue("redis_server").url)
    broker = _user_only(amqp_url)
    (tmp_path / "tasks.py").write_text(FIRST_STEPS.format(backend=backend_url,
                                                          broker=broker))
    with NodeProcess(tmp_path, "-A", "tasks", "-l", "INFO", "-c", "2", name="") as node:
        node.wait_ready()
        out = _client(tmp_path, """
            import json, time
            from tasks import add, fail
            result = add.delay(4, 4)
            value = result.get(timeout=10)
            bad = fail.delay('nope')
            try:
                bad.get(timeout=10)
                raised = None
            except KeyError as exc:
                raised = repr(exc)
            print(json.dumps({"value": value, "ready": result.ready(),
                              "state": result.state, "raised": raised,
                              "failed": bad.failed(), "tb": bad.traceback or "",
                              "quiet": repr(bad.get(propagate=False))}))
        """)
        assert out["value"] == 8 and out["ready"] is True and out["state"] == "SUCCESS"
        assert out["raised"] == "KeyError('nope')" and out["failed"] is True
        assert "raise KeyError(x)" in out["tb"] and out["quiet"] == "KeyError('nope')"
        assert node.stop() == 0
    assert "Traceback" not in node.stderr().replace("raised KeyError", "")


PROJ_CELERY = '''
from qmulti import Celery

app = Celery('proj',
             broker={broker!r},
             backend='rpc://',
             include=['proj.tasks'])

app.conf.update(
    result_expires=3600,
    task_routes={{'proj.tasks.add': {{'queue': 'hipri'}}}},
)

if __name__ == '__main__':
    app.start()
'''

PROJ_TASKS = '''
from .celery import app


@app.task
def add(x, y):
    return x + y


@app.task
def mul(x, y):
    return x * y


@app.task
def xsum(numbers):
    return sum(numbers)


@app.task(bind=True)
def where(self):
    return self.request.delivery_info.get('routing_key')
'''


def test_next_steps_project(tmp_path: Path, amqp_url: str, amqp_vhost: Any) -> None:
    amqp_vhost.queues.add("hipri")
    package = tmp_path / "proj"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "celery.py").write_text(PROJ_CELERY.format(broker=amqp_url))
    (package / "tasks.py").write_text(PROJ_TASKS)
    with NodeProcess(tmp_path, "-A", "proj", "-l", "INFO", "-Q", "hipri,celery",
                     "-c", "2", name="") as node:
        node.wait_ready()
        out = _client(tmp_path, """
            import json, time
            from proj.tasks import add, mul, xsum, where
            first = add.delay(2, 2)
            sent = time.time()
            later = mul.apply_async((3, 4), countdown=1)
            routed = where.apply_async(queue='hipri')
            print(json.dumps({
                "add": first.get(timeout=10), "mul": later.get(timeout=15),
                "waited": time.time() - sent, "xsum": xsum.delay([1, 2, 3]).get(timeout=10),
                "routed": routed.get(timeout=10), "id": first.id,
                "state": first.state}))
        """)
        assert (out["add"], out["mul"], out["xsum"]) == (4, 12, 6)
        assert out["waited"] >= 1.0  # the countdown waited in the broker
        assert out["routed"] == "hipri" and out["state"] == "SUCCESS" and out["id"]
        assert node.stop() == 0
    log = node.stderr()
    assert "proj.tasks.add" in log and "guest:guest" not in log


MYAPP = '''
from time import sleep

from qmulti import Celery

app = Celery(
    'myapp',
    broker={broker!r},
    task_acks_late=True,
)


@app.task
def add(x, y):
    sleep(0.2)
    return x + y


if __name__ == '__main__':
    app.start()
'''


@pytest.mark.parametrize("how", ["-A myapp:app", "python myapp.py worker"])
def test_app_example_without_a_result_backend(tmp_path: Path, amqp_url: str,
                                              how: str) -> None:
    (tmp_path / "myapp.py").write_text(MYAPP.format(broker=amqp_url))
    if how.startswith("-A"):
        node = NodeProcess(tmp_path, "-A", "myapp:app", "-l", "INFO", "-c", "1", name="")
    else:
        node = NodeProcess(tmp_path, "-l", "INFO", "-c", "1", name="",
                           command=[sys.executable, "myapp.py", "worker"])
    with node:
        node.wait_ready()
        _client(tmp_path, """
            import json
            from myapp import add
            print(json.dumps({"id": add.delay(2, 2).id}))
        """)
        wait_for(lambda: "succeeded" in node.stderr() and ": 4" in node.stderr(), 20,
                 "the node's 'succeeded ... : 4' line")
        assert node.stop() == 0
