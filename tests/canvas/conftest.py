"""A real node per store (SQLite file, private redis-server) running the canvas tasks,
and a producer app on the same store. Module-scoped: a node start costs a second."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "worker"))  # node_fixtures

from node_fixtures import NodeProcess  # noqa: E402

from qmulti import App  # noqa: E402
from redis_server import RedisServer  # noqa: E402

TASKS = '''
import os
from qmulti import App

app = App('ctasks', broker={url!r})
app.conf.update(worker_heartbeat_interval=0.5, worker_heartbeat_expiry=2.0)

@app.task
def add(x, y):
    return x + y

@app.task
def mul(x, y):
    return x * y

@app.task
def tsum(numbers):
    return sum(numbers)

@app.task
def boom(*args):
    raise KeyError("boom " + repr(args))

@app.task
def log_error(request, exc, traceback):
    with open(os.path.join({root!r}, "errors.log"), "a") as f:
        f.write(f"{{request.id}} {{type(exc).__name__}} {{exc}}\\n")

@app.task
def note(task_id, tag="e"):
    with open(os.path.join({root!r}, "notes.log"), "a") as f:
        f.write(f"{{tag}} {{task_id}}\\n")
    return task_id

@app.task(bind=True)
def replaced(self, x):
    self.replace(add.s(x, 100))

@app.task
def identity(x):
    return x
'''


def _load(url: str, root: Path) -> App:
    producer = App("ctasks", broker=url)
    code = TASKS.format(url=url, root=str(root)).replace(
        f"app = App('ctasks', broker={url!r})", "app = producer")
    exec(compile(code, "ctasks", "exec"), {"producer": producer, "__name__": "ctasks"})
    producer.set_current()
    return producer


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def canvas_env(request: pytest.FixtureRequest,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[App, Path]]:
    root = tmp_path_factory.mktemp(f"canvas-{request.param}")
    server = None
    if request.param == "redis":
        server = RedisServer(root, appendonly=False).start()
        url = server.url
    else:
        url = f"sqlite:///{root / 'q.sqlite3'}"
    (root / "ctasks.py").write_text(TASKS.format(url=url, root=str(root)))
    try:
        with NodeProcess(root, "-A", "ctasks", "-c", "2") as proc:
            proc.wait_ready()
            app = _load(url, root)
            yield app, root
            app.close()
    finally:
        if server is not None:
            server.stop()


@pytest.fixture
def app(canvas_env: tuple[App, Path]) -> App:
    return canvas_env[0]


@pytest.fixture
def root(canvas_env: tuple[App, Path]) -> Path:
    return canvas_env[1]
