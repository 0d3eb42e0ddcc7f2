"""Middleware: hook order, a raising hook, loading and checking, and a real node."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from node_fixtures import NodeProcess, producer, run_qworker, write_tasks

from qmulti import App
from qmulti.exceptions import ConfigError
from qmulti.middleware import Middleware, Stack, load


class Recorder(Middleware):
    def __init__(self, name: str, calls: list[str]) -> None:
        self.name = name
        self.calls = calls

    def before_publish(self, app: Any, message: Any) -> None:
        self.calls.append(f"{self.name}.before_publish {message.task} {message.queue}")

    def after_publish(self, app: Any, message: Any) -> None:
        self.calls.append(f"{self.name}.after_publish")


class Broken(Middleware):
    def after_publish(self, app: Any, message: Any) -> None:
        raise RuntimeError("hook broke")


def test_before_hooks_run_in_order_and_after_hooks_in_reverse() -> None:
    calls: list[str] = []
    app = App("mw", broker="memory://", middleware=[Recorder("setting", calls)])
    app.add_middleware(Recorder("added", calls))

    @app.task(name="mw.add")
    def add(x: int, y: int) -> int:
        return x + y

    add.delay(1, 2)
    assert calls == ["setting.before_publish mw.add celery", "added.before_publish mw.add celery",
                     "added.after_publish", "setting.after_publish"]
    assert app.broker.stats().queues.get("celery") == 1


def test_a_raising_hook_is_logged_with_its_name_and_never_reaches_the_caller(
        caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []
    app = App("mw", broker="memory://")
    app.add_middleware(Broken)  # a class is made with no arguments
    app.add_middleware(Recorder("after", calls))

    @app.task(name="mw.add")
    def add(x: int, y: int) -> int:
        return x + y

    with caplog.at_level(logging.ERROR):
        add.delay(1, 2)
        add.delay(3, 4)
    assert app.broker.stats().queues.get("celery") == 2  # both published
    assert calls.count("after.after_publish") == 2  # the other hooks still ran
    records = [r for r in caplog.records if "Broken.after_publish" in r.getMessage()]
    assert len(records) == 2 and "hook broke" in records[0].getMessage()
    assert records[0].exc_info is not None and records[1].exc_info is None


def test_no_middleware_and_no_receivers_means_no_hook_work() -> None:
    app = App("mw", broker="memory://")
    stack = app.middleware
    assert isinstance(stack, Stack) and not stack.publishing and not stack.executing
    assert app.middleware is stack  # cached until something changes
    app.conf.update(middleware=[Recorder("x", [])])
    assert app.middleware is not stack and app.middleware.publishing


class NeedsArgs(Middleware):
    def __init__(self, required: str) -> None:
        self.required = required


class WrongHook(Middleware):
    def on_success(self, app: Any) -> None:  # too few parameters
        pass


def test_load_accepts_instances_classes_and_paths_and_refuses_the_rest() -> None:
    assert isinstance(load(Recorder("r", [])), Recorder)
    assert type(load("test_middleware:Broken")) is Broken
    assert type(load("test_middleware.Broken")) is Broken
    for bad, words in [("nope.module:X", "no module named 'nope'"),
                       ("test_middleware:Missing", "no attribute 'Missing'"),
                       ("justaword", "dotted path"),
                       (object(), "is not a qmulti.middleware.Middleware"),
                       (NeedsArgs, "without arguments"),
                       (WrongHook, "WrongHook.on_success cannot take the 4 argument(s)")]:
        with pytest.raises(ConfigError, match=".*") as info:
            load(bad)
        assert words in str(info.value), (bad, str(info.value))
    app = App("mw", broker="memory://", middleware=["nope.module:X"])

    @app.task(name="mw.add")
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(ConfigError, match="nope"):
        add.delay(1, 2)  # nothing published with a broken middleware setting
    with pytest.raises(ConfigError):
        App("mw2", broker="memory://").add_middleware("nope.module:X")


# -- a real node -------------------------------------------------------------------------

AUDIT = """
import threading
from qmulti.middleware import Middleware

class Audit(Middleware):
    def _write(self, line):
        with open(os.path.abspath(f'audit-{os.getpid()}'), 'a') as f:
            f.write(line + '\\n')

    def node_init(self, app, node):
        self._write('node_init')

    def node_ready(self, app, node):
        self._write('node_ready')

    def node_shutdown(self, app, node):
        self._write('node_shutdown')

    def process_start(self, app, consumer):
        self._write('process_start')

    def process_stop(self, app, consumer, exitcode):
        self._write(f'process_stop {exitcode}')

    def on_received(self, app, consumer, request):
        self._write(f'on_received {request.id}')

    def before_execute(self, app, task, request):
        self._write(f'before_execute {task.name} {request.args}')

    def on_success(self, app, task, request, retval):
        self._write(f'on_success {retval}')

    def on_failure(self, app, task, request, exc, einfo):
        self._write(f'on_failure {type(exc).__name__}')

    def after_execute(self, app, task, request, retval, state):
        self._write(f'after_execute {state}')

class Raising(Middleware):
    def on_success(self, app, task, request, retval):
        raise RuntimeError('middleware broke')
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("pool", ["prefork", "solo"])
def test_middleware_from_the_setting_runs_on_a_real_node(tmp_path: Path, pool: str) -> None:
    write_tasks(tmp_path, extra_config="app.conf.middleware = ['tasks:Audit', 'tasks:Raising']",
                extra_tasks=AUDIT)
    app = producer(tmp_path)
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "1", "-P", pool) as node:
        node.wait_ready()
        ok = app.send_task("tasks.add", (2, 2), check=False)
        assert ok.get(timeout=20) == 4  # a raising middleware loses nothing
        bad = app.send_task("tasks.boom", ("x",), check=False)
        with pytest.raises(ValueError):
            bad.get(timeout=20)
        assert node.stop() == 0
    main = (tmp_path / f"audit-{node.pid}").read_text().splitlines()
    consumer_files = [p for p in tmp_path.glob("audit-*") if p.name != f"audit-{node.pid}"]
    if pool == "prefork":
        assert main == ["node_init", "node_ready", "node_shutdown"]
        assert len(consumer_files) == 1
        lines = consumer_files[0].read_text().splitlines()
    else:  # the consumer is a thread of the main process
        assert not consumer_files
        lines = [ln for ln in main if not ln.startswith("node_")]
        assert [ln for ln in main if ln.startswith("node_")] == [
            "node_init", "node_ready", "node_shutdown"]
    assert lines == [
        "process_start", f"on_received {ok.id}", "before_execute tasks.add [2, 2]",
        "on_success 4", "after_execute SUCCESS", f"on_received {bad.id}",
        "before_execute tasks.boom ['x']", "on_failure ValueError", "after_execute FAILURE",
        "process_stop 0"]
    log = node.stderr()
    assert "tasks.Raising.on_success" in log and "middleware broke" in log
    assert log.count("Traceback") == 1  # the traceback once, not per task


@pytest.mark.timeout(60)
def test_a_wrong_middleware_fails_the_node_at_start_with_one_line(tmp_path: Path) -> None:
    write_tasks(tmp_path, extra_config="app.conf.middleware = ['tasks:Nowhere']")
    proc = run_qworker(tmp_path, "-A", "tasks")
    assert proc.returncode == 78
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Nowhere" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
