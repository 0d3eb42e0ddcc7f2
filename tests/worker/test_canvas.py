"""Canvas: signatures, groups, map/starmap/chunks, on a real node (SQLite store).

Each test follows an example of Celery's canvas guide, with its documented result.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from node_fixtures import NodeProcess

from qmulti import App, GroupResult, Signature, group, signature
from qmulti.canvas import xmap

TASKS = '''
from qmulti import App, signature
app = App('tasks', broker='sqlite:///q.sqlite3')

@app.task
def add(x, y, debug=False):
    return [x + y, debug] if debug else x + y

@app.task
def xsum(numbers):
    return sum(numbers)

@app.task
def callit(sig):
    """A signature travels as a plain dict argument and is rebuilt on the node."""
    return signature(sig)()

@app.task
def boom():
    raise KeyError("nope")
'''


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("canvas")
    (root / "tasks.py").write_text(TASKS)
    with NodeProcess(root, "-A", "tasks", "-c", "2") as proc:
        proc.wait_ready()
        yield root


@pytest.fixture
def app(node: Path) -> Iterator[App]:
    """A producer with the same task names (the node runs them; here they only name)."""
    producer = App("tasks", broker=f"sqlite:///{node / 'q.sqlite3'}")
    namespace: dict = {}
    exec(compile(TASKS.replace("app = App('tasks', broker='sqlite:///q.sqlite3')",
                               "app = producer"), "tasks", "exec"),
         {"producer": producer, "__name__": "tasks"}, namespace)
    producer.set_current()
    yield producer
    producer.close()


def test_signature_by_name_and_fields(app: App) -> None:
    s = signature("tasks.add", args=(2, 2), countdown=10)
    assert repr(s) == "tasks.add(2, 2)"
    assert s.args == (2, 2) and s.options == {"countdown": 10}
    s = app.tasks["tasks.add"].signature((2, 2), {"debug": True}, countdown=10)
    assert (s.args, s.kwargs, s.options) == ((2, 2), {"debug": True}, {"countdown": 10})
    assert repr(app.tasks["tasks.add"].s(2, 2, debug=True)) == "tasks.add(2, 2, debug=True)"


def test_calling_api_on_a_signature(app: App) -> None:
    add = app.tasks["tasks.add"]
    assert add.s(2, 2)() == 4  # here and now
    assert add.s(2, 2).delay().get(timeout=20) == 4
    assert add.signature((2, 2), countdown=0).apply_async().get(timeout=20) == 4
    assert ~add.s(3, 4) == 7


def test_partials(app: App) -> None:
    add = app.tasks["tasks.add"]
    partial = add.s(2)
    assert partial.delay(4).get(timeout=20) == 6  # 4 + 2: new args go first
    assert add.s(2, 2).delay(debug=True).get(timeout=20) == [4, True]
    clone = add.s(2).clone(args=(4,), kwargs={"debug": True})
    assert (clone.args, clone.kwargs) == ((4, 2), {"debug": True})
    s = add.signature((2, 2), countdown=10)
    assert s.clone(countdown=1).options == {"countdown": 1}
    assert s.options == {"countdown": 10}  # the original is unchanged


def test_immutable_signatures_ignore_partial_args(app: App) -> None:
    add = app.tasks["tasks.add"]
    s = add.si(2, 2)
    assert s.immutable and s.clone((8,)).args == (2, 2)
    assert s.delay(8).get(timeout=20) == 4
    assert add.signature((2, 2), immutable=True).immutable


def test_set_updates_options_in_place(app: App) -> None:
    add = app.tasks["tasks.add"]
    s = add.s(2, 2).set(countdown=10, queue="celery")
    assert s.options == {"countdown": 10, "queue": "celery"}
    s.set(countdown=0)
    assert s.apply_async().get(timeout=20) == 4


def test_json_form_is_celerys_dict_and_travels_in_arguments(app: App) -> None:
    s = app.tasks["tasks.add"].s(2, 3)
    doc = json.loads(json.dumps(s))
    assert set(doc) >= {"task", "args", "kwargs", "options", "subtask_type", "immutable"}
    assert doc["task"] == "tasks.add" and doc["args"] == [2, 3]
    rebuilt = signature(doc)
    assert isinstance(rebuilt, Signature) and rebuilt == s
    assert app.tasks["tasks.callit"].delay(s).get(timeout=20) == 5


def test_freeze_fixes_the_id_before_sending(app: App) -> None:
    s = app.tasks["tasks.add"].s(1, 1)
    result = s.freeze()
    assert s.id == result.id
    assert s.delay().id == result.id
    assert result.get(timeout=20) == 2


def test_group_of_ten(app: App) -> None:
    add = app.tasks["tasks.add"]
    g = group(add.s(i, i) for i in range(10))
    assert len(g) == 10
    res = g()
    assert isinstance(res, GroupResult)
    assert res.get(timeout=30) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    assert res.ready() and res.successful() and res.completed_count() == 10
    assert [r.id for r in res.children] == [r.id for r in res.results]


def test_group_partial_args_go_to_every_member(app: App) -> None:
    add = app.tasks["tasks.add"]
    res = group(add.s(2), add.s(4), add.s(8)).delay(16)
    assert res.get(timeout=30) == [18, 20, 24]


def test_group_result_is_saved_and_restored_elsewhere(app: App, node: Path) -> None:
    add = app.tasks["tasks.add"]
    res = group([add.s(1, 1), add.s(2, 2)]).apply_async()
    res.save()
    other = App("elsewhere", broker=f"sqlite:///{node / 'q.sqlite3'}", set_as_current=False)
    try:
        restored = GroupResult.restore(res.id, app=other)
        assert restored is not None and restored.id == res.id
        assert restored.get(timeout=30) == [2, 4]
        res.delete()
        assert GroupResult.restore(res.id, app=other) is None
    finally:
        other.close()


def test_group_get_raises_the_member_failure(app: App) -> None:
    res = group(app.tasks["tasks.add"].s(1, 1), app.tasks["tasks.boom"].s()).apply_async()
    with pytest.raises(KeyError, match="nope"):
        res.get(timeout=30)
    assert res.get(timeout=30, propagate=False)[0] == 2
    assert res.failed() and not res.successful() and res.completed_count() == 1


def test_group_travels_as_json(app: App) -> None:
    g = group(app.tasks["tasks.add"].s(i, i) for i in range(3))
    rebuilt = signature(json.loads(json.dumps(g)))
    assert isinstance(rebuilt, group)
    assert rebuilt.apply_async().get(timeout=30) == [0, 2, 4]


def test_map_and_starmap(app: App) -> None:
    xsum, add = app.tasks["tasks.xsum"], app.tasks["tasks.add"]
    assert ~xsum.map([list(range(10)), list(range(100))]) == [45, 4950]
    assert ~add.starmap(zip(range(10), range(10), strict=True)) == [2 * i for i in range(10)]
    m = xsum.map([[1, 2]])
    assert isinstance(signature(json.loads(json.dumps(m))), xmap)


def test_chunks(app: App) -> None:
    add = app.tasks["tasks.add"]
    res = add.chunks(zip(range(100), range(100), strict=True), 10).apply_async()
    values = res.get(timeout=60)
    assert len(values) == 10 and all(len(part) == 10 for part in values)
    assert values[0] == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    assert values[-1][-1] == 198
    g = add.chunks(zip(range(10), range(10), strict=True), 3).group()
    assert len(g) == 4  # 3 + 3 + 3 + 1
    with pytest.raises(ValueError, match="chunk size"):
        add.chunks([(1, 1)], 0)
