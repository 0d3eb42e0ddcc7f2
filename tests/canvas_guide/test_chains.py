"""Celery canvas guide, "Chains": linked callbacks, `children`, `collect`, errbacks and
`chain` itself, on both the Redis and the SQLite node."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from guide_nodes import GuideNode

from qmulti import AsyncResult, canvas, states
from qmulti.protocol import new_id


def test_linked_task_gets_the_parent_result(node: GuideNode) -> None:
    t = node.t
    res = t.add.apply_async((2, 2), link=t.mul.s(16))
    assert res.get(timeout=20) == 4


def test_children_of_a_linked_task(node: GuideNode) -> None:
    t = node.t
    res = t.add.apply_async((2, 2), link=t.mul.s(16))
    assert res.get(timeout=20) == 4
    children = res.children
    assert len(children) == 1 and isinstance(children[0], AsyncResult)
    assert children[0].get(timeout=20) == 64  # mul(4, 16)


def test_collect_walks_the_result_graph(node: GuideNode) -> None:
    t = node.t
    res = t.add.apply_async((2, 2), link=t.mul.s(16))
    res.get(timeout=20)
    child = res.children[0]
    child.get(timeout=20)
    assert list(res.collect()) == [(res, 4), (child, 64)]
    assert list(res.collect(intermediate=True)) == [(res, 4), (child, 64)]


def test_a_signature_can_have_many_links(node: GuideNode, token: str) -> None:
    t = node.t
    s = t.add.s(2, 2)
    s.link(t.mul.s(4))
    s.link(t.log_result.s(token))
    res = s.delay()
    assert res.get(timeout=20) == 4
    (entry,) = node.wait_entries(1, timeout=10, kind="result", token=token)
    assert entry["value"] == 4
    values = sorted(child.get(timeout=20) for child in res.children)
    assert values == [4, 16]  # log_result(4) and mul(4, 4)


def test_on_error_is_link_error(eager: SimpleNamespace) -> None:
    s = eager.add.s(2, 2).on_error(eager.log_error.s())
    assert [dict(e) for e in s.options["link_error"]] == [dict(eager.log_error.s())]


def test_errback_not_called_on_success(node: GuideNode) -> None:
    t = node.t
    res = t.add.s(2, 2).on_error(t.log_error.s()).delay()
    assert res.get(timeout=20) == 4
    other = t.add.apply_async((2, 2), link_error=t.log_error.s())
    assert other.get(timeout=20) == 4
    assert node.entries(kind="errback", id=res.id) == []


def test_errback_gets_request_exception_and_traceback(node: GuideNode) -> None:
    """The node calls the errback's function itself with the failed task's request,
    exception and traceback."""
    t = node.t
    res = t.raising_task.s().on_error(t.log_error.s()).delay()
    res.get(timeout=20, propagate=False)
    assert res.failed()
    (entry,) = node.wait_entries(1, timeout=10, kind="errback", id=res.id)
    assert entry["exc"] == "ValueError" and entry["msg"] == "something something"
    assert entry["traceback"]


def test_link_error_in_apply_async(node: GuideNode) -> None:
    t = node.t
    res = t.fail.apply_async(link_error=t.log_error.s())
    res.get(timeout=20, propagate=False)
    (entry,) = node.wait_entries(1, timeout=10, kind="errback", id=res.id)
    assert entry["exc"] == "ValueError"


def test_chain_repr(eager: SimpleNamespace) -> None:
    t = eager
    res = canvas.chain(t.add.s(4, 4), t.mul.s(8), t.mul.s(10))
    assert repr(res) == "tasks.add(4, 4) | tasks.mul(8) | tasks.mul(10)"


def test_calling_a_chain_returns_the_last_result(node: GuideNode) -> None:
    t = node.t
    res = canvas.chain(t.add.s(4, 4), t.mul.s(8), t.mul.s(10))()
    assert res.get(timeout=30) == 640  # (4 + 4) * 8 * 10


def test_chain_result_parents(node: GuideNode) -> None:
    t = node.t
    res = canvas.chain(t.add.s(4, 4), t.mul.s(8), t.mul.s(10))()
    assert res.get(timeout=30) == 640
    assert res.parent.get(timeout=30) == 64
    assert res.parent.parent.get(timeout=30) == 8
    assert isinstance(res.parent.parent, AsyncResult)
    assert res.parent.parent.parent is None  # the first step has no parent


def test_chain_with_the_pipe_operator(node: GuideNode) -> None:
    t = node.t
    res = (t.add.s(2, 2) | t.mul.s(8) | t.mul.s(10)).apply_async()
    assert res.get(timeout=30) == 320


def test_chain_task_id_is_the_last_tasks(node: GuideNode) -> None:
    t = node.t
    task_id = new_id()
    res = canvas.chain(t.add.s(4, 4), t.mul.s(8), t.mul.s(10)).apply_async(task_id=task_id)
    assert res.id == task_id
    assert node.app.AsyncResult(task_id).get(timeout=30) == 640
    assert res.parent.id != task_id


def test_chain_stops_at_a_failed_step_and_runs_its_errback(node: GuideNode) -> None:
    """Not an example of the guide's but its rule (issue 12): the steps after a failure
    never run, and the chain's link_error does."""
    t = node.t
    middle = t.raising_task.si()
    failed_id = middle.freeze().id
    res = (t.add.s(1, 1) | middle | t.mul.s(2)).apply_async(link_error=t.log_error.s())
    (entry,) = node.wait_entries(1, timeout=15, kind="errback", id=failed_id)
    assert entry["msg"] == "something something"
    # the step has failed: the chain's result raises its error at once, as Celery's
    # get() does when a parent failed, instead of waiting for a step that never runs
    with pytest.raises(ValueError, match="something something"):
        res.get(timeout=5)
    assert res.state == states.PENDING  # mul never ran
    assert res.parent.id == failed_id and res.parent.parent.get(timeout=10) == 2
