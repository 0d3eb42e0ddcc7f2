"""Tasks longer than RabbitMQ's consumer_timeout (see worker/brokers/amqp/handover.py).

A private rabbitmq-server with `consumer_timeout = 2000` (ms) and a channel tick of
250 ms (RabbitMQ checks the timeout on each tick, every minute by default), so that a
channel holding a delivery for over 2 s is closed within a quarter second: a 10 s task
stands for an hour-long one under the default 30 min. The nodes are told the server's
timeout (`broker_transport_options={'consumer_timeout': 2}`) and hand the lease over to
the Redis result backend at half of it. Without the hand-over each of these tests fails:
the task runs twice, or its prefetched company waits behind it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from node_fixtures import group_alive
from rabbit_private import PrivateRabbit, unavailable
from test_amqp_acceptance import AmqpProject, _r

from helpers import wait_for

pytestmark = pytest.mark.timeout(150)

HANDED = "its lease is now held in the result backend"
EXTRA = '''
app.conf.broker_transport_options = {'consumer_timeout': 2}


@app.task(bind=True)
def long_once(self, seconds):
    """Runs `seconds` the first time, returns at once when run again."""
    _record(self.request.id)
    with open(os.path.join(RUNS, self.request.id)) as runs:
        if len(runs.readlines()) == 1:
            time.sleep(seconds)
            return 'first'
    return 'again'
'''


@pytest.fixture(scope="module")
def rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRabbit]:
    why = unavailable()
    if why:
        pytest.skip(why)
    server = PrivateRabbit(tmp_path_factory.mktemp("rabbit"),
                           config="consumer_timeout = 2000\n",
                           advanced="{rabbit, [{channel_tick_interval, 250}]}")
    with server:
        yield server


@pytest.fixture
def project(tmp_path: Path, rabbit: PrivateRabbit, redis_server: Any) -> Iterator[AmqpProject]:
    p = AmqpProject(tmp_path, rabbit.url, redis_server.url, extra=EXTRA)
    try:
        yield p
    finally:
        p.app.broker.purge("celery")
        p.close()


def test_a_task_longer_than_the_consumer_timeout_runs_once(project: AmqpProject) -> None:
    """The 10 s task runs once, and the 3 prefetched behind it run on b meanwhile."""
    long_id = project.send("work", 10.0, "long")
    quick = [project.send("work", 0.0, i) for i in range(3)]
    a = project.node("a@%h", "-c", "1", "--prefetch-multiplier", "4")
    wait_for(lambda: project.runs_of(long_id), 30, "the long task to start on a")
    b = project.node("b@%h", "-c", "1")
    b_children = {c.pid for c in b.children()}
    assert _r.results(project, quick, 30) == [0, 1, 2]
    long_started = project.runs_of(long_id)[0][1]
    assert max(project.runs_of(t)[0][1] for t in quick) < long_started + 10.0
    assert {project.runs_of(t)[0][0] for t in quick} <= b_children
    assert _r.results(project, [long_id], 40) == ["long"]
    assert len(project.runs_of(long_id)) == 1, project.runs_of(long_id)
    assert all(len(project.runs_of(t)) == 1 for t in quick)
    assert HANDED in a.stderr()
    for node in project.nodes:
        assert "Traceback" not in node.stderr()


def test_a_killed_child_gives_its_handed_over_task_back(project: AmqpProject) -> None:
    a = project.node("a@%h", "-c", "1")
    tid = project.send("long_once", 60.0)
    wait_for(lambda: HANDED in a.stderr() and project.runs_of(tid), 30, "the hand-over")
    (child_pid, _), = project.runs_of(tid)
    os.kill(child_pid, signal.SIGKILL)
    assert _r.results(project, [tid], 40) == ["again"]
    runs = project.runs_of(tid)
    assert len(runs) == 2 and runs[1][0] != child_pid, runs


def test_a_killed_node_gives_its_handed_over_task_back(project: AmqpProject) -> None:
    """a's record in the result backend expires (2 s here); b's reaper moves the lease
    back to RabbitMQ and runs it."""
    a = project.node("a@%h", "-c", "1")
    tid = project.send("long_once", 60.0)
    wait_for(lambda: HANDED in a.stderr() and project.runs_of(tid), 30, "the hand-over")
    b = project.node("b@%h", "-c", "1")
    os.killpg(a.pgid, signal.SIGKILL)
    a.wait(10)
    wait_for(lambda: not group_alive(a.pgid), 10, "node a's group gone")
    assert _r.results(project, [tid], 40) == ["again"]
    runs = project.runs_of(tid)
    assert len(runs) == 2 and runs[1][0] in {c.pid for c in b.children()}, runs
    # b's main process logs it once the relay is done, which may be after b ran the task.
    wait_for(lambda: "long-running task(s) back to RabbitMQ" in b.stderr(), 10, "b's relay")


def test_without_a_store_the_node_says_what_to_set(tmp_path: Path,
                                                  rabbit: PrivateRabbit) -> None:
    project = AmqpProject(tmp_path, rabbit.url, "rpc://", extra=EXTRA)
    try:
        a = project.node("a@%h", "-c", "1")
        project.send("work", 4.0, "long")
        wait_for(lambda: "Set result_backend to redis://" in a.stderr(), 30, "the warning")
        assert a.stderr().count("Set result_backend to redis://") == 1
    finally:
        project.app.broker.purge("celery")
        project.close()
