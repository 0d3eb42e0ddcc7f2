"""Celery canvas guide, "Map & Starmap": one message that calls a task for every item
of a sequence, in order."""

from __future__ import annotations

import time

from guide_nodes import GuideNode

from qmulti import group


def test_map(rnode: GuideNode) -> None:
    assert ~rnode.t.tsum.map([list(range(10)), list(range(100))]) == [45, 4950]


def test_map_is_a_task_doing_the_calls(rnode: GuideNode) -> None:
    """`map` is the same as a task returning `[tsum(range(10)), tsum(range(100))]`."""
    t = rnode.t
    expected = [t.tsum(range(10)), t.tsum(range(100))]
    assert ~t.tsum.map([list(range(10)), list(range(100))]) == expected


def test_starmap(rnode: GuideNode) -> None:
    res = ~rnode.t.add.starmap(zip(range(10), range(10), strict=True))
    assert res == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    assert res == [rnode.t.add(i, i) for i in range(10)]


def test_map_sends_one_message(rnode: GuideNode) -> None:
    sig = rnode.t.add.starmap(zip(range(10), range(10), strict=True))
    result = sig.apply_async()
    assert result.get(timeout=20) == [i + i for i in range(10)]
    assert rnode.app.AsyncResult(result.id).get(timeout=5) == result.get()  # one id


def test_starmap_with_a_countdown(rnode: GuideNode) -> None:
    """The guide's example waits 10 s; one second shows the same and keeps the suite
    fast."""
    started = time.monotonic()
    res = rnode.t.add.starmap(zip(range(10), range(10), strict=True)).apply_async(countdown=1)
    assert res.get(timeout=20) == [i + i for i in range(10)]
    assert time.monotonic() - started >= 0.9


def test_map_and_starmap_combine_in_a_group(rnode: GuideNode) -> None:
    t = rnode.t
    res = group(t.tsum.map([[1, 2], [3]]), t.add.starmap([(1, 1), (2, 2)]))()
    assert res.get(timeout=20) == [[3, 3], [2, 4]]
