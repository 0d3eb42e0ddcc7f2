"""Celery's signals: the Signal object in-process, publish signals in one process, and
the node's signals in real qworker processes on the prefork and threads pools."""

from __future__ import annotations

import gc
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from node_fixtures import NodeProcess, producer, results, write_tasks

from helpers import wait_for
from qmulti import App, signals
from qmulti.signals import Signal

# -- the Signal object -------------------------------------------------------------------


def test_connect_as_decorator_call_and_with_sender() -> None:
    sig = Signal("test")
    seen: list[tuple[str, Any, dict[str, Any]]] = []

    @sig.connect
    def bare(sender: Any = None, **kw: Any) -> str:
        seen.append(("bare", sender, kw))
        return "b"

    @sig.connect(sender="tasks.add")
    def only_add(sender: Any = None, **kw: Any) -> str:
        seen.append(("only_add", sender, kw))
        return "a"

    def called(sender: Any = None, **kw: Any) -> None:
        seen.append(("called", sender, kw))

    assert sig.connect(called) is called
    out = sig.send(sender="tasks.mul", x=1)
    assert [r for r, _ in out] == [bare, called] and [v for _, v in out] == ["b", None]
    assert seen[0] == ("bare", "tasks.mul", {"signal": sig, "x": 1})
    seen.clear()
    sig.send(sender="tasks.add")
    assert [name for name, _, _ in seen] == ["bare", "only_add", "called"]
    # A string sender also matches an object by its name (a task), unlike Celery.
    task = type("T", (), {"name": "tasks.add"})()
    seen.clear()
    sig.send(sender=task)
    assert [name for name, _, _ in seen] == ["bare", "only_add", "called"]
    assert sig.disconnect(bare) and not sig.disconnect(bare)
    assert not sig.disconnect(only_add)  # connected with a sender: needs it to go
    assert sig.disconnect(only_add, sender="tasks.add")
    seen.clear()
    sig.send(sender="tasks.add")
    assert [name for name, _, _ in seen] == ["called"]


def test_sender_object_filter_and_duplicates() -> None:
    sig = Signal("test")
    a, b = object(), object()
    got: list[Any] = []

    def rec(sender: Any = None, **kw: Any) -> None:
        got.append(sender)

    sig.connect(rec, sender=a)
    sig.connect(rec, sender=a)  # the same connection twice is one connection
    sig.send(sender=b)
    sig.send(sender=a)
    assert got == [a]


def test_weak_receivers_go_away_and_strong_ones_stay() -> None:
    sig = Signal("test")

    def make() -> Any:
        return lambda **kw: "alive"

    sig.connect(make())  # weak by default, as Celery: nothing else holds it
    sig.connect(make(), weak=False)
    gc.collect()
    assert [v for _, v in sig.send(sender=None)] == ["alive"]


def test_a_raising_receiver_is_logged_returned_and_the_rest_still_run(
        caplog: pytest.LogCaptureFixture) -> None:
    sig = Signal("test_sig")

    def broken_receiver(**kw: Any) -> None:
        raise RuntimeError("receiver broke")

    def fine(**kw: Any) -> str:
        return "ok"

    sig.connect(broken_receiver)
    sig.connect(fine)
    with caplog.at_level(logging.ERROR):
        out = sig.send(sender=None)
        out2 = sig.send(sender=None)
    assert isinstance(out[0][1], RuntimeError) and out[1] == (fine, "ok")
    assert isinstance(out2[0][1], RuntimeError)
    records = [r for r in caplog.records if "broken_receiver" in r.getMessage()]
    assert len(records) == 2 and "test_sig" in records[0].getMessage()
    # The traceback once, then one line per failure: a broken receiver cannot flood.
    assert records[0].exc_info is not None and records[1].exc_info is None


# -- in one process: publish signals and the app's own signals ---------------------------


