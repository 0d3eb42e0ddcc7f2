"""chord on a real node (SQLite and Redis): the body gets the header's results in order;
a failed header task fails the body with ChordError naming it and runs the body's
errback; groups inside chains become chords; chains inside groups and chords; nested
chords; chord_max_size refused at apply_async."""

from __future__ import annotations

from pathlib import Path

import pytest
from canvas_support import t

from helpers import wait_for
from qmulti import App, ChordError, GroupResult
from qmulti.canvas import chain, chord, group

pytestmark = pytest.mark.timeout(60)


def test_the_body_gets_the_header_results_in_order(app: App) -> None:
    add, tsum, identity = t(app, "add"), t(app, "tsum"), t(app, "identity")
    r = chord(add.s(i, i) for i in range(20))(tsum.s())
    assert r.get(timeout=30) == sum(i + i for i in range(20))
    assert isinstance(r.parent, GroupResult) and r.parent.get(timeout=5) == [
        i + i for i in range(20)]
    assert chord([add.s(3, 0), add.s(1, 0), add.s(2, 0)], identity.s())().get(
        timeout=30) == [3, 1, 2]


def test_a_group_followed_by_a_step_is_a_chord(app: App) -> None:
    add, tsum, mul = t(app, "add"), t(app, "tsum"), t(app, "mul")
    r = (group(add.s(i, i) for i in range(10)) | tsum.s() | mul.s(2)).delay()
    assert r.get(timeout=30) == 180
    r = chain(add.s(1, 1), group(add.s(1), add.s(2)), tsum.s()).delay()
    assert r.get(timeout=30) == 3 + 4  # each header task gets the 2 before it


def test_chains_inside_a_group_and_a_chord(app: App) -> None:
    add, mul, tsum = t(app, "add"), t(app, "mul"), t(app, "tsum")
    g = group(add.s(1, 1) | mul.s(10), add.s(2, 2) | mul.s(10))
    assert g.delay().get(timeout=30) == [20, 40]
    r = chord([add.s(1, 1) | mul.s(10), add.s(5, 5)], tsum.s()).delay()
    assert r.get(timeout=30) == 30


def test_nested_chords(app: App) -> None:
    add, tsum = t(app, "add"), t(app, "tsum")
    inner = chord([add.s(1, 1), add.s(2, 2)], tsum.s())  # 6
    r = chord([inner, add.s(10, 10)], tsum.s()).delay()
    assert r.get(timeout=30) == 26


def test_a_failed_header_task_fails_the_body_with_chord_error_and_its_errback(
        app: App, root: Path) -> None:
    add, boom, tsum, log_error = t(app, "add"), t(app, "boom"), t(app, "tsum"), \
        t(app, "log_error")
    body = tsum.s().on_error(log_error.s())
    header = [add.s(1, 1), boom.s(7), add.s(2, 2)]
    r = chord(header, body).delay()
    with pytest.raises(ChordError) as info:
        r.get(timeout=30)
    failed = r.parent.results[1]
    assert failed.id in str(info.value) and "KeyError" in str(info.value)
    with pytest.raises(KeyError):
        failed.get(timeout=5)  # the member itself raises its own type
    log = root / "errors.log"
    wait_for(lambda: log.exists() and f"{r.id} ChordError" in log.read_text(), 20,
             "the body's errback")


def test_an_empty_header_runs_the_body_with_an_empty_list(app: App) -> None:
    tsum = t(app, "tsum")
    assert chord([], tsum.s()).delay().get(timeout=20) == 0


def test_a_chord_over_chord_max_size_is_refused_before_anything_is_sent(app: App) -> None:
    add, tsum = t(app, "add"), t(app, "tsum")
    app.conf.chord_max_size = 5
    try:
        with pytest.raises(ValueError, match="chord_max_size"):
            chord(add.s(i, i) for i in range(6))(tsum.s())
        assert chord(add.s(i, i) for i in range(5))(tsum.s()).get(timeout=20) == 20
    finally:
        app.conf.chord_max_size = 100_000


def test_a_chord_of_a_thousand(app: App) -> None:
    add, tsum = t(app, "add"), t(app, "tsum")
    r = chord(add.s(i, 1) for i in range(1000))(tsum.s())
    assert r.get(timeout=60) == sum(range(1000)) + 1000
