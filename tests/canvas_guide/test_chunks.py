"""Celery canvas guide, "Chunks": a long list of argument tuples split into parts, one
message a part."""

from __future__ import annotations

from types import SimpleNamespace

from guide_nodes import GuideNode

from qmulti import group

EXPECTED = [[2 * i for i in range(start, start + 10)] for start in range(0, 100, 10)]


def test_chunks_signature(eager: SimpleNamespace) -> None:
    sig = eager.add.chunks(zip(range(100), range(100), strict=True), 10)
    assert len(sig.group()) == 10


def test_calling_chunks(rnode: GuideNode) -> None:
    res = rnode.t.add.chunks(zip(range(100), range(100), strict=True), 10)()
    values = res.get(timeout=30)
    assert values == EXPECTED
    assert values[0] == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    assert values[-1] == [180, 182, 184, 186, 188, 190, 192, 194, 196, 198]


def test_chunks_apply_async_runs_in_the_worker(rnode: GuideNode) -> None:
    res = rnode.t.add.chunks(zip(range(100), range(100), strict=True), 10).apply_async()
    assert res.get(timeout=30) == EXPECTED


def test_chunks_as_a_group(rnode: GuideNode) -> None:
    g = rnode.t.add.chunks(zip(range(100), range(100), strict=True), 10).group()
    assert isinstance(g, group) and len(g) == 10
    assert g().get(timeout=30) == EXPECTED


def test_group_skew_sets_rising_countdowns(rnode: GuideNode) -> None:
    g = rnode.t.add.chunks(zip(range(100), range(100), strict=True), 10).group()
    skewed = g.skew(start=1, stop=10)
    assert [task.options["countdown"] for task in skewed] == list(range(1, 11))
    # sent with short steps (the guide's ten seconds would dominate the suite's time)
    fast = rnode.t.add.chunks(zip(range(20), range(20), strict=True), 10).group()
    assert fast.skew(start=0, step=0.2)().get(timeout=30) == EXPECTED[:2]
