"""The Redis store across real processes: exactly-once claims, push-based waits, eta.

Children are forked with the parent's store object already connected, so these tests
also check that a forked child makes its own connections instead of sharing sockets.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from qmulti.brokers.redis import RedisStore
from redis_server import RedisServer

pytestmark = pytest.mark.timeout(90)
Q = "celery"
CTX = multiprocessing.get_context("fork")


@contextmanager
def children(target: Callable[..., None], argsets: list[tuple[Any, ...]]) -> Iterator[list[Any]]:
    """Start one forked process per argument tuple; kill any left at the end."""
    procs = [CTX.Process(target=target, args=args, daemon=True) for args in argsets]
    for proc in procs:
        proc.start()
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
            proc.join(5)


def _report(out: Any, value: Any) -> None:
    """Hand `value` to the parent and leave without pytest's inherited atexit handlers
    (after flushing the queue's feeder thread, which os._exit would cut short)."""
    out.put(value)
    out.close()
    out.join_thread()
    os._exit(0)


def _consume(store: RedisStore, consumer: str, out: Any) -> None:
    """Claim, start and finish until the queue stays empty; report the mids seen."""
    seen: list[str] = []
    while batch := store.claim([Q], "node#1", consumer, 4, 1.0):
        for d in batch:
            store.start(d, d.mid, b"{}", store, 60)
            store.finish(d, d.mid, "SUCCESS", b"{}", store, 60)
            seen.append(d.mid)
    _report(out, (consumer, seen))


@pytest.mark.timeout(120)
def test_four_processes_claim_each_message_exactly_once(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url)
    mids = [f"m{i}" for i in range(2000)]
    for mid in mids:
        store.publish(Q, mid, mid.encode())
    out = CTX.Queue()
    with children(_consume, [(store, f"c{i}.1", out) for i in range(4)]) as procs:
        results = [out.get(timeout=90) for _ in procs]
        for proc in procs:
            proc.join(30)
            assert proc.exitcode == 0
    seen = [mid for _, got in results for mid in got]
    assert len(seen) == len(mids) and set(seen) == set(mids)
    stats = store.stats()
    assert (stats.queues[Q], stats.leased) == (0, 0)
    assert store.get("m1999") == b"{}"
    store.close()


def _set_later(url: str, delay: float, stamps: Any) -> None:
    store = RedisStore(url)
    store.get("warm-up")  # connect first: the test measures the push, not a connect
    time.sleep(delay)  # the waiter is blocked by now; this is what the test measures
    now = time.time()
    store.set("t1", "SUCCESS", b"done", 60)
    _report(stamps, now)


def test_wait_returns_within_milliseconds_of_set_in_another_process(
        redis_server: RedisServer) -> None:
    waiters = [RedisStore(redis_server.url) for _ in range(3)]
    got: list[tuple[bytes | None, float]] = []

    def wait(store: RedisStore) -> None:
        doc = store.wait("t1", 30)
        got.append((doc, time.time()))

    threads = [threading.Thread(target=wait, args=(w,)) for w in waiters]
    for thread in threads:
        thread.start()
    stamps = CTX.Queue()
    with children(_set_later, [(redis_server.url, 0.5, stamps)]):
        set_at = stamps.get(timeout=30)
        for thread in threads:
            thread.join(30)
    assert [doc for doc, _ in got] == [b"done"] * 3  # every waiter woke, none polled
    lag = max(at for _, at in got) - set_at
    assert lag < 0.25, f"wait() returned {lag * 1000:.0f} ms after set()"
    for w in waiters:
        w.close()


def _claim_once(url: str, consumer: str, out: Any) -> None:
    store = RedisStore(url)
    deadline = time.monotonic() + 2.5
    got = []
    while time.monotonic() < deadline:
        for d in store.claim([Q], "node#1", consumer, 1, deadline - time.monotonic()):
            got.append((d.mid, time.time()))
            store.ack([d])
    _report(out, got)


def test_an_eta_half_a_second_ahead_runs_once_at_its_time(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url)
    out = CTX.Queue()
    with children(_claim_once, [(redis_server.url, f"c{i}", out) for i in range(2)]) as procs:
        time.sleep(0.3)  # let both consumers block in claim first (the case under test)
        eta = time.time() + 0.5
        store.publish(Q, "later", b"x", eta=eta)
        claims = [c for _ in procs for c in out.get(timeout=30)]
    assert [mid for mid, _ in claims] == ["later"]
    late = claims[0][1] - eta
    assert -0.05 < late < 0.5, f"ran {late:+.3f} s from its eta"
    store.close()