def test_publish_signals_and_app_signals_in_the_sender() -> None:
    app = App("pub", broker="memory://")

    @app.task(name="pub.add")
    def add(x: int, y: int) -> int:
        return x + y

    seen: list[tuple[str, Any]] = []

    def before(sender: Any = None, headers: Any = None, body: Any = None,
               **kw: Any) -> None:
        seen.append(("before", (sender, headers["id"], headers["task"], body[0],
                                kw["routing_key"], sorted(kw))))

    def after(sender: Any = None, headers: Any = None, body: Any = None, **kw: Any) -> None:
        seen.append(("after", (sender, headers["id"], app.broker.stats().queues.get("hi", 0))))

    def configured(sender: Any = None, source: Any = None, **kw: Any) -> None:
        seen.append(("configure", (sender, source)))

    def finalized(sender: Any = None, **kw: Any) -> None:
        seen.append(("finalize", sender))

    app.on_after_configure.connect(configured)
    app.on_after_finalize.connect(finalized)
    signals.before_task_publish.connect(before)
    signals.after_task_publish.connect(after)
    try:
        r = add.apply_async((2, 3), queue="hi")
        add.delay(1, 1)
    finally:
        signals.before_task_publish.disconnect(before)
        signals.after_task_publish.disconnect(after)
    add.delay(5, 5)  # nobody listens any more
    assert seen[0] == ("configure", (app, app.conf)) and seen[1] == ("finalize", app)
    kinds = [k for k, _ in seen[2:]]
    assert kinds == ["before", "after", "before", "after"]
    assert seen[2][1] == ("pub.add", r.id, "pub.add", [2, 3], "hi",
                          ["declare", "exchange", "properties", "retry_policy",
                           "routing_key", "signal"])
    assert seen[3][1][:2] == ("pub.add", r.id) and seen[3][1][2] >= 1  # after: published
    assert app.middleware.publishing is False


# -- real nodes --------------------------------------------------------------------------

SIGNAL_TASKS = """
import json, sqlite3, threading
from qmulti import signals

OUT = os.path.abspath('sig')
os.makedirs(OUT, exist_ok=True)
_local = threading.local()

def _record(kind, **info):
    path = os.path.join(OUT, f'{kind}-{os.getpid()}-{threading.get_ident()}.jsonl')
    with open(path, 'a') as f:
        f.write(json.dumps(info) + '\\n')

@signals.worker_process_init.connect
def open_db(sender=None, **kw):
    _local.conn = sqlite3.connect(':memory:')  # thread-bound: one per consumer
    _record('init', conn=id(_local.conn))

@signals.worker_process_shutdown.connect
def close_db(sender=None, pid=None, exitcode=None, **kw):
    _record('shutdown', pid=pid, exitcode=exitcode)

@signals.worker_init.connect
def node_init(sender=None, **kw):
    _record('worker_init', node=sender.opts.name)

@signals.worker_ready.connect
def node_ready(sender=None, **kw):
    _record('worker_ready', node=sender.opts.name)

@signals.worker_shutdown.connect
def node_down(sender=None, **kw):
    _record('worker_shutdown', node=sender.opts.name)

@signals.task_success.connect
def succeeded(sender=None, result=None, **kw):
    _record('success', task=sender.name, result=result)

@signals.task_success.connect
def broken_receiver(sender=None, **kw):
    raise RuntimeError('receiver broke')

@signals.task_failure.connect
def failed(sender=None, task_id=None, exception=None, args=None, einfo=None, **kw):
    _record('failure', task=sender.name, id=task_id, exc=type(exception).__name__,
            args=list(args), tb='ValueError' in str(einfo))

@signals.task_retry.connect
def retried(sender=None, request=None, reason=None, einfo=None, **kw):
    _record('retry', task=sender.name, id=request.id, reason=str(reason))

@app.task
def use_db(seconds):
    time.sleep(seconds)
    conn = _local.conn
    assert conn.execute('select 41 + 1').fetchone() == (42,)
    return [os.getpid(), threading.get_ident(), id(conn)]

@app.task(bind=True, max_retries=3)
def flaky(self):
    if self.request.retries < 1:
        raise self.retry(exc=ValueError('once'), countdown=0.1)
    return 'ok'
"""


def _records(root: Path, kind: str) -> list[dict[str, Any]]:
    out = []
    for path in sorted((root / "sig").glob(f"{kind}-*.jsonl")):
        pid, tid = path.stem.split("-")[1:]
        for line in path.read_text().splitlines():
            out.append({**json.loads(line), "pid": int(pid), "tid": int(tid)})
    return out


