"""Celery canvas guide, "Signatures": each example with its documented result.

The examples about the signature object itself run on an eager memory:// app; the
calling examples send to the real node on Redis.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

from guide_nodes import GuideNode

from qmulti import AsyncResult, Signature, signature


def test_signature_by_task_name(eager: SimpleNamespace) -> None:
    s = signature("tasks.add", args=(2, 2), countdown=10)
    assert isinstance(s, Signature)
    assert repr(s) == "tasks.add(2, 2)"
    assert s.args == (2, 2) and s.options == {"countdown": 10}


def test_signature_method_of_the_task(eager: SimpleNamespace) -> None:
    s = eager.add.signature((2, 2), countdown=10)
    assert repr(s) == "tasks.add(2, 2)" and s.options == {"countdown": 10}


def test_s_shortcut_with_star_arguments(eager: SimpleNamespace) -> None:
    assert repr(eager.add.s(2, 2)) == "tasks.add(2, 2)"


def test_s_shortcut_with_keyword_arguments(eager: SimpleNamespace) -> None:
    s = eager.add.s(2, 2, debug=True)
    assert repr(s) == "tasks.add(2, 2, debug=True)"
    assert s.kwargs == {"debug": True}


def test_inspecting_the_fields(eager: SimpleNamespace) -> None:
    s = eager.add.signature((2, 2), {"debug": True}, countdown=10)
    assert s.args == (2, 2)
    assert s.kwargs == {"debug": True}
    assert s.options == {"countdown": 10}


def test_calling_a_signature_runs_it_inline(eager: SimpleNamespace) -> None:
    assert eager.add(2, 2) == 4
    assert eager.add.s(2, 2)() == 4


def test_calling_inline_needs_no_node(rnode: GuideNode) -> None:
    """`add.s(2, 2)()` runs in this process even with a real broker: nothing is sent."""
    assert rnode.t.add.s(2, 2)() == 4


def test_apply_async_on_task_and_on_signature(rnode: GuideNode) -> None:
    add = rnode.t.add
    started = time.monotonic()
    results = [add.apply_async((2, 2), countdown=1),
               add.signature((2, 2), countdown=1).apply_async()]
    assert all(isinstance(r, AsyncResult) for r in results)
    assert [r.get(timeout=20) for r in results] == [4, 4]
    assert time.monotonic() - started >= 0.9  # the countdown was honoured


def test_apply_async_with_args_kwargs_and_options(rnode: GuideNode) -> None:
    add = rnode.t.add
    args, kwargs, options = (2, 2), {"debug": True}, {"queue": "celery"}
    a = add.apply_async(args, kwargs, **options)
    b = add.signature(args, kwargs, **options).apply_async()
    assert a.get(timeout=20) == b.get(timeout=20) == {"sum": 4, "debug": True}


def test_delay_on_task_and_on_signature(rnode: GuideNode) -> None:
    add = rnode.t.add
    assert add.delay(2, 2).get(timeout=20) == 4
    assert add.signature((2, 2)).delay().get(timeout=20) == 4
    args, kwargs = (2, 2), {"debug": True}
    assert add.delay(*args, **kwargs).get(timeout=20) == {"sum": 4, "debug": True}
    assert add.signature(args, kwargs).delay().get(timeout=20) == {"sum": 4, "debug": True}


def test_delay_with_options_set_on_the_signature(rnode: GuideNode) -> None:
    add = rnode.t.add
    started = time.monotonic()
    results = [add.signature((2, 2), countdown=1).delay(),
               add.signature((2, 2)).set(countdown=1).delay()]
    assert [r.get(timeout=20) for r in results] == [4, 4]
    assert time.monotonic() - started >= 0.9


def test_set_adds_options_to_an_s_signature(eager: SimpleNamespace) -> None:
    s = eager.add.s(2, 2).set(countdown=1)
    assert repr(s) == "tasks.add(2, 2)"
    assert s.options == {"countdown": 1}
