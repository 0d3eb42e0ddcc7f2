"""AsyncResult against a node simulated in the test: claim -> start -> execute -> finish,
with the real broker/backend (memory:// and a sqlite file) and the real wire format."""

from __future__ import annotations

import builtins
import os
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import pytest

from qmulti import App, AsyncResult, ExceptionInfo, Request, states
from qmulti.exceptions import TaskRevokedError, TimeoutError
from qmulti.protocol import decode_envelope, encode_result, exception_to_dict


class CustomError(Exception):
    """Importable in the caller: rebuilt with its own type."""


@pytest.fixture(params=["memory", "sqlite"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'q.db'}"
    the_app = App("proj", broker=url)

    @the_app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    @the_app.task(name="t.fail")
    def fail(message: str) -> None:
        raise CustomError(message)

    @the_app.task(name="t.alien")
    def alien() -> None:
        cls = type("AlienError", (Exception,), {"__module__": "qm_not_importable_mod"})
        raise cls("from elsewhere")

    yield the_app
    the_app.close()


def run_one(app: App, queue: str = "celery", timeout: float = 10.0) -> str:
    """Do what a pool child does with one message; returns the final state."""
    broker, backend = app.broker, app.backend
    [delivery] = broker.claim([queue], "test-node", "c1", 1, timeout)
    env = decode_envelope(delivery.body, app.accept_content())
    task = app.tasks[env.task]
    broker.start(delivery, env.id, encode_result(env.id, states.STARTED), backend, None)
    request = Request(id=env.id, retries=env.retries, args=tuple(env.args),
                      kwargs=dict(env.kwargs), hostname="test-node",
                      delivery_info={"queue": delivery.queue,
                                     "deliveries": delivery.deliveries + 1})
    try:
        value = task.execute(request, env.args, env.kwargs)
    except Exception as exc:
        tb = traceback.format_exc()
        task.on_failure(exc, env.id, env.args, env.kwargs, ExceptionInfo(exc, type(exc), tb))
        meta = encode_result(env.id, states.FAILURE, exception_to_dict(exc), traceback=tb)
        broker.finish(delivery, env.id, states.FAILURE, meta, backend, None)
        return states.FAILURE
    task.on_success(value, env.id, env.args, env.kwargs)
    meta = encode_result(env.id, states.SUCCESS, value)
    broker.finish(delivery, env.id, states.SUCCESS, meta, backend, None)
    return states.SUCCESS


def test_pending_started_success(app: App) -> None:
    result = app.tasks["t.add"].delay(4, 4)
    assert result.state == result.status == states.PENDING
    assert not result.ready() and result.result is None and result.traceback is None
    broker = app.broker
    [delivery] = broker.claim(["celery"], "n", "c", 1, 5)
    assert result.state == states.PENDING  # claimed (prefetched) but not begun
    broker.start(delivery, result.id, encode_result(result.id, states.STARTED), app.backend,
                 None)
    assert result.state == states.STARTED and not result.ready()
    broker.finish(delivery, result.id, states.SUCCESS,
                  encode_result(result.id, states.SUCCESS, 8), app.backend, None)
    assert result.state == states.SUCCESS
    assert result.ready() and result.successful() and not result.failed()
    assert result.get(timeout=1) == 8 and result.result == 8
    assert result.date_done is not None


def test_get_waits_for_a_consumer_in_another_thread(app: App) -> None:
    result = app.tasks["t.add"].delay(2, 3)
    states_seen: list[str] = []

    def node() -> None:
        # Its own connection, as a pool child has; the memory store is shared in-process.
        states_seen.append(run_one(app))

    thread = threading.Thread(target=node)
    started = time.monotonic()
    thread.start()
    try:
        assert result.get(timeout=20) == 5
    finally:
        thread.join(20)
    assert states_seen == [states.SUCCESS]
    assert time.monotonic() - started < 20


def test_failure_is_rebuilt_with_its_type_and_traceback(app: App) -> None:
    result = app.tasks["t.fail"].delay("bad input")
    assert run_one(app) == states.FAILURE
    assert result.failed() and result.ready() and not result.successful()
    assert result.state == states.FAILURE
    with pytest.raises(CustomError, match="bad input"):
        result.get(timeout=1)
    exc = result.get(propagate=False)
    assert isinstance(exc, CustomError) and exc.args == ("bad input",)
    assert isinstance(result.result, CustomError)
    assert "Traceback" in result.traceback and "in fail" in result.traceback
    assert "CustomError: bad input" in result.traceback


def test_unimportable_exception_keeps_name_and_message(app: App) -> None:
    result = app.tasks["t.alien"].delay()
    run_one(app)
    with pytest.raises(Exception, match="from elsewhere") as info:
        result.get(timeout=1)
    assert type(info.value).__name__ == "AlienError"


def test_on_failure_annotation_runs_with_einfo(app: App) -> None:
    calls: list[Any] = []

    def on_failure(self: Any, exc: BaseException, task_id: str, args: Any, kwargs: Any,
                   einfo: ExceptionInfo) -> None:
        calls.append((self.name, exc, task_id, tuple(args), einfo.type, einfo.traceback))

    app.conf.update(CELERY_ANNOTATIONS={"*": {"on_failure": on_failure}})
    result = app.tasks["t.fail"].delay("x")
    run_one(app)
    [(name, exc, task_id, args, etype, tb)] = calls
    assert (name, task_id, args, etype) == ("t.fail", result.id, ("x",), CustomError)
    assert isinstance(exc, CustomError) and "CustomError: x" in tb


def test_get_timeout_raises_timeout_error(app: App) -> None:
    result = app.tasks["t.add"].delay(1, 1)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        result.get(timeout=0.2)
    assert 0.15 <= time.monotonic() - started < 10
    assert issubclass(TimeoutError, builtins.TimeoutError)  # `except TimeoutError` works too


def test_revoke_and_forget(app: App) -> None:
    result = app.tasks["t.add"].delay(1, 1)
    result.revoke()
    assert result.state == states.REVOKED and result.ready()
    with pytest.raises(TaskRevokedError):
        result.get(timeout=1)
    assert isinstance(result.get(propagate=False), TaskRevokedError)
    result.forget()
    assert result.state == states.PENDING


def test_revoke_leaves_a_finished_result_alone(app: App) -> None:
    result = app.tasks["t.add"].delay(1, 2)
    run_one(app)
    result.revoke()
    assert result.get(timeout=1) == 3


def test_identity_and_repr(app: App) -> None:
    result = app.AsyncResult("abc")
    assert repr(result) == "<AsyncResult: abc>"
    assert result == AsyncResult("abc") == "abc"
    assert result != AsyncResult("abd")
    assert len({result, AsyncResult("abc", app=app)}) == 1
    assert app.tasks["t.add"].AsyncResult("abc").app is app


def test_async_result_without_app_uses_the_current_app(app: App) -> None:
    """As in Celery: `AsyncResult(id)` reads the backend of the app made last."""
    result = app.tasks["t.add"].delay(2, 3)
    run_one(app)
    assert AsyncResult(result.id).get(timeout=1) == 5
    assert AsyncResult(result.id).app is app


def test_final_results_are_cached_and_bounded(app: App) -> None:
    app.conf.update(result_cache_max=2)
    results = [app.tasks["t.add"].delay(i, i) for i in range(3)]
    for _ in results:
        run_one(app)
    assert [r.get(timeout=1) for r in results] == [0, 2, 4]
    assert len(app.result_cache) == 2
    app.backend.forget(results[2].id)
    assert results[2].get(timeout=1) == 4  # served from the cache
    results[2].forget()
    assert results[2].state == states.PENDING


def test_forked_child_gets_its_own_connection(tmp_path: Path) -> None:
    app = App("proj", broker=f"sqlite:///{tmp_path / 'q.db'}")

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    parent_broker = app.broker
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            os.close(read_fd)
            fresh = app.broker is not parent_broker
            add.delay(1, 2)
            os.write(write_fd, b"fresh" if fresh else b"shared")
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as reader:
        said = reader.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and said == b"fresh"
    assert app.broker is parent_broker
    assert run_one(app) == states.SUCCESS
    app.close()


def test_celery_tutorial_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The seed's layout: top-level config.py with old names, pkg/celery.py, pkg/tasks.py."""
    pkg = f"qm_tut_{tmp_path.name.replace('-', '_')}"
    cfg = f"{pkg}_config"
    (tmp_path / f"{cfg}.py").write_text(
        f"BROKER_URL = 'sqlite:///{tmp_path / 'queue.sqlite3'}'\n"
        "CELERY_RESULT_BACKEND = BROKER_URL\n"
        f"CELERY_IMPORTS = ('{pkg}.tasks',)\n"
        "CELERY_TASK_SERIALIZER = 'json'\nCELERY_ACCEPT_CONTENT = ['json']\n"
        "CELERY_TIMEZONE = 'Europe/Paris'\nCELERY_ENABLE_UTC = True\nCELERY_ROUTES = {}\n"
        "BROKER_POOL_LIMIT = 10\nCELERY_TASK_RESULT_EXPIRES = 3600\n"
        "CELERY_MAX_CACHED_RESULTS = 10\nFAILED = []\n"
        "def on_failure(self, exc, task_id, args, kwargs, einfo):\n"
        "    FAILED.append((self.name, task_id))\n"
        "CELERY_ANNOTATIONS = {'*': {'on_failure': on_failure}}\n")
    (tmp_path / pkg).mkdir()
    (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / pkg / "celery.py").write_text(
        f"from qmulti import App\napp = App('{pkg}')\napp.config_from_object('{cfg}')\n"
        "if __name__ == '__main__':\n    app.start()\n")
    (tmp_path / pkg / "tasks.py").write_text(
        "from .celery import app\n@app.task\ndef add(a, b):\n    return a + b\n"
        "@app.task\ndef boom():\n    raise ZeroDivisionError('nope')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    app = importlib.import_module(f"{pkg}.celery").app
    assert app.tasks == {}
    app.import_default_modules()  # what the node does at start
    add, boom = app.tasks[f"{pkg}.tasks.add"], app.tasks[f"{pkg}.tasks.boom"]
    try:
        assert add(4, 6) == 10
        result, failure = add.delay(4, 4), boom.delay()
        assert run_one(app) == states.SUCCESS and run_one(app) == states.FAILURE
        assert result.get(timeout=5) == 8
        with pytest.raises(ZeroDivisionError, match="nope"):
            failure.get(timeout=5)
        assert "ZeroDivisionError" in failure.traceback
        assert importlib.import_module(cfg).FAILED == [(boom.name, failure.id)]
        assert app.conf.freeze().result_expires == 3600.0
    finally:
        app.close()
