"""Celery canvas guide, "Chords": a body that runs once all of its header has, its
errors (ChordError, errbacks) and its links, on both the Redis and the SQLite node."""

from __future__ import annotations

import pytest
from guide_nodes import GuideNode

from qmulti import canvas, exceptions, group


def test_sum_of_a_hundred_additions(node: GuideNode) -> None:
    t = node.t
    assert canvas.chord(t.add.s(i, i) for i in range(100))(t.tsum.s()).get(timeout=60) == 9900


def test_the_chord_expression_broken_down(node: GuideNode) -> None:
    t = node.t
    callback = t.tsum.s()
    callback_id = callback.freeze().id
    header = [t.add.s(i, i) for i in range(100)]
    result = canvas.chord(header)(callback)
    assert result.get(timeout=60) == 9900
    assert result.id == callback_id  # the chord's id is the callback's


def test_a_failed_header_task_fails_the_body_with_chord_error(node: GuideNode) -> None:
    t = node.t
    header = [t.add.s(4, 4), t.raising_task.s(), t.add.s(8, 8)]
    ids = [s.freeze().id for s in header]
    result = canvas.chord(header, t.tsum.s())()
    with pytest.raises(exceptions.ChordError) as caught:
        result.get(timeout=30)
    message = str(caught.value)
    assert ids[1] in message  # the failed task's id...
    assert "ValueError" in message and "something something" in message  # ...its error
    assert result.failed() and result.traceback
    # the rest of the header still ran
    assert node.app.AsyncResult(ids[2]).get(timeout=30) == 16
    assert node.app.AsyncResult(ids[0]).get(timeout=30) == 8


def test_chord_errback_is_not_called_on_success(node: GuideNode) -> None:
    t = node.t
    c = (group(t.add.s(i, i) for i in range(10)) |
         t.tsum.s().on_error(t.on_chord_error.s())).delay()
    assert c.get(timeout=30) == 90
    assert node.entries(kind="chord_errback", id=c.id) == []


@pytest.mark.parametrize(("errback", "kind"), [
    ("on_chord_error", "chord_errback"),  # (request, exc, traceback): called by the node
    ("errback_by_id", "errback_id"),  # one argument: sent as a task with the body's id
])
def test_chord_errback_styles(node: GuideNode, errback: str, kind: str) -> None:
    t = node.t
    c = (group([t.add.s(1, 1), t.raising_task.s()]) |
         t.tsum.s().on_error(getattr(t, errback).s())).delay()
    with pytest.raises(exceptions.ChordError):
        c.get(timeout=30)
    (entry,) = node.wait_entries(1, timeout=10, kind=kind, id=c.id)
    if kind == "chord_errback":
        assert entry["exc"] == "ChordError"


def test_chord_link_runs_once_after_the_body(node: GuideNode, token: str) -> None:
    t = node.t
    c = canvas.chord([t.add.s(i, i) for i in range(10)], t.tsum.s())
    c.link(t.log_result.s(token))
    assert c().get(timeout=30) == 90
    entries = node.wait_entries(1, timeout=10, kind="result", token=token)
    assert [e["value"] for e in entries] == [90]


def test_chord_link_error_runs_once(node: GuideNode) -> None:
    t = node.t
    c = canvas.chord([t.raising_task.s(), t.fail.s(), t.add.s(1, 1)], t.tsum.s())
    c.link_error(t.log_error.s())
    result = c()
    with pytest.raises(exceptions.ChordError):
        result.get(timeout=30)
    node.wait_entries(1, timeout=10, kind="errback", id=result.id)
    # two header tasks failed, yet the body's errback ran once; the header's own
    # errbacks stay off (task_allow_error_cb_on_chord_header is False)
    assert len(node.entries(kind="errback", id=result.id)) == 1


def test_after_return_without_super_does_not_break_the_chord(node: GuideNode) -> None:
    """The guide warns that a Redis chord needs `after_return` to call super(); here
    the body is published by the store itself, so it does not."""
    t = node.t
    res = canvas.chord(t.forgetful_add.s(i, i) for i in range(5))(t.tsum.s())
    assert res.get(timeout=30) == 20
