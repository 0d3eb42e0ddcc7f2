"""The producer API: the task decorator, local calls, publishing, routes, annotations.

Messages are read back from the app's own broker, as a node would read them; results
are covered in test_api_results.py.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from qmulti import App, Request, Task
from qmulti.exceptions import (
    BrokerConnectionError,
    ConfigError,
    ContentDisallowed,
    MaxRetriesExceededError,
    NotRegistered,
    Retry,
    SerializationError,
)
from qmulti.protocol import Envelope, accepted, decode_envelope


def take(app: App, queue: str = "celery", timeout: float = 5.0) -> Envelope:
    """Claim the next message of `queue` as a node would, and decode it."""
    deliveries = app.broker.claim([queue], "test-node", "c1", 1, timeout)
    assert deliveries, f"nothing in queue {queue!r}"
    return decode_envelope(deliveries[0].body, accepted(["json", "pickle"]))


def queued(app: App) -> int:
    stats = app.broker.stats()
    return sum(stats.queues.values()) + stats.scheduled


def add(x: int, y: int) -> int:
    return x + y


# ---- declaring and calling ------------------------------------------------------------

def test_bare_decorator_names_and_registers(app: App) -> None:
    task = app.task(add)
    assert isinstance(task, Task)
    assert task.name == f"{__name__}.add"
    assert app.tasks[task.name] is task
    assert task(4, 6) == 10
    assert task.__name__ == "add" and task.__wrapped__ is add
    assert (task.max_retries, task.default_retry_delay, task.bind) == (3, 180, False)


def test_decorator_with_options(app: App) -> None:
    @app.task(bind=True, max_retries=1, default_retry_delay=2, rate_limit="10/s",
              time_limit=30, soft_time_limit=25, queue="hi", name="tasks.mul",
              ignore_result=True, acks_late=True, serializer="json")
    def mul(self: Task, x: int, y: int) -> Any:
        return self, self.request.called_directly, x * y

    assert app.tasks["tasks.mul"] is mul
    me, direct, value = mul(3, 4)
    assert me is mul and direct is True and value == 12
    assert (mul.max_retries, mul.default_retry_delay, mul.rate_limit) == (1, 2, "10/s")
    assert (mul.time_limit, mul.soft_time_limit, mul.queue) == (30, 25, "hi")
    assert (mul.ignore_result, mul.acks_late, mul.serializer) == (True, True, "json")


def test_options_left_unset_resolve_to_app_settings(app: App) -> None:
    task = app.task(add)
    app.conf.update(task_time_limit=60, task_ignore_result=True)
    assert task.time_limit is None and task.resolve("time_limit") == 60.0
    assert task.resolve("ignore_result") is True
    assert task.resolve("queue") == "celery"


def test_task_defined_in_main_is_named_after_the_app(app: App) -> None:
    def job() -> int:
        return 1

    job.__module__ = "__main__"
    job.__qualname__ = "job"
    assert app.task(job).name == "proj.job"
    assert App().task(job).name == "__main__.job"


def test_bad_rate_limit_is_a_config_error(app: App) -> None:
    with pytest.raises(ConfigError, match="rate limit"):
        app.task(rate_limit="ten per second")(add)


def test_base_class_supplies_handlers(app: App) -> None:
    seen: list[str] = []

    class Audited(Task):
        def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
            seen.append(f"{self.name}:{retval}")

    task = app.task(base=Audited, name="audited")(add)
    assert isinstance(task, Audited)
    task.on_success(3, "id", (1, 2), {})
    assert seen == ["audited:3"]


# ---- the node's interface --------------------------------------------------------------

def test_execute_sets_the_request_and_always_resets_it(app: App) -> None:
    @app.task(bind=True, name="ctx")
    def ctx(self: Task, fail: bool = False) -> Any:
        if fail:
            raise KeyError("boom")
        return self.request

    req = Request(id="t1", retries=2, delivery_info={"queue": "celery", "deliveries": 1})
    got = ctx.execute(req, [], {})
    assert got.id == "t1" and got.retries == 2 and got.called_directly is False
    assert ctx.request.id is None and ctx.request.called_directly is True
    with pytest.raises(KeyError):
        ctx.execute(Request(id="t2"), [True], {})
    assert ctx.request.id is None


def test_retry_raises_retry_with_when(app: App) -> None:
    @app.task(bind=True, name="flaky", max_retries=2, default_retry_delay=7)
    def flaky(self: Task, countdown: float | None = None) -> None:
        raise self.retry(exc=ValueError("later"), countdown=countdown)

    before = time.time()
    with pytest.raises(Retry) as info:
        flaky.execute(Request(id="r", retries=0), [], {})
    assert isinstance(info.value.exc, ValueError)
    assert before + 7 <= info.value.when <= time.time() + 7
    with pytest.raises(Retry) as info:
        flaky.execute(Request(id="r", retries=1), [2], {})
    assert info.value.when <= time.time() + 2
    with pytest.raises(ValueError, match="later"):  # retries used up: the task's error
        flaky.execute(Request(id="r", retries=2), [], {})


def test_retry_without_exc_past_the_limit(app: App) -> None:
    @app.task(bind=True, name="again", max_retries=0)
    def again(self: Task) -> None:
        self.retry()

    with pytest.raises(MaxRetriesExceededError, match="again"):
        again.execute(Request(id="x"), [], {})


def test_retry_called_directly_raises_the_exception(app: App) -> None:
    @app.task(bind=True, name="direct")
    def direct(self: Task) -> None:
        raise self.retry(exc=OSError("nope"))

    with pytest.raises(OSError, match="nope"):
        direct()


def test_autoretry_for(app: App) -> None:
    @app.task(bind=True, name="auto", autoretry_for=(ConnectionError,),
              retry_kwargs={"countdown": 1})
    def auto(self: Task) -> None:
        raise ConnectionError("down")

    with pytest.raises(Retry) as info:
        auto.execute(Request(id="a"), [], {})
    assert isinstance(info.value.exc, ConnectionError)


# ---- publishing -------------------------------------------------------------------------

def test_delay_publishes_an_envelope(app: App) -> None:
    task = app.task(add)
    result = task.delay(4, y=4)
    env = take(app)
    assert (env.id, env.task, env.args, dict(env.kwargs)) == (result.id, task.name, (4,),
                                                              {"y": 4})
    assert (env.queue, env.ct, env.eta, env.expires, env.retries) == ("celery", "json", None,
                                                                       None, 0)


def test_apply_async_options(app: App) -> None:
    task = app.task(add)
    r = task.apply_async((1, 2), task_id="my-id", retries=2, queue="other", priority=9,
                         routing_key="ignored")
    assert r.id == "my-id"
    env = take(app, "other")
    assert (env.id, env.retries, env.queue, env.options) == ("my-id", 2, "other", {})


def test_countdown_eta_and_expires_reach_the_envelope(app: App) -> None:
    task = app.task(add)
    now = time.time()
    due = datetime.now(timezone.utc) - timedelta(seconds=1)  # already due: claimable now
    task.apply_async((1, 1), eta=due, expires=60, time_limit=5, soft_time_limit=4)
    env = take(app)
    assert env.eta == pytest.approx(due.timestamp(), abs=0.001)
    assert now + 59 <= env.expires <= time.time() + 60
    assert env.options == {"time_limit": 5.0, "soft_time_limit": 4.0}

    naive_utc = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(seconds=2)
    task.apply_async((1, 1), eta=naive_utc, expires=naive_utc + timedelta(hours=1))
    env = take(app)
    assert env.eta == pytest.approx(naive_utc.replace(tzinfo=timezone.utc).timestamp(), abs=0.001)
    assert env.expires == pytest.approx(env.eta + 3600, abs=0.001)

    task.apply_async((1, 1), eta=now - 5)
    assert take(app).eta == now - 5


def test_countdown_keeps_the_message_in_the_broker(app: App) -> None:
    task = app.task(add)
    before = time.time()
    task.apply_async((1, 2), countdown=30)
    stats = app.broker.stats()
    assert stats.scheduled == 1 and sum(stats.queues.values()) == 0
    assert app.broker.claim(["celery"], "n", "c", 1, 0) == []
    assert time.time() - before < 30
    with pytest.raises(ValueError, match="countdown or eta"):
        task.apply_async((1, 2), countdown=1, eta=time.time())


def test_non_json_argument_raises_and_publishes_nothing(app: App) -> None:
    task = app.task(add)
    with pytest.raises(SerializationError, match="not JSON-serializable"):
        task.delay(object(), 1)
    with pytest.raises(SerializationError):
        task.apply_async((1,), {"y": {1, 2}})
    assert queued(app) == 0


def test_wrong_arguments_fail_at_delay(app: App) -> None:
    task = app.task(add)
    with pytest.raises(TypeError, match="add"):
        task.delay(1)
    with pytest.raises(TypeError, match="list or tuple"):
        task.apply_async(5)
    with pytest.raises(TypeError, match="unsupported options: bogus"):
        task.apply_async((1, 2), bogus="x")
    with pytest.raises(TypeError, match="link must be a signature"):
        task.apply_async((1, 2), link="x")
    assert queued(app) == 0


def test_pickle_is_refused_unless_accepted(app: App) -> None:
    task = app.task(add)
    with pytest.raises(ContentDisallowed, match="accept_content"):
        task.apply_async((1, 2), serializer="pickle")
    app.conf.update(task_serializer="pickle")
    with pytest.raises(ContentDisallowed):
        task.delay(1, 2)
    assert queued(app) == 0
    app.conf.update(accept_content=["json", "pickle"])
    task.delay({1, 2}, {3})  # sets are fine under pickle
    env = take(app)
    assert env.ct == "pickle" and env.args == ({1, 2}, {3})


def test_send_task_by_name_only(app: App) -> None:
    """Decoupled producers send tasks they never imported, as with Celery."""
    result = app.send_task("tasks.nope", (1,))
    env = take(app)
    assert env.task == "tasks.nope" and env.id == result.id
    with pytest.raises(NotRegistered) as info:  # opt-in check, for those who want it
        app.send_task("tasks.nope", (1,), check=True)
    assert "unknown task 'tasks.nope'; is the module that defines it imported?" in str(info.value)
    assert queued(app) == 0


def test_send_task_known_name(app: App) -> None:
    app.task(name="tasks.add", queue="math")(add)
    app.send_task("tasks.add", [2, 3])
    env = take(app, "math")
    assert env.args == (2, 3)


# ---- connections ------------------------------------------------------------------------

def test_unwritable_sqlite_broker_fails_at_delay(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    app = App(broker=f"sqlite:///{blocker / 'q.db'}")
    task = app.task(add)
    with pytest.raises(ConfigError, match="not a directory"):
        task.delay(1, 2)


def test_unreachable_broker_fails_at_delay_with_the_url_masked() -> None:
    from helpers import free_port

    app = App(broker=f"redis://:s3cret@127.0.0.1:{free_port()}/0")
    task = app.task(add)
    with pytest.raises(BrokerConnectionError) as info:
        task.delay(1, 2)
    assert "s3cret" not in str(info.value) and ":***@127.0.0.1" in str(info.value)


def test_bad_broker_scheme_fails_at_delay() -> None:
    app = App(broker="kafka://user:secret@host//")
    task = app.task(add)
    with pytest.raises(ConfigError) as info:
        task.delay(1, 2)
    assert "secret" not in str(info.value) and "***" in str(info.value)


def test_connections_are_lazy_shared_and_renewed(app: App) -> None:
    broker = app.broker
    assert app.broker is broker and app.backend is broker  # one store serves both
    app.conf.update(broker_max_deliveries=2)
    assert app.broker is not broker and app.broker.max_deliveries == 2
    app.close()
    assert app.broker is not None


def test_start_runs_the_qworker_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    seen: list[Any] = []
    fake = types.ModuleType("qmulti.node.cli")
    fake.main = lambda argv=None, app=None: seen.append((argv, app)) or 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "qmulti.node.cli", fake)
    app = App("proj")
    assert app.start(["-l", "info"]) == 0
    app.start(["worker", "-c", "2"])
    monkeypatch.setattr(sys, "argv", ["proj/celery.py", "worker", "-A", "proj"])
    app.start()
    assert seen == [(["-l", "info"], app), (["-c", "2"], app), (["-A", "proj"], app)]


def test_import_default_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "qm_api_tasks_mod.py").write_text(
        "from qmulti import App\nIMPORTED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "qm_api_tasks_mod", raising=False)
    app = App(include=["qm_api_tasks_mod"])
    assert app.import_default_modules() == ["qm_api_tasks_mod"]
    app.conf.update(imports=("qm_api_missing_mod",))
    with pytest.raises(ConfigError, match="qm_api_missing_mod"):
        app.import_default_modules()
