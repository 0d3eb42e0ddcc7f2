"""Celery canvas guide, "Groups": calling a group, its callbacks and errbacks (passed
down to every member), GroupResult's operations, and group unrolling in a chain."""

from __future__ import annotations

from types import SimpleNamespace

from guide_nodes import GuideNode

from helpers import wait_for
from qmulti import GroupResult, canvas, group, states


def test_group_of_signatures(eager: SimpleNamespace) -> None:
    g = group(eager.add.s(2, 2), eager.add.s(4, 4))
    assert list(g) == [eager.add.s(2, 2), eager.add.s(4, 4)]
    assert "tasks.add(2, 2)" in repr(g) and "tasks.add(4, 4)" in repr(g)


def test_calling_a_group_returns_a_group_result(rnode: GuideNode) -> None:
    g = group(rnode.t.add.s(2, 2), rnode.t.add.s(4, 4))
    res = g()
    assert isinstance(res, GroupResult)
    assert res.get(timeout=20) == [4, 8]


def test_group_from_an_iterator(rnode: GuideNode) -> None:
    res = group(rnode.t.add.s(i, i) for i in range(100))()
    assert res.get(timeout=30) == [i + i for i in range(100)]


def test_group_link_is_passed_down_not_given_the_list(rnode: GuideNode) -> None:
    """`g.link(add.s())`: the group's own result is unaffected; the callback ran once a
    member, with that member's value alone, and failed for want of a second argument."""
    t = rnode.t
    g = group(t.add.s(2, 2), t.add.s(4, 4))
    g.link(t.add.s())
    res = g()
    assert res.get(timeout=20) == [4, 8]
    failed = [child for member in res.results for child in member.children]
    assert len(failed) == 2
    for child in failed:
        child.get(timeout=20, propagate=False)
        assert child.state == states.FAILURE and isinstance(child.result, TypeError)


def test_group_link_runs_per_member(rnode: GuideNode, token: str) -> None:
    t = rnode.t
    g = group(t.add.s(2, 2), t.add.s(4, 4))
    g.link(t.log_result.s(token))
    assert g().get(timeout=20) == [4, 8]
    entries = rnode.wait_entries(2, timeout=10, kind="result", token=token)
    assert sorted(e["value"] for e in entries) == [4, 8]  # never [4, 8] in one call


def test_group_errback_runs_once_per_failed_member(rnode: GuideNode) -> None:
    t = rnode.t
    g = group(t.fail.s(), t.fail.s())
    g.link_error(t.log_error.s())
    res = g()
    res.get(timeout=20, propagate=False)
    for member in res.results:
        (entry,) = rnode.wait_entries(1, timeout=10, kind="errback", id=member.id)
        assert entry["exc"] == "ValueError"


def test_group_result_of_five(rnode: GuideNode) -> None:
    add = rnode.t.add
    job = group([add.s(2, 2), add.s(4, 4), add.s(8, 8), add.s(16, 16), add.s(32, 32)])
    result = job.apply_async()
    assert result.get(timeout=20) == [4, 8, 16, 32, 64]
    assert result.ready()  # have all subtasks completed?
    assert result.successful()  # were all subtasks successful?


def test_group_result_operations_on_a_failure(rnode: GuideNode) -> None:
    t = rnode.t
    result = group(t.add.s(1, 1), t.fail.s(), t.add.s(2, 2)).apply_async()
    result.join(timeout=20, propagate=False)
    assert result.ready() and not result.waiting()
    assert result.failed() and not result.successful()
    assert result.completed_count() == 2  # completed means successful
    assert result.join(timeout=20, propagate=False)[::2] == [2, 4]  # in call order


def test_group_result_waiting_and_revoke(rnode: GuideNode) -> None:
    add = rnode.t.add
    result = group(add.s(1, 1), add.s(2, 2)).apply_async(countdown=30)
    assert result.waiting() and not result.ready()
    assert result.completed_count() == 0
    result.revoke()
    wait_for(lambda: all(r.state == states.REVOKED for r in result.results), 20,
             "both members REVOKED")
    assert result.ready() and not result.successful()


def test_group_join_in_call_order(rnode: GuideNode) -> None:
    add = rnode.t.add
    # the first member waits: the results come back in call order, not finish order
    result = group(add.s(1, 1).set(countdown=1), add.s(2, 2)).apply_async()
    assert result.join(timeout=20) == [2, 4]


def test_a_group_of_one_unrolls_in_a_chain(node: GuideNode) -> None:
    add = node.t.add
    c = canvas.chain(add.s(2, 2), group(add.s(1)), add.s(1))
    assert c.apply_async().get(timeout=30) == 6  # a single value went on, not [5]
    assert repr(c) == "tasks.add(2, 2) | tasks.add(1) | tasks.add(1)"


def test_a_group_of_two_in_a_chain_becomes_a_chord(node: GuideNode) -> None:
    t = node.t
    c = canvas.chain(t.add.s(2, 2), group(t.add.s(1), t.add.s(2)), t.tsum.s())
    assert c.apply_async().get(timeout=30) == 11  # tsum([5, 6])
    assert isinstance(c.tasks[-1], canvas.chord)


def test_a_leading_group_of_one_unrolls(node: GuideNode) -> None:
    add = node.t.add
    c = canvas.chain(group(add.s(1, 1)), add.s(2))
    assert c.apply_async().get(timeout=30) == 4
    assert repr(c) == "tasks.add(1, 1) | tasks.add(2)"
