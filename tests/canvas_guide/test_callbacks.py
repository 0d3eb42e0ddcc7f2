"""Celery canvas guide, "Callbacks": `link` runs a signature with the parent's result
prepended to its arguments, and only when the parent succeeded."""

from __future__ import annotations

from types import SimpleNamespace

from guide_nodes import GuideNode


def test_link_a_callback(rnode: GuideNode, token: str) -> None:
    t = rnode.t
    assert t.add.apply_async((2, 2), link=t.log_result.s(token)).get(timeout=20) == 4
    (entry,) = rnode.wait_entries(1, timeout=10, kind="result", token=token)
    assert entry["value"] == 4  # called with the parent's return value


def test_callback_only_after_success(rnode: GuideNode, token: str) -> None:
    t = rnode.t
    ok = t.add.apply_async((1, 1), link=t.log_result.s(token + "-ok"))
    bad = t.fail.apply_async(link=t.log_result.s(token))
    assert ok.get(timeout=20) == 2
    bad.get(timeout=20, propagate=False)
    assert bad.failed()
    rnode.wait_entries(1, timeout=10, kind="result", token=token + "-ok")
    assert rnode.entries(kind="result", token=token) == []


def test_partial_callback_gets_the_result_first(eager: SimpleNamespace) -> None:
    """`sig = add.s(10); sig.delay(result)` is `add.apply_async(args=(result, 10))`."""
    sig = eager.echo.s(10)
    assert sig.delay(4).get() == eager.echo.apply_async(args=(4, 10)).get()
    assert sig.delay(4).get() == {"args": [4, 10], "kwargs": {}}


def test_link_with_partial_arguments(rnode: GuideNode) -> None:
    t = rnode.t
    callback = t.add.s(8)
    callback_result = callback.freeze()
    assert t.add.apply_async((2, 2), link=callback).get(timeout=20) == 4
    assert callback_result.get(timeout=20) == 12  # 4 + 8
