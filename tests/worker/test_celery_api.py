"""Celery's API in one process: shared_task and current_app, AsyncResult without an app,
apply() and eager mode, retry arithmetic, interim states that never hide a final one,
autodiscover_tasks."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from qmulti import App, AsyncResult, EagerResult, Ignore, Task, current_app, shared_task
from qmulti.autoretry import backoff_interval, retry_options
from qmulti.exceptions import MaxRetriesExceededError, Reject
from qmulti.protocol import encode_result
from qmulti.task import Request


def test_shared_task_follows_the_current_app() -> None:
    @shared_task
    def mul(x: int, y: int) -> int:
        return x * y

    @shared_task(bind=True, name="shared.named")
    def named(self: Task) -> str:
        return self.app.main or ""

    first = App("first", broker="memory://")
    assert current_app._get_current_object() is first
    assert mul.app is first and mul(2, 3) == 6 and named() == "first"
    second = App("second", broker="memory://")  # made later: current now
    assert mul.app is second and named.app is second and named() == "second"
    assert "shared.named" in first.tasks and "shared.named" in second.tasks
    first.set_current()
    assert named() == "first" and isinstance(mul, Task)
    assert mul.delay(1, 2).app is first


def test_async_result_without_app_uses_the_current_app() -> None:
    app = App("current", broker="memory://")
    app.backend.set("t1", "SUCCESS", encode_result("t1", "SUCCESS", 42), None)
    result = AsyncResult("t1")
    assert result.app is app and result.get(timeout=1) == 42


def test_set_default_is_the_fallback_of_every_thread() -> None:
    import threading

    app = App("default-one", broker="memory://", set_as_current=False)
    app.set_default()
    seen: list[Any] = []
    thread = threading.Thread(target=lambda: seen.append(current_app._get_current_object()))
    thread.start()
    thread.join()
    assert seen == [app]


@pytest.fixture
def app() -> App:
    return App("eager", broker="memory://")


def test_apply_returns_an_eager_result(app: App) -> None:
    @app.task(bind=True)
    def info(self: Task, x: int) -> dict[str, Any]:
        r = self.request
        return {"x": x, "eager": r.is_eager, "direct": r.called_directly, "root": r.root_id,
                "id": r.id}

    result = info.apply((5,))
    assert isinstance(result, EagerResult)
    value = result.get()
    assert value["x"] == 5 and value["eager"] and not value["direct"]
    assert value["root"] == value["id"] == result.id
    assert (result.state, result.status, result.successful(), result.ready()) == (
        "SUCCESS", "SUCCESS", True, True)
    assert result.result == value and result.traceback is None


def test_apply_failure_and_eager_propagates(app: App) -> None:
    @app.task
    def boom() -> None:
        raise ValueError("bad")

    result = boom.apply()
    assert result.state == "FAILURE" and isinstance(result.result, ValueError)
    assert "ValueError: bad" in (result.traceback or "")
    with pytest.raises(ValueError):
        result.get()
    assert isinstance(result.get(propagate=False), ValueError)
    with pytest.raises(ValueError):
        boom.apply(throw=True)
    app.conf.task_eager_propagates = True
    with pytest.raises(ValueError):
        boom.apply()


def test_apply_retries_at_once_up_to_max_retries(app: App) -> None:
    tries: list[int] = []

    @app.task(bind=True, max_retries=2)
    def flaky(self: Task) -> int:
        tries.append(self.request.retries)
        if self.request.retries < 2:
            raise self.retry(countdown=60)
        return self.request.retries

    assert flaky.apply().get() == 2 and tries == [0, 1, 2]

    @app.task(bind=True, max_retries=1, autoretry_for=(OSError,))
    def always(self: Task) -> None:
        raise OSError("down")

    result = always.apply()
    assert result.state == "FAILURE" and isinstance(result.result, OSError)


def test_apply_ignore_and_reject_states(app: App) -> None:
    @app.task
    def ignored() -> None:
        raise Ignore()

    @app.task
    def rejected() -> None:
        raise Reject("no")

    assert ignored.apply().state == "IGNORED" and rejected.apply().state == "REJECTED"


@pytest.mark.parametrize("spelling", ["task_always_eager", "CELERY_ALWAYS_EAGER"])
def test_always_eager_runs_delay_here(app: App, spelling: str) -> None:
    @app.task(bind=True)
    def add(self: Task, x: int, y: int) -> tuple[int, bool]:
        return x + y, self.request.is_eager

    assert not isinstance(add.delay(1, 2), EagerResult)  # published
    app.conf.update({spelling: True})
    result = add.delay(2, 3)
    assert isinstance(result, EagerResult) and result.get() == (5, True)
    assert add.apply_async((1, 1), countdown=10).get() == (2, True)
    stats = app.broker.stats()
    assert sum(stats.queues.values()) == 1  # only the first, not the eager ones
    # send_task never runs eagerly, as in Celery
    assert not isinstance(app.send_task(add.name, (1, 1)), EagerResult)


def test_eager_child_gets_the_eager_parent(app: App) -> None:
    app.conf.task_always_eager = True

    @app.task(bind=True)
    def child(self: Task) -> tuple[str | None, str | None]:
        return self.request.parent_id, self.request.root_id

    @app.task(bind=True)
    def top(self: Task) -> Any:
        return self.request.id, child.delay().get()

    top_id, (parent_id, root_id) = top.delay().get()
    assert parent_id == top_id == root_id


def test_backoff_matches_celery() -> None:
    assert [backoff_interval(1, n, 600) for n in range(5)] == [1, 2, 4, 8, 16]
    assert backoff_interval(5, 3, 600) == 40 and backoff_interval(1, 20, 600) == 600
    assert all(0 <= backoff_interval(1, 3, 600, full_jitter=True) <= 8 for _ in range(50))


def test_retry_options(app: App) -> None:
    @app.task(bind=True, autoretry_for=(OSError,), retry_backoff=5, retry_jitter=False,
              retry_kwargs={"max_retries": 7})
    def t(self: Task) -> None:
        raise OSError()

    token = t._request_var.set(Request(id="x", retries=2, called_directly=False))
    try:
        assert retry_options(t) == {"max_retries": 7, "countdown": 20}
    finally:
        t._request_var.reset(token)

    @app.task(bind=True, autoretry_for=(OSError,))
    def plain(self: Task) -> None:
        raise OSError("x")

    with pytest.raises(Exception) as info:
        plain.execute(Request(id="y"), [], {})
    assert info.typename == "Retry" and 179 <= info.value.countdown <= 180  # default delay

    @app.task(bind=True, max_retries=0, autoretry_for=(OSError,))
    def none_left(self: Task) -> None:
        raise OSError("last")

    with pytest.raises(OSError, match="last"):
        none_left.execute(Request(id="z"), [], {})

    @app.task(bind=True, max_retries=0)
    def explicit(self: Task) -> None:
        raise self.retry()

    with pytest.raises(MaxRetriesExceededError):
        explicit.execute(Request(id="w"), [], {})


def test_interim_state_never_hides_a_final_one(store: Any) -> None:
    assert store.set_unless_ready("p", "PROGRESS", encode_result("p", "PROGRESS", {"i": 1}),
                                  None)
    assert store.get("p") is not None
    store.set("p", "SUCCESS", encode_result("p", "SUCCESS", 3), None)
    assert not store.set_unless_ready("p", "PROGRESS", encode_result("p", "PROGRESS", {}), None)
    assert b'"SUCCESS"' in store.get("p")
    store.set("r", "REVOKED", encode_result("r", "REVOKED"), None)
    assert not store.set_unless_ready("r", "PROGRESS", encode_result("r", "PROGRESS"), 60)


def test_update_state_outside_a_task_needs_an_id(app: App) -> None:
    @app.task(bind=True)
    def t(self: Task) -> None:
        pass

    with pytest.raises(ValueError, match="task_id"):
        t.update_state(state="X")
    t.update_state(task_id="other", state="PROGRESS", meta={"current": 1})
    assert app.AsyncResult("other").state == "PROGRESS"
    assert app.AsyncResult("other").info == {"current": 1}


def test_autodiscover_tasks_is_lazy_unless_forced(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    for pkg, body in (("qm_disc_a", "from qmulti import shared_task\n\n@shared_task\n"
                       "def found_a():\n    return 'a'\n"),
                      ("qm_disc_b", None), ("qm_disc_c", "raise RuntimeError('inside')\n")):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
        if body is not None:
            (tmp_path / pkg / "tasks.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    app = App("disc", broker="memory://")
    app.autodiscover_tasks(["qm_disc_a", "qm_disc_b"])
    assert "qm_disc_a.tasks" not in sys.modules
    assert app.import_default_modules() == ["qm_disc_a.tasks"]
    assert "qm_disc_a.tasks.found_a" in app.tasks
    assert app.autodiscover_tasks(lambda: ["qm_disc_b"], force=True) == []
    with pytest.raises(RuntimeError, match="inside"):
        app.autodiscover_tasks(["qm_disc_c"], force=True)
    with pytest.raises(Exception, match="no package named 'qm_disc_nope'"):
        app.autodiscover_tasks(["qm_disc_nope"], force=True)
    assert app.autodiscover_tasks(force=True) == []  # no Django here: nothing to search
