"""Celery canvas guide, "Immutability": an immutable signature keeps its own arguments,
so a callback that wants none is not handed its parent's result."""

from __future__ import annotations

from types import SimpleNamespace

from guide_nodes import GuideNode


def test_link_an_immutable_signature(rnode: GuideNode, token: str) -> None:
    t = rnode.t
    callback = t.reset_buffers.signature(kwargs={"token": token}, immutable=True)
    assert t.add.apply_async((2, 2), link=callback).get(timeout=20) == 4
    (entry,) = rnode.wait_entries(1, timeout=10, kind="reset", token=token)
    assert entry["args"] == []  # not called with the parent's 4


def test_link_an_si_signature(rnode: GuideNode, token: str) -> None:
    t = rnode.t
    assert t.add.apply_async((2, 2), link=t.reset_buffers.si(token=token)).get(timeout=20) == 4
    (entry,) = rnode.wait_entries(1, timeout=10, kind="reset", token=token)
    assert entry["args"] == []


def test_only_options_can_be_set_on_an_immutable_signature(rnode: GuideNode) -> None:
    s = rnode.t.add.si(2, 2)
    assert s.immutable
    assert s.clone((8,), {"debug": True}).args == (2, 2)
    assert s.clone((8,), {"debug": True}).kwargs == {}
    assert s.delay(8).get(timeout=20) == 4  # the partial argument is ignored
    assert s.apply_async((8,), countdown=0.1).get(timeout=20) == 4  # the option is taken


def test_signature_immutable_flag_and_si_agree(eager: SimpleNamespace) -> None:
    assert eager.add.signature((2, 2), immutable=True) == eager.add.si(2, 2)


def test_invert_sends_and_waits(rnode: GuideNode) -> None:
    sig = rnode.t.add.s(2, 2)
    assert ~sig == 4
    assert ~sig == sig.apply_async().get()
