"""The dashboard's browsing, on every store. Dead-letter retry and discard: a retry
republishes once, with its delivery count back at 0; a discard deletes; both are
no-ops the second time."""

from __future__ import annotations

from typing import Any

Q = "dlq-test"


def _poison(store: Any, mid: str = "p1", body: bytes = b"poison") -> None:
    store.publish(Q, mid, body)
    [delivery] = store.claim([Q], "n1", "c1", 1, 0)
    store.heartbeat("n1", {"name": "n1"})
    assert store.dead_letter(delivery, "malformed") == "ok"


def test_entries_have_reason_body_and_when(store: Any) -> None:
    _poison(store)
    [entry] = store.dead_letter_entries()
    assert (entry.mid, entry.queue, entry.reason, entry.body) == ("p1", Q, "malformed",
                                                                   b"poison")
    assert entry.at is not None and entry.at > 1e9


def test_retry_republishes_once(store: Any) -> None:
    _poison(store)
    assert store.retry_dead_letter(Q, "p1") is True
    assert store.retry_dead_letter(Q, "p1") is False  # a double click sends nothing more
    assert store.stats().dead == 0
    got = store.claim([Q], "n1", "c1", 10, 0)
    assert [(d.mid, d.body, d.deliveries) for d in got] == [("p1", b"poison", 0)]
    assert store.claim([Q], "n1", "c1", 10, 0) == []


def test_retry_of_an_unknown_mid_or_queue_does_nothing(store: Any) -> None:
    _poison(store)
    assert store.retry_dead_letter(Q, "nope") is False
    assert store.retry_dead_letter("other", "p1") is False
    assert store.stats().dead == 1


def test_discard(store: Any) -> None:
    _poison(store)
    _poison(store, "p2", b"two")
    assert store.discard_dead_letter(Q, "p1") is True
    assert store.discard_dead_letter(Q, "p1") is False
    assert [e.mid for e in store.dead_letter_entries()] == ["p2"]
    assert store.claim([Q], "n1", "c1", 10, 0) == []


def test_scheduled_entries_in_eta_order(store: Any) -> None:
    import time

    now = time.time()
    store.publish(Q, "late", b"l", eta=now + 600)
    store.publish(Q, "soon", b"s", eta=now + 300)
    store.publish(Q, "ready", b"r")
    got = store.scheduled_entries()
    assert [(e.mid, e.queue, e.body) for e in got] == [("soon", Q, b"s"), ("late", Q, b"l")]
    assert abs(got[0].eta - (now + 300)) < 1


def test_result_pages_cover_every_result_once(store: Any) -> None:
    ids = {f"t{i:03d}" for i in range(57)}
    for task_id in ids:
        store.set(task_id, "SUCCESS", f'{{"task_id": "{task_id}"}}'.encode(), None)
    seen: dict[str, bytes] = {}
    cursor = ""
    for _ in range(100):
        cursor, page = store.result_page(cursor, 10)
        seen.update(page)
        if not cursor:
            break
    assert set(seen) == ids
    assert seen["t007"] == b'{"task_id": "t007"}'


def test_queue_details(store: Any) -> None:
    import time

    store.publish(Q, "a", b"a")
    store.publish(Q, "b", b"b")
    store.publish(Q, "c", b"c")
    store.publish(Q, "later", b"x", eta=time.time() + 600)
    store.publish("other", "o", b"o")
    store.heartbeat("n1", {"name": "n1"})
    [held] = store.claim([Q], "n1", "c1", 1, 0)
    assert held.mid == "a"
    details = store.queue_details()
    mine = details[Q]
    assert (mine.ready, mine.scheduled, mine.leased, mine.dead, mine.head) == (2, 1, 1, 0, "b")
    assert details["other"].ready == 1 and details["other"].head == "o"


def test_result_page_skips_what_the_caller_knows(store: Any) -> None:
    for task_id in ("a", "b", "c"):
        store.set(task_id, "SUCCESS", b"{}", None)
    seen: set[str] = set()
    cursor = ""
    for _ in range(100):
        cursor, page = store.result_page(cursor, 100, skip={"b"})
        seen.update(t for t, _ in page)
        if not cursor:
            break
    assert seen == {"a", "c"}


def test_node_records_match_stats(store: Any) -> None:
    store.heartbeat("n1#1", {"name": "n1", "active": 2})
    store.heartbeat("n2#1", {"name": "n2"})
    got = sorted((r.node_id, dict(r.info)) for r in store.node_records())
    assert got == sorted((r.node_id, dict(r.info)) for r in store.stats().nodes)
    assert got[0] == ("n1#1", {"name": "n1", "active": 2})
