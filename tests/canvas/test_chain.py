"""chain on a real node (SQLite and Redis): results passed on, parents, immutability,
a failed step stopping the chain and running its errback, and the `|` operator."""

from __future__ import annotations

from pathlib import Path

import pytest
from canvas_support import t

from helpers import wait_for
from qmulti import App
from qmulti.canvas import chain

pytestmark = pytest.mark.timeout(60)


def test_each_result_is_prepended_to_the_next_steps_args(app: App) -> None:
    add, mul = t(app, "add"), t(app, "mul")
    r = chain(add.s(2, 2), add.s(4), mul.s(8)).apply_async()
    assert r.get(timeout=20) == 64  # ((2 + 2) + 4) * 8
    assert r.parent.get(timeout=5) == 8 and r.parent.parent.get(timeout=5) == 4
    assert r.parent.parent.parent is None


def test_the_pipe_operator_and_partial_first_step(app: App) -> None:
    add = t(app, "add")
    assert (add.s(2, 2) | add.s(4) | add.s(8))().get(timeout=20) == 16
    assert (add.s(2) | add.s(4)).delay(1).get(timeout=20) == 7


def test_an_immutable_step_ignores_the_result_before_it(app: App) -> None:
    add = t(app, "add")
    r = (add.s(2, 2) | add.si(10, 10) | add.s(1)).delay()
    assert r.get(timeout=20) == 21
    assert r.parent.get(timeout=5) == 20


def test_a_failed_step_stops_the_chain_and_runs_its_link_error(app: App,
                                                               root: Path) -> None:
    add, boom, log_error = t(app, "add"), t(app, "boom"), t(app, "log_error")
    r = (add.s(1, 1) | boom.s() | add.s(5)).on_error(log_error.s()).delay()
    failed = r.parent
    with pytest.raises(KeyError):
        failed.get(timeout=20)
    log = root / "errors.log"
    wait_for(lambda: log.exists() and failed.id in log.read_text(), 20, "the errback")
    assert "KeyError" in log.read_text()
    assert r.state == "PENDING"  # the step after the failure never runs


def test_an_old_style_errback_is_sent_with_the_task_id(app: App, root: Path) -> None:
    boom, note = t(app, "boom"), t(app, "note")
    r = boom.apply_async((1,), link_error=note.s(tag="old"))
    with pytest.raises(KeyError):
        r.get(timeout=20)
    log = root / "notes.log"
    wait_for(lambda: log.exists() and f"old {r.id}" in log.read_text(), 20, "the errback")


def test_link_callbacks_get_the_result(app: App, root: Path) -> None:
    add, note = t(app, "add"), t(app, "note")
    s = add.s(2, 3)
    s.link(note.s(tag="linked"))
    r = s.apply_async(link=note.s(tag="also"))
    assert r.get(timeout=20) == 5
    log = root / "notes.log"
    wait_for(lambda: log.exists() and "linked 5" in log.read_text()
             and "also 5" in log.read_text(), 20, "both callbacks")


def test_replace_runs_the_new_signature_under_the_same_id_and_chain(app: App) -> None:
    replaced, add = t(app, "replaced"), t(app, "add")
    assert replaced.delay(1).get(timeout=20) == 101
    assert (replaced.s(1) | add.s(1)).delay().get(timeout=20) == 102


def test_a_long_chain_completes(app: App) -> None:
    add = t(app, "add")
    r = chain([add.s(0, 1)] + [add.s(1) for _ in range(99)]).delay()
    assert r.get(timeout=60) == 100


def test_children_name_the_next_step_and_links(app: App) -> None:
    add, note = t(app, "add"), t(app, "note")
    first = add.s(1, 1)
    first.link(note.s(tag="child"))
    r = (first | add.s(2)).delay()
    assert r.get(timeout=20) == 4
    children = {c.id for c in r.parent.children}
    assert r.id in children and len(children) == 2
    assert r.children == []
