"""The broker's periodic-task primitive on memory, sqlite and redis: a tick (entry, due)
is claimed and published in one step, once, whoever else tries."""

from __future__ import annotations

import threading
from typing import Any

from qmulti.protocol import new_id


def test_a_tick_is_sent_once_and_state_only_moves_forward(store_factory: Any) -> None:
    store = store_factory()
    assert store.beat_state() == {}
    assert store.claim_tick("every-5s", 100.0, "celery", "m1", b"tick-100")
    assert not store.claim_tick("every-5s", 100.0, "celery", "m1", b"tick-100")  # retried
    assert not store.claim_tick("every-5s", 100.0, "celery", "m2", b"again")  # a rival
    assert not store.claim_tick("every-5s", 95.0, "celery", "m3", b"older")
    assert store.claim_tick("every-5s", 105.0, "celery", "m4", b"tick-105")
    assert store.claim_tick("other", 100.0, "celery", "m5", b"other-100")
    assert store.beat_state() == {"every-5s": 105.0, "other": 100.0}
    got = store.claim(["celery"], "n1", "c1", 10, 1.0)
    assert [d.body for d in got] == [b"tick-100", b"tick-105", b"other-100"]
    store.beat_forget(["other"])
    assert store.beat_state() == {"every-5s": 105.0}


def test_rival_schedulers_send_each_tick_once(store_factory: Any) -> None:
    """Four schedulers (each its own connection) race for the same 50 ticks."""
    stores = [store_factory() for _ in range(4)]
    won: list[float] = []
    lock = threading.Lock()

    def schedule(store: Any) -> None:
        for k in range(50):
            due = 1000.0 + k
            if store.claim_tick("e", due, "beat", new_id(), str(due).encode()):
                with lock:
                    won.append(due)

    threads = [threading.Thread(target=schedule, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(won) == [1000.0 + k for k in range(50)]
    bodies = [d.body for d in stores[0].claim(["beat"], "n1", "c1", 100, 1.0)]
    assert sorted(bodies) == sorted(str(1000.0 + k).encode() for k in range(50))


def test_the_broker_clock_is_close_to_ours(store_factory: Any) -> None:
    import time

    assert abs(store_factory().clock() - time.time()) < 5
