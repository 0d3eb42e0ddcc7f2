"""The event stream of each store, and the reader on top of it (no node involved)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qmulti import Celery
from qmulti.brokers import create_broker
from qmulti.brokers.events_base import OLDEST
from qmulti.events import EventReader, State
from qmulti.events.dispatch import Dispatcher
from qmulti.events.event import decode, encode, make

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["redis", "sqlite", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        broker = create_broker(server.url)
    elif request.param == "sqlite":
        broker = create_broker(f"sqlite:///{tmp_path}/q.db")
    else:
        broker = create_broker("memory://")
    yield broker
    broker.close()


def _events(n: int, start: int = 0) -> list[bytes]:
    return [encode(make("task-received", "w1@h", i, uuid=f"t{i}")) for i in range(start,
                                                                                    start + n)]


def test_put_read_in_order_and_positions_resume(store: Any) -> None:
    assert store.events_tail() == OLDEST
    assert store.events_read(OLDEST, 10, 0) == []
    store.events_put(_events(5))
    got = store.events_read(OLDEST, 3, 0)
    assert [decode(b)["uuid"] for _, b in got] == ["t0", "t1", "t2"]
    rest = store.events_read(got[-1][0], 10, 0)
    assert [decode(b)["uuid"] for _, b in rest] == ["t3", "t4"]
    assert store.events_tail() == rest[-1][0]
    assert store.events_read(store.events_tail(), 10, 0) == []


def test_stream_is_capped(store: Any) -> None:
    for i in range(10):
        store.events_put(_events(100, i * 100), maxlen=200)
    kept = store.events_read(OLDEST, 5000, 0)
    # Redis trims whole nodes (MAXLEN ~): a little over the cap, never unbounded.
    assert 200 <= len(kept) <= 400
    assert decode(kept[-1][1])["uuid"] == "t999"


def test_blocking_read_wakes_on_put(store: Any) -> None:
    tail = store.events_tail()
    threading.Timer(0.3, lambda: store.events_put(_events(1))).start()
    began = time.monotonic()
    got = store.events_read(tail, 10, 5.0)
    assert len(got) == 1 and time.monotonic() - began < 3.0
    began = time.monotonic()
    assert store.events_read(got[0][0], 10, 0.3) == []
    assert 0.25 <= time.monotonic() - began < 3.0


def test_reader_now_skips_the_past_and_oldest_replays_it(store: Any) -> None:
    store.events_put(_events(3))
    now = EventReader(store, "now")
    old = EventReader(store, "oldest")
    store.events_put(_events(2, 3))
    assert [e["uuid"] for e in now.read(1.0)] == ["t3", "t4"]
    assert [e["uuid"] for e in old.iter(timeout=0.3)] == ["t0", "t1", "t2", "t3", "t4"]
    resumed = EventReader(store, old.position)
    assert resumed.read(0) == []


def test_dispatcher_batches_and_keeps_order(store: Any) -> None:
    calls: list[int] = []

    class Counting:
        def events_put(self, events: list[bytes], maxlen: int) -> None:
            calls.append(len(events))
            store.events_put(events, maxlen)

    d = Dispatcher(Counting, "w1@h")
    for i in range(300):
        d.send("task-started", uuid=f"u{i}")
    reader = EventReader(store, "oldest")
    seen = [e["uuid"] for e in reader.iter(timeout=1.0, limit=300)]
    d.close()
    assert seen == [f"u{i}" for i in range(300)]
    assert len(calls) <= 5, calls  # batched, not a round trip per event
    first = EventReader(store, "oldest").read(0, 1)[0]
    for name in ("type", "timestamp", "hostname", "utcoffset", "pid", "clock"):
        assert name in first


def test_dispatcher_keeps_events_while_the_broker_is_away(store: Any) -> None:
    state = {"up": False}

    class Flaky:
        def events_put(self, events: list[bytes], maxlen: int) -> None:
            if not state["up"]:
                raise ConnectionError("down")
            store.events_put(events, maxlen)

    d = Dispatcher(Flaky, "w1@h", interval=0.02)
    for i in range(10):
        d.send("task-started", uuid=f"u{i}")
    assert d.flush() is False
    state["up"] = True
    d.close()
    assert [e["uuid"] for e in EventReader(store, "oldest").read(0)] == [
        f"u{i}" for i in range(10)]


def test_receiver_and_state() -> None:
    app = Celery("t", broker="memory://")
    broker = app.broker
    failed: list[dict[str, Any]] = []
    state = app.events.State()
    recv = app.events.Receiver(None, handlers={"task-failed": failed.append, "*": state.event})
    rows = [make("worker-online", "w1@h", 1, freq=2.0),
            make("task-received", "w1@h", 2, uuid="a", name="tasks.add", args="(1, 2)"),
            make("task-started", "w1@h", 3, uuid="a"),
            make("task-succeeded", "w1@h", 4, uuid="a", result="3", runtime=0.01),
            make("task-received", "w1@h", 5, uuid="b", name="tasks.boom"),
            make("task-failed", "w1@h", 6, uuid="b", exception="ValueError('x')")]
    broker.events_put([encode(r) for r in rows])
    recv.reader.position = OLDEST
    recv.capture(limit=6, timeout=2.0)
    assert [e["uuid"] for e in failed] == ["b"]
    assert state.tasks["a"].state == "SUCCESS" and state.tasks["a"].name == "tasks.add"
    assert state.tasks["a"].result == "3" and state.tasks["a"].started is not None
    assert state.workers["w1@h"].alive
    assert state.event_count == 5  # task-failed went to its own handler only
    State().event({"type": "task-started"})  # no uuid: ignored
