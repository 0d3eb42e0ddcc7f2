"""Celery canvas guide, "The Primitives": the overview and the examples that follow it,
the chain and chord ones on both the Redis and the SQLite node."""

from __future__ import annotations

from types import SimpleNamespace

from guide_nodes import GuideNode

from qmulti import GroupResult, canvas, group

# -- the overview ------------------------------------------------------------------------


def test_overview_map(rnode: GuideNode) -> None:
    """`task.map([1, 2])`: one task whose result is `[task(1), task(2)]`."""
    assert ~rnode.t.tsum.map([[1], [1, 2]]) == [1, 3]


def test_overview_starmap(rnode: GuideNode) -> None:
    assert ~rnode.t.add.starmap([(2, 2), (4, 4)]) == [4, 8]


def test_overview_chunks_of_a_thousand(eager: SimpleNamespace) -> None:
    items = zip(range(1000), range(1000), strict=True)  # 1000 items
    parts = eager.add.chunks(items, 10).group()
    assert len(parts) == 100  # 100 tasks...
    assert all(len(part.kwargs["it"]) == 10 for part in parts)  # ...of 10 items each


# -- the examples ------------------------------------------------------------------------


def test_simple_chain(node: GuideNode) -> None:
    add = node.t.add
    res = canvas.chain(add.s(2, 2), add.s(4), add.s(8))()  # 2 + 2 + 4 + 8
    assert res.get(timeout=30) == 16


def test_simple_chain_with_pipes(node: GuideNode) -> None:
    add = node.t.add
    assert (add.s(2, 2) | add.s(4) | add.s(8))().get(timeout=30) == 16


def test_immutable_signature_forms(eager: SimpleNamespace) -> None:
    s = eager.add.signature((2, 2), immutable=True)
    assert s.immutable and eager.add.si(2, 2).immutable
    assert s == eager.add.si(2, 2)


def test_chain_of_independent_tasks(node: GuideNode) -> None:
    add = node.t.add
    res = (add.si(2, 2) | add.si(4, 4) | add.si(8, 8))()
    assert res.get(timeout=30) == 16
    assert res.parent.get(timeout=30) == 8
    assert res.parent.parent.get(timeout=30) == 4


def test_simple_group(rnode: GuideNode) -> None:
    res = group(rnode.t.add.s(i, i) for i in range(10))()
    assert isinstance(res, GroupResult)
    assert res.get(timeout=30) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]


def test_simple_chord(node: GuideNode) -> None:
    t = node.t
    res = canvas.chord((t.add.s(i, i) for i in range(10)), t.tsum.s())()
    assert res.get(timeout=30) == 90


def test_chord_with_an_immutable_body(node: GuideNode) -> None:
    t = node.t
    contacts = ["ann", "bob", "cid"]
    res = canvas.chord((t.import_contact.s(c) for c in contacts),
                       t.notify_complete.si("imp-7")).apply_async()
    # notify_complete takes one argument: the header's list was not passed on
    assert res.get(timeout=30) == "import imp-7 complete"


def test_partial_chain(node: GuideNode) -> None:
    t = node.t
    c1 = t.add.s(4) | t.mul.s(8)
    assert c1(16).get(timeout=30) == 160  # (16 + 4) * 8


def test_chains_combine(node: GuideNode) -> None:
    t = node.t
    c2 = t.add.s(4, 16) | t.mul.s(2) | (t.add.s(4) | t.mul.s(8))
    assert c2().get(timeout=30) == 352  # ((4 + 16) * 2 + 4) * 8


def test_group_chained_to_a_task_becomes_a_chord(node: GuideNode) -> None:
    t = node.t
    c3 = group(t.add.s(i, i) for i in range(10)) | t.tsum.s()
    assert c3().get(timeout=30) == 90
    assert isinstance(c3, canvas.chord)


def test_chain_forwards_its_value_to_every_group_member(node: GuideNode) -> None:
    t = node.t
    new_user_workflow = t.create_user.s() | group(t.import_contacts.s(),
                                                   t.send_welcome_email.s())
    res = new_user_workflow.delay(username="artv", first="Art", last="Vandelay",
                                  email="art@vandelay.com")
    assert res.get(timeout=30) == ["contacts of artv", "welcome artv"]


def test_group_of_immutable_signatures_in_a_chain(node: GuideNode) -> None:
    t = node.t
    res = (t.add.s(4, 4) | group(t.add.si(i, i) for i in range(10)))()
    assert res.get(timeout=30) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    assert res.parent.get(timeout=30) == 8
