"""The canvas on `memory://` (the node's own `execute` run in this process, as a
`-P solo` node would) and eager (`task_always_eager`, `apply()`): same results."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from qmulti import App, ChordError, GroupResult
from qmulti.canvas import chain, chord, group
from qmulti.node.execute import Runtime, execute

pytestmark = pytest.mark.timeout(60)


class NoHooks:
    def begin(self, running: Any) -> None: ...
    def returned(self) -> None: ...
    def end(self) -> None: ...


def define(app: App) -> dict[str, Any]:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def tsum(numbers: list[int]) -> int:
        return sum(numbers)

    @app.task
    def boom(*args: Any) -> None:
        raise KeyError("boom")

    @app.task(bind=True)
    def replaced(self: Any, x: int) -> None:
        self.replace(add.s(x, 100))

    @app.task(bind=True)
    def by_chain(self: Any, x: int) -> None:
        self.replace(add.s(x, 1) | add.s(10))

    return {"add": add, "tsum": tsum, "boom": boom, "replaced": replaced,
            "by_chain": by_chain}


@pytest.fixture
def mem() -> Iterator[tuple[App, dict[str, Any]]]:
    app = App("m", broker="memory://")
    tasks = define(app)
    yield app, tasks
    app.close()


def work(app: App, limit: int = 10_000) -> int:
    """Run every message there is, and those they lead to, here."""
    store = app.broker
    rt = Runtime(app=app, broker=store, backend=store, hostname="m@here",
                 accept=frozenset({"json"}), log=logging.getLogger("test"))
    store.heartbeat("m@here#1.1", {})
    done = 0
    while done < limit:
        got = store.claim(["celery"], "m@here#1.1", "c", 100, 0)
        if not got:
            return done
        for d in got:
            execute(rt, d, NoHooks())
            done += 1
    return done


def test_chain_chord_and_nesting_on_memory(mem: tuple[App, dict[str, Any]]) -> None:
    app, t = mem
    add, tsum = t["add"], t["tsum"]
    r1 = (add.s(2, 2) | add.s(4) | add.s(8)).delay()
    r2 = chord(add.s(i, i) for i in range(10))(tsum.s())
    r3 = chord([chord([add.s(1, 1), add.s(2, 2)], tsum.s()), add.s(5, 5) | add.s(1)],
               tsum.s()).delay()
    r4 = (group(add.s(1, 1), add.s(2, 2)) | tsum.s() | add.s(1)).delay()
    work(app)
    assert r1.get(timeout=1) == 16 and r1.parent.get(timeout=1) == 8
    assert r2.get(timeout=1) == 90
    assert r3.get(timeout=1) == 17
    assert r4.get(timeout=1) == 7


def test_errors_on_memory(mem: tuple[App, dict[str, Any]]) -> None:
    app, t = mem
    add, tsum, boom = t["add"], t["tsum"], t["boom"]
    r1 = (add.s(1, 1) | boom.s() | add.s(1)).delay()
    r2 = chord([add.s(1, 1), boom.s()], tsum.s()).delay()
    work(app)
    with pytest.raises(KeyError):
        r1.parent.get(timeout=1)
    assert r1.state == "PENDING"
    with pytest.raises(ChordError, match=r2.parent.results[1].id):
        r2.get(timeout=1)


def test_replace_on_memory(mem: tuple[App, dict[str, Any]]) -> None:
    app, t = mem
    r = (t["replaced"].s(1) | t["add"].s(1)).delay()
    r2 = chord([t["by_chain"].s(1), t["add"].s(1, 1)], t["tsum"].s())()
    work(app)
    assert r.parent.get(timeout=1) == 101 and r.get(timeout=1) == 102
    assert r2.parent.results[0].get(timeout=1) == 12 and r2.get(timeout=1) == 14


def test_a_duplicate_member_message_fires_the_body_once(
        mem: tuple[App, dict[str, Any]]) -> None:
    app, t = mem
    add, tsum = t["add"], t["tsum"]
    store = app.broker
    r = chord(add.s(i, 0) for i in range(5))(tsum.s())
    first = store.claim(["celery"], "x#1.1", "c", 1, 0)[0]
    store.nack([first])
    store.publish("celery", "dup-mid", first.body)  # the same member, published twice
    assert work(app) == 5 + 1 + 1  # five members, the duplicate, one body
    assert r.get(timeout=1) == 10


@pytest.fixture
def eager() -> Iterator[dict[str, Any]]:
    app = App("e", broker="memory://")
    app.conf.task_always_eager = True
    yield define(app)
    app.close()


def test_the_same_canvas_eagerly(eager: dict[str, Any]) -> None:
    add, tsum, boom = eager["add"], eager["tsum"], eager["boom"]
    assert chain(add.s(2, 2), add.s(4), add.s(8)).delay().get() == 16
    assert chord(add.s(i, i) for i in range(10))(tsum.s()).get() == 90
    assert (group(add.s(1, 1), add.s(2, 2)) | tsum.s()).delay().get() == 6
    assert chord([chord([add.s(1, 1)], tsum.s()), add.s(1, 0)], tsum.s()).delay().get() == 3
    with pytest.raises(ChordError):
        chord([add.s(1, 1), boom.s()], tsum.s()).delay().get()
    assert eager["replaced"].delay(1).get() == 101
    assert (add.s(1, 1) | add.s(1)).apply().get() == 3


def test_freeze_fixes_a_chains_and_a_chords_ids_before_sending(
        mem: tuple[App, dict[str, Any]]) -> None:
    app, t = mem
    add, tsum = t["add"], t["tsum"]
    c = add.s(1, 1) | add.s(1)
    frozen = c.freeze()
    r = c.delay()
    ch = chord([add.s(1, 1)], tsum.s())
    body = ch.freeze()
    r2 = ch.delay()
    work(app)
    assert r.id == frozen.id and r.parent.id == frozen.parent.id and r.get(timeout=1) == 3
    assert r2.id == body.id and r2.get(timeout=1) == 2


def test_a_chord_over_chord_max_size_sends_nothing(mem: tuple[App, dict[str, Any]]) -> None:
    app, t = mem
    app.conf.chord_max_size = 3
    with pytest.raises(ValueError, match="over chord_max_size"):
        chord(t["add"].s(i, i) for i in range(4))(t["tsum"].s())
    assert work(app) == 0


def test_a_revoked_header_task_fails_the_chord(mem: tuple[App, dict[str, Any]]) -> None:
    app, t = mem
    r = chord([t["add"].s(1, 1), t["add"].s(2, 2)], t["tsum"].s())()
    revoked = r.parent.results[1]
    revoked.revoke()
    work(app)
    with pytest.raises(ChordError, match=revoked.id):
        r.get(timeout=1)


def test_group_freeze_gives_a_group_result_that_apply_async_keeps(
        mem: tuple[App, dict[str, Any]]) -> None:
    app, t = mem
    g = group(t["add"].s(i, i) for i in range(3))
    frozen = g.freeze()
    assert isinstance(frozen, GroupResult)
    r = g.apply_async()
    assert work(app) == 3
    assert r.id == frozen.id and [m.id for m in r.results] == [m.id for m in frozen.results]
    assert frozen.get(timeout=1) == [0, 2, 4]


def test_a_group_is_checked_whole_then_published_in_one_call(
        mem: tuple[App, dict[str, Any]]) -> None:
    app, t = mem
    with pytest.raises(TypeError, match="add"):  # the third member: nothing sent at all
        group([t["add"].s(1, 1), t["add"].s(2, 2), t["add"].s(1, 2, 3)]).apply_async()
    assert work(app) == 0
    r = group(t["add"].s(i, i) for i in range(3)).apply_async(queue="elsewhere")
    assert app.broker.stats().queues.get("elsewhere") == 3 and work(app) == 0
    assert len(r.results) == 3
