"""The task feed's broker budget, on a real redis-server: however many results are
stored, the feed walks at most KEYS_PER_SECOND result keys a second (issue 15's cost
bullet: the dashboard adds at most 5 % to a busy broker's CPU at 100k messages)."""

from __future__ import annotations

import time

import pytest

from helpers import wait_for
from qmulti import Celery
from qmulti.brokers.redis.keys import result_key
from qmulti.protocol import encode_result
from qmulti.supervisor.dashboard.feed import KEYS_PER_SECOND, STEP, TaskFeed
from qmulti.supervisor.dashboard.tasks import TaskTable
from redis_server import RedisServer

pytestmark = pytest.mark.timeout(60)

STORED = 5000


def _calls(client: object, command: str) -> int:
    stats = client.info("commandstats")  # type: ignore[attr-defined]
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def test_the_results_feed_keeps_to_its_budget(redis_server: RedisServer) -> None:
    client = redis_server.client()
    pipe = client.pipeline(transaction=False)
    for i in range(STORED):
        doc = encode_result(f"t{i}", "SUCCESS", i, extended={"name": "proj.add"})
        pipe.set(result_key(f"t{i}"), b"SUCCESS\n" + doc)
    pipe.execute()
    table = TaskTable()
    feed = TaskFeed(Celery("feedtest", broker=redis_server.url), table, 0.5)
    scans = _calls(client, "scan")
    began = time.monotonic()
    feed.start()
    try:
        # Some results are read (the feed works) ...
        wait_for(lambda: table.totals()["SUCCESS"] >= 600, 30, "results read by the feed")
        walked = (_calls(client, "scan") - scans) * STEP
        took = time.monotonic() - began
        # ... and never more keys walked than the budget allows (one page of slack).
        assert walked <= took * KEYS_PER_SECOND + STEP, (walked, took)
        assert table.totals()["SUCCESS"] < STORED  # 5,000 results take ~10 s, not a burst
    finally:
        feed.stop()
    assert table.counts[("proj.add", "SUCCESS")] == table.totals()["SUCCESS"]
