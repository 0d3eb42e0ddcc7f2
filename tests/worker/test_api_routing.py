"""Routes and annotations as a producer sees them: queues chosen at publish time,
attributes (rate limits, handlers) given to task objects and taken back on change."""

from __future__ import annotations

from typing import Any

import pytest

from qmulti import App, Task
from qmulti.exceptions import ConfigError
from qmulti.protocol import Envelope, accepted, decode_envelope
from qmulti.routing import parse_rate


def take(app: App, queue: str = "celery", timeout: float = 5.0) -> Envelope:
    deliveries = app.broker.claim([queue], "test-node", "c1", 1, timeout)
    assert deliveries, f"nothing in queue {queue!r}"
    return decode_envelope(deliveries[0].body, accepted(["json"]))


def add(x: int, y: int) -> int:
    return x + y


@pytest.mark.parametrize(("rate", "per_second"), [
    ("10/s", 10.0), ("10/m", 10 / 60), ("36/h", 0.01), ("5", 5.0), (2, 2.0), (None, None),
    ("0/s", None),
])
def test_parse_rate(rate: Any, per_second: float | None) -> None:
    assert parse_rate(rate) == (None if per_second is None else pytest.approx(per_second))


@pytest.mark.parametrize("rate", ["fast", "10/d", "/s", "1//m"])
def test_parse_rate_rejects(rate: str) -> None:
    with pytest.raises(ConfigError, match="rate limit"):
        parse_rate(rate)


# ---- routes -----------------------------------------------------------------------------

def test_queue_precedence(app: App) -> None:
    plain = app.task(name="tasks.plain")(add)
    own = app.task(name="tasks.own", queue="own")(add)
    routed = app.task(name="other.routed", queue="own")(add)
    app.conf.update(task_routes={"other.*": {"queue": "routed"}}, task_default_queue="dflt")
    plain.delay(1, 1)
    assert take(app, "dflt").task == "tasks.plain"
    own.delay(1, 1)
    assert take(app, "own").task == "tasks.own"
    routed.delay(1, 1)
    assert take(app, "routed").task == "other.routed"  # routes beat the task's option
    routed.apply_async((1, 1), queue="explicit")
    assert take(app, "explicit").task == "other.routed"


def test_routes_list_globs_strings_and_functions(app: App) -> None:
    def router(name: str, args: Any, kwargs: Any, options: Any, task: Any = None) -> Any:
        return {"queue": "big"} if args and args[0] > 100 else None

    app.conf.update(CELERY_ROUTES=[
        router,
        {"feed.*": "feeds"},
        {"feed.tasks.import_feed": {"queue": "never"}, "*.slow": {"queue": "slow"}},
    ])
    names = ["feed.tasks.import_feed", "x.slow", "x.fast"]
    tasks = {n: app.task(name=n)(add) for n in names}
    tasks["x.fast"].delay(1000, 1)
    assert take(app, "big").task == "x.fast"
    tasks["feed.tasks.import_feed"].delay(1, 1)
    assert take(app, "feeds").task == "feed.tasks.import_feed"  # first matching entry wins
    tasks["x.slow"].delay(1, 1)
    assert take(app, "slow").task == "x.slow"
    tasks["x.fast"].delay(1, 1)
    assert take(app, "celery").task == "x.fast"


def test_route_rate_limit_reaches_the_task(app: App) -> None:
    app.conf.update(task_routes={"tasks.*": {"queue": "q", "rate_limit": "10/m"}})
    task = app.task(name="tasks.limited")(add)
    assert task.rate_limit == "10/m"
    app.conf.update(task_routes={})
    assert task.rate_limit is None


# ---- annotations ------------------------------------------------------------------------

def test_star_on_failure_annotation_binds_the_task(app: App) -> None:
    calls: list[tuple[Any, ...]] = []

    def on_failure(self: Task, exc: BaseException, task_id: str, args: Any, kwargs: Any,
                   einfo: Any) -> None:
        calls.append((self.name, type(exc).__name__, task_id, args, kwargs, einfo))

    app.conf.update(CELERY_ANNOTATIONS={"*": {"on_failure": on_failure}})
    task = app.task(name="tasks.t")(add)
    task.on_failure(ValueError("x"), "tid", (1,), {}, "einfo")
    assert calls == [("tasks.t", "ValueError", "tid", (1,), {}, "einfo")]


def test_annotations_apply_to_tasks_registered_before_and_are_undone(app: App) -> None:
    first = app.task(name="tasks.first", rate_limit="1/s")(add)
    second = app.task(name="tasks.second")(add)
    app.conf.update(task_annotations=[
        {"*": {"rate_limit": "5/s"}, "tasks.second": {"rate_limit": "7/m"}},
        {"tasks.f*": {"max_retries": 9}},
    ])
    assert (first.rate_limit, first.max_retries) == ("5/s", 9)
    assert (second.rate_limit, second.max_retries) == ("7/m", 3)
    app.conf.update(task_annotations=None)
    assert (first.rate_limit, first.max_retries) == ("1/s", 3)
    assert second.rate_limit is None


def test_bad_annotation_rate_limit_is_a_config_error(app: App) -> None:
    app.task(name="tasks.x")(add)
    with pytest.raises(ConfigError, match="rate limit"):
        app.conf.update(task_annotations={"*": {"rate_limit": "fast"}})
