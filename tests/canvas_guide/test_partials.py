"""Celery canvas guide, "Partials": arguments and options given at the call are merged
into the signature's own (args prepended, kwargs and options taking precedence)."""

from __future__ import annotations

import time
from types import SimpleNamespace

from guide_nodes import GuideNode


def test_signature_runs_in_a_worker(rnode: GuideNode) -> None:
    add = rnode.t.add
    assert add.s(2, 2).delay().get(timeout=20) == 4
    assert add.s(2, 2).apply_async(countdown=1).get(timeout=20) == 4


def test_signature_runs_in_the_current_process(eager: SimpleNamespace) -> None:
    assert eager.add.s(2, 2)() == 4


def test_added_args_are_prepended(rnode: GuideNode) -> None:
    partial = rnode.t.add.s(2)  # incomplete signature
    assert partial.delay(4).get(timeout=20) == 6  # 4 + 2
    assert partial.apply_async((4,)).get(timeout=20) == 6


def test_prepending_shown_with_a_non_commutative_task(rnode: GuideNode) -> None:
    partial = rnode.t.subtract.s(10)  # the second argument only
    assert partial.delay(30).get(timeout=20) == 20  # subtract(30, 10), not (10, 30)


def test_added_args_order_on_a_recording_task(eager: SimpleNamespace) -> None:
    assert eager.echo.s(10).delay(4).get() == {"args": [4, 10], "kwargs": {}}


def test_added_kwargs_are_merged(rnode: GuideNode) -> None:
    s = rnode.t.add.s(2, 2)
    assert s.delay(debug=True).get(timeout=20) == {"sum": 4, "debug": True}
    assert s.apply_async(kwargs={"debug": True}).get(timeout=20) == {"sum": 4, "debug": True}


def test_new_kwargs_take_precedence(eager: SimpleNamespace) -> None:
    s = eager.echo.s(mode="old", keep=1)
    assert s.delay(mode="new").get() == {"args": [], "kwargs": {"mode": "new", "keep": 1}}


def test_added_options_take_precedence(rnode: GuideNode) -> None:
    s = rnode.t.add.signature((2, 2), countdown=10)
    started = time.monotonic()
    result = s.apply_async(countdown=1)  # countdown is now 1
    assert result.get(timeout=8) == 4  # well before the signature's own 10 s
    assert time.monotonic() - started >= 0.9
    assert s.options == {"countdown": 10}  # the signature itself is unchanged


def test_clone_makes_a_derivative(eager: SimpleNamespace) -> None:
    s = eager.add.s(2)
    assert repr(s) == "tasks.add(2)"
    derived = s.clone(args=(4,), kwargs={"debug": True})
    assert repr(derived) == "tasks.add(4, 2, debug=True)"
    assert repr(s) == "tasks.add(2)"
    assert derived() == {"sum": 6, "debug": True}