@pytest.mark.timeout(90)
@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_node_signals_fire_once_each_in_the_consumer(tmp_path: Path, pool: str) -> None:
    write_tasks(tmp_path, extra_tasks=SIGNAL_TASKS)
    app = producer(tmp_path)
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "2", "-P", pool,
                     "--prefetch-multiplier", "1") as node:
        node.wait_ready()
        assert [r["node"] for r in _records(tmp_path, "worker_init")] == [
            r["node"] for r in _records(tmp_path, "worker_ready")]
        assert len(_records(tmp_path, "worker_ready")) == 1
        ids = [app.send_task("tasks.use_db", (0.3,), check=False).id for _ in range(6)]
        used = results(app, ids, timeout=30)
        add = app.send_task("tasks.add", (2, 3), check=False)
        boom = app.send_task("tasks.boom", ("bad",), check=False)
        flaky = app.send_task("tasks.flaky", (), check=False)
        assert add.get(timeout=20) == 5  # a raising task_success receiver loses nothing
        assert flaky.get(timeout=20) == "ok"
        with pytest.raises(ValueError):
            boom.get(timeout=20)
        # One sqlite3 connection per consumer (child or thread), opened in it, and used by
        # every task that consumer ran; both consumers ran some.
        inits = {(r["pid"], r["tid"]): r["conn"] for r in _records(tmp_path, "init")}
        assert len(inits) == 2
        assert {(pid, tid) for pid, tid, _ in used} == set(inits)
        for pid, tid, conn in used:
            assert inits[(pid, tid)] == conn
        if pool == "prefork":
            assert len({pid for pid, _ in inits}) == 2 and node.pid not in {
                pid for pid, _ in inits}
        else:
            assert {pid for pid, _ in inits} == {node.pid}
        # Sent before each outcome is stored: all there once the results are.
        success = [r["task"] for r in _records(tmp_path, "success")]
        assert sorted(success) == sorted(["tasks.use_db"] * 6 + ["tasks.add", "tasks.flaky"])
        failure = _records(tmp_path, "failure")
        assert [(r["task"], r["id"], r["exc"], r["args"], r["tb"]) for r in failure] == [
            ("tasks.boom", boom.id, "ValueError", ["bad"], True)]
        retry = _records(tmp_path, "retry")
        assert [(r["task"], r["id"]) for r in retry] == [("tasks.flaky", flaky.id)]
        assert "once" in retry[0]["reason"]
        for r in _records(tmp_path, "success") + failure + retry:
            assert (r["pid"], r["tid"]) in inits  # in the consumer, not the main process
        assert node.stop() == 0
    log = node.stderr()
    assert "broken_receiver" in log and "receiver broke" in log
    assert log.count("Traceback") >= 1
    assert {(r["pid"], r["exitcode"]) for r in _records(tmp_path, "shutdown")} == {
        (pid, 0) for pid, _ in inits}
    assert len(_records(tmp_path, "worker_shutdown")) == 1
    main = {r["pid"] for r in _records(tmp_path, "worker_init") +
            _records(tmp_path, "worker_ready") + _records(tmp_path, "worker_shutdown")}
    assert main == {node.pid}


SETUP_LOGGING = """
@signals.setup_logging.connect
def own_logging(loglevel=None, logfile=None, format=None, **kw):
    import logging, sys
    logging.basicConfig(stream=sys.stderr, level=loglevel, format='OWN %(message)s')
    _record('setup_logging', level=loglevel)
"""


@pytest.mark.timeout(60)
def test_setup_logging_receiver_replaces_the_nodes_logging(tmp_path: Path) -> None:
    write_tasks(tmp_path, extra_tasks=SIGNAL_TASKS + SETUP_LOGGING)
    app = producer(tmp_path)
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "1", "-l", "info") as node:
        node.wait_ready()
        assert app.send_task("tasks.add", (1, 1), check=False).get(timeout=20) == 2
        assert node.stop() == 0
    assert [r["level"] for r in _records(tmp_path, "setup_logging")] == [logging.INFO]
    lines = [ln for ln in node.stderr().splitlines() if "ready" in ln]
    assert lines and all(ln.startswith("OWN ") for ln in lines)


@pytest.mark.timeout(60)
def test_after_return_is_called_after_success_and_failure(tmp_path: Path) -> None:
    extra = """
class Tracked(app.task_cls):
    def after_return(self, status, retval, task_id, args, kwargs, einfo):
        with open(os.path.abspath('after_return'), 'a') as f:
            f.write(f'{status} {task_id} {retval!r} {args} {einfo is not None}\\n')

@app.task(base=Tracked)
def tracked(fail):
    if fail:
        raise KeyError('nope')
    return 7
"""
    write_tasks(tmp_path, extra_tasks=extra)
    app = producer(tmp_path)
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "1") as node:
        node.wait_ready()
        ok = app.send_task("tasks.tracked", (False,), check=False)
        bad = app.send_task("tasks.tracked", (True,), check=False)
        assert ok.get(timeout=20) == 7
        with pytest.raises(KeyError):
            bad.get(timeout=20)
        path = tmp_path / "after_return"
        # after_return runs after the outcome is stored: wait for it.
        wait_for(lambda: path.exists() and len(path.read_text().splitlines()) == 2, 10)
        assert node.stop() == 0
    assert path.read_text().splitlines() == [
        f"SUCCESS {ok.id} 7 [False] False", f"FAILURE {bad.id} KeyError('nope') [True] True"]
