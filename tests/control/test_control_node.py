"""One real node on Redis under remote control: reserved/query_task/revoked, the queues
it consumes (add_consumer, cancel_consumer) and a hard time limit set while it runs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from ctl_support import Node, producer, wait_answering, write_project

from helpers import wait_for
from redis_server import RedisServer


@pytest.mark.timeout(120)
def test_reserved_queues_and_time_limit(tmp_path: Path, redis_server: RedisServer) -> None:
    write_project(tmp_path, redis_server.url)
    app = producer(tmp_path, redis_server.url)
    node = Node(tmp_path, "n1@here", "-c", "1", "--prefetch-multiplier", "2", "-Q", "default")
    try:
        wait_answering(app, ["n1@here"])
        inspect = app.control.inspect(destination="n1@here", timeout=2.0)
        # Both wait in `extra` before the node consumes it: one claim takes both.
        first, second = (app.send_task("tasks.slow", (2, i), queue="extra") for i in range(2))
        assert app.control.add_consumer("extra", reply=True) == [
            {"n1@here": {"ok": "add consumer extra"}}]
        wait_for(lambda: (inspect.reserved() or {}).get("n1@here"), 30, "a reserved task")
        [held] = inspect.reserved()["n1@here"]
        assert (held["id"], held["args"]) == (second.id, [2, 1])
        found = inspect.query_task(first.id, second.id)["n1@here"]
        assert found[first.id][0] == "active" and found[second.id][0] == "reserved"
        assert inspect.scheduled() == {"n1@here": []}
        assert inspect.registered() == {"n1@here": ["tasks.add", "tasks.slow"]}
        app.control.revoke(second.id)  # not running yet: skipped when its turn comes
        assert inspect.revoked() == {"n1@here": [second.id]}
        assert first.get(timeout=30) == 0
        assert app.AsyncResult(second.id).state == "REVOKED"

        # The queue added while running is consumed; cancelled, it is left alone.
        assert [q["name"] for q in inspect.active_queues()["n1@here"]] == ["default", "extra"]
        assert app.send_task("tasks.add", (2, 2), queue="extra").get(timeout=30) == 4
        assert app.control.cancel_consumer("extra", reply=True) == [
            {"n1@here": {"ok": "no longer consuming from extra"}}]
        assert app.control.cancel_consumer("default", reply=True)[0]["n1@here"]["error"]
        time.sleep(1.2)  # a consumer blocked in claim (up to 1 s) picks the change up
        left = app.send_task("tasks.add", (3, 3), queue="extra")
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:  # it must stay in its queue all along
            assert app.AsyncResult(left.id).state == "PENDING"
            time.sleep(0.1)
        assert app.broker.stats().queues["extra"] == 1

        # A hard time limit set now ends the next run of the task after about a second.
        assert app.control.time_limit("tasks.slow", hard=1, reply=True) == [
            {"n1@here": {"ok": "time limits set successfully"}}]
        start = time.monotonic()
        killed = app.send_task("tasks.slow", (10,))
        with pytest.raises(Exception, match="[Tt]ime limit"):
            killed.get(timeout=30)
        assert time.monotonic() - start < 8.0
        unknown = app.control.rate_limit("tasks.nope", "1/s", reply=True)
        assert unknown == [{"n1@here": {"error": "unknown task tasks.nope"}}]
    finally:
        node.close()
