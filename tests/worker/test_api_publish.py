"""The producer's hot path keeps what settings decide (a task's queue and content type,
the connections) between `delay()` calls: these tests change settings, task attributes
and the environment after first use and check that the next `delay()` follows, and that
message ids stay unique per publish whatever task ids the caller passes."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from qmulti import App, Task
from qmulti.exceptions import ContentDisallowed, SerializationError
from qmulti.protocol import Envelope, accepted, decode_envelope, encode_envelope, new_id

UUID4_TEXT = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def take(app: App, queue: str = "celery") -> tuple[str, Envelope]:
    """(message id, envelope) of the next message of `queue`, claimed as a node would."""
    deliveries = app.broker.claim([queue], "test-node", "c1", 1, 5.0)
    assert deliveries, f"nothing in queue {queue!r}"
    return deliveries[0].mid, decode_envelope(deliveries[0].body, accepted(["json", "pickle"]))


def queued(app: App) -> dict[str, int]:
    return {q: n for q, n in app.broker.stats().queues.items() if n}


def add(x: int, y: int = 0) -> int:
    return x + y


# ---- settings changed after first use ---------------------------------------------------

def test_default_queue_change_after_first_delay_is_honoured(app: App) -> None:
    task = app.task(name="tasks.add")(add)
    task.delay(1)
    assert take(app)[1].queue == "celery"
    app.conf.update(task_default_queue="second")
    task.delay(2)
    assert take(app, "second")[1].args == (2,)
    app.conf.task_default_queue = "third"  # attribute assignment is a change too
    task.delay(3)
    assert take(app, "third")[1].args == (3,)
    assert queued(app) == {}


def test_routes_change_after_first_delay_is_honoured(app: App) -> None:
    task = app.task(name="tasks.add")(add)
    app.conf.update(task_routes={"tasks.*": {"queue": "first"}})
    task.delay(1)
    assert take(app, "first")[1].args == (1,)
    app.conf.update(task_routes={"tasks.add": "second"})
    task.delay(2)
    assert take(app, "second")[1].args == (2,)
    app.conf.update(task_routes=None)
    task.delay(3)
    assert take(app, "celery")[1].args == (3,)
    assert queued(app) == {}


def test_config_from_object_after_first_delay_is_honoured(app: App) -> None:
    task = app.task(name="tasks.add")(add)
    task.delay(1)
    take(app)

    class Conf:
        CELERY_ROUTES = {"tasks.add": {"queue": "from-object"}}

    app.config_from_object(Conf)
    task.delay(2)
    assert take(app, "from-object")[1].args == (2,)


def test_task_queue_attribute_and_annotation_changes_are_honoured(app: App) -> None:
    task = app.task(name="tasks.add")(add)
    task.delay(1)
    take(app)
    task.queue = "own"  # a plain attribute change, no settings involved
    task.delay(2)
    assert take(app, "own")[1].args == (2,)
    app.conf.update(task_annotations={"tasks.add": {"queue": "annotated"}})
    task.delay(3)
    assert take(app, "annotated")[1].args == (3,)
    app.conf.update(task_annotations=None)
    task.delay(4)
    assert take(app, "own")[1].args == (4,)


def test_router_function_is_asked_on_every_call(app: App) -> None:
    seen: list[tuple[Any, ...]] = []

    def router(name: str, args: Any, kwargs: Any, options: Any, task: Any = None) -> Any:
        seen.append(tuple(args))
        return "big" if args[0] > 10 else None

    task = app.task(name="tasks.add")(add)
    task.delay(1)
    app.conf.update(task_routes=[router])
    task.delay(1)
    task.delay(50)
    task.delay(2)
    assert seen == [(1,), (50,), (2,)]
    assert [take(app)[1].args for _ in range(3)] == [(1,), (1,), (2,)]
    assert take(app, "big")[1].args == (50,)


def test_serializer_and_accept_changes_are_honoured(app: App) -> None:
    task = app.task(name="tasks.add")(add)
    task.delay(1)
    assert take(app)[1].ct == "json"
    app.conf.update(task_serializer="pickle")
    with pytest.raises(ContentDisallowed):
        task.delay(2)
    with pytest.raises(ContentDisallowed):  # refused again: a failure is not cached
        task.delay(2)
    task.apply_async((3,), serializer="json")  # an explicit serializer still works
    assert take(app)[1].ct == "json"
    app.conf.update(accept_content=["json", "pickle"])
    task.delay({4})
    mid, env = take(app)
    assert (env.ct, env.args) == ("pickle", ({4},))
    task.serializer = "yaml"
    with pytest.raises(SerializationError, match="unknown serializer"):
        task.delay(5)
    assert queued(app) == {}


def test_broker_url_change_after_first_use_reconnects(tmp_path: Path) -> None:
    first, second = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    app = App("proj", broker=first)
    try:
        task = app.task(name="tasks.add")(add)
        task.delay(1)
        broker = app.broker
        app.conf.update(broker_url=second)
        task.delay(2)
        assert app.broker is not broker
        assert take(app)[1].args == (2,)
    finally:
        app.close()
    check = App("check", broker=first)
    try:
        assert take(check)[1].args == (1,)
    finally:
        check.close()


def test_environment_override_set_after_first_use_is_honoured(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, env = f"sqlite:///{tmp_path / 'code.db'}", f"sqlite:///{tmp_path / 'env.db'}"
    app = App("proj", broker=code)
    try:
        task = app.task(name="tasks.add")(add)
        task.delay(1)
        monkeypatch.setenv("QMULTI_BROKER_URL", env)
        task.delay(2)
        monkeypatch.delenv("QMULTI_BROKER_URL")
        task.delay(3)
    finally:
        app.close()
    for url, expected in ((code, [(1,), (3,)]), (env, [(2,)])):
        check = App("check", broker=url)
        try:
            assert [take(check)[1].args for _ in expected] == expected
            assert queued(check) == {}
        finally:
            check.close()


def test_connection_is_reused_while_nothing_changes(app: App) -> None:
    broker = app.broker
    task = app.task(name="tasks.add")(add)
    task.delay(1)
    app.conf.update(task_default_queue="other")  # a change that does not touch connections
    task.delay(2)
    assert app.broker is broker and app.backend is broker


# ---- ids ----------------------------------------------------------------------------------

def test_same_explicit_task_id_twice_publishes_two_messages(app: App) -> None:
    task = app.task(name="tasks.add")(add)
    task.apply_async((1,), task_id="fixed-id")
    task.apply_async((2,), task_id="fixed-id")
    (mid1, env1), (mid2, env2) = take(app), take(app)
    assert (env1.id, env1.args, env2.id, env2.args) == ("fixed-id", (1,), "fixed-id", (2,))
    assert mid1 != mid2 and "fixed-id" not in (mid1, mid2)
    assert queued(app) == {}


def test_republishing_a_generated_task_id_gets_a_new_message_id(app: App) -> None:
    task = app.task(name="tasks.add")(add)
    result = task.delay(1)
    task.apply_async((2,), task_id=result.id)  # e.g. a user re-sending the same task
    (mid1, env1), (mid2, env2) = take(app), take(app)
    assert env1.id == env2.id == result.id
    assert mid1 == env1.mid == result.id  # an id made here is the first message id too
    assert mid2 == env2.mid != mid1


def test_generated_ids_are_unique_uuid4_text() -> None:
    ids = {new_id() for _ in range(20000)}
    assert len(ids) == 20000
    for text in list(ids)[:2000]:
        assert UUID4_TEXT.match(text), text
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)


# ---- wire format --------------------------------------------------------------------------

def test_envelope_bytes_are_unchanged() -> None:
    """The exact bytes of the v1 envelope, key order and separators included."""
    env = Envelope(id="t-1", task="tasks.add", args=[1, "é"], kwargs={"y": None},
                   queue="q", eta=12.5, expires=None, retries=2, mid="m-1",
                   options={"time_limit": 5.0})
    assert encode_envelope(env) == (
        b'{"v":1,"mid":"m-1","id":"t-1","task":"tasks.add","ct":"json",'
        b'"payload":[[1,"\\u00e9"],{"y":null}],"queue":"q","eta":12.5,"expires":null,'
        b'"retries":2,"options":{"time_limit":5.0}}')
    plain = Envelope(id="t-2", task="t", mid="m-2")
    assert json.loads(encode_envelope(plain)) == {
        "v": 1, "mid": "m-2", "id": "t-2", "task": "t", "ct": "json", "payload": [[], {}],
        "queue": "celery", "eta": None, "expires": None, "retries": 0}
    with pytest.raises(SerializationError):
        encode_envelope(Envelope(id="t", task="t", args=[float("nan")]))
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(SerializationError):
        encode_envelope(Envelope(id="t", task="t", args=[loop]))


# ---- argument checks (a fast path skips Signature.bind for plain positional calls) ----

@pytest.mark.parametrize(("signature", "bind", "good", "bad"), [
    ("def f(x, y=0): pass", False, [(1,), (1, 2)], [(), (1, 2, 3)]),
    ("def f(self, x): pass", True, [(1,)], [(), (1, 2)]),
    ("def f(*args): pass", False, [(), (1, 2, 3)], []),
    ("def f(x, /, *rest): pass", False, [(1,), (1, 2, 3)], [()]),
    ("def f(x, *, key): pass", False, [], [(1,)]),
    ("def f(x, *, key=1): pass", False, [(1,)], [(), (1, 2)]),
    ("def f(): pass", True, [], [(), (1,)]),
])
def test_argument_checks(app: App, signature: str, bind: bool, good: list[tuple[Any, ...]],
                         bad: list[tuple[Any, ...]]) -> None:
    namespace: dict[str, Any] = {}
    exec(signature, namespace)  # noqa: S102 - a literal from the table above
    task: Task = app.task(name="tasks.f", bind=bind)(namespace["f"])
    for args in good:
        task.apply_async(args)
    for args in bad:
        with pytest.raises(TypeError, match="tasks.f"):
            task.apply_async(args)
    assert sum(queued(app).values()) == len(good)
