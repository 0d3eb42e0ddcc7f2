"""Nothing is lost when a pool child or a whole node dies, or when a node stops warmly."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from node_fixtures import NodeProcess, group_alive, producer, results, write_tasks

from helpers import wait_for


@pytest.mark.timeout(60)
def test_killed_pool_child_task_completes_on_a_replacement(tmp_path: Path) -> None:
    write_tasks(tmp_path)
    app = producer(tmp_path)
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "1", "-l", "info") as node:
        node.wait_ready()
        result = app.send_task("tasks.slow", (1.0,), check=False)
        busy = wait_for(node.busy_children, 20, "a busy pool child")
        victim = busy[0].pid
        assert f"tasks.slow[{result.id}]" in " ".join(busy[0].cmdline())
        os.kill(victim, signal.SIGKILL)
        ran_in = result.get(timeout=30)
        assert ran_in != victim
        assert [c.pid for c in node.children()] == [ran_in]
        assert node.stop() == 0
    err = node.stderr()
    assert "killed by SIGKILL while running tasks.slow" in err
    assert "Gave back 1 task(s)" in err


@pytest.mark.timeout(60)
def test_killed_node_tasks_complete_on_another_node_after_heartbeat_expiry(
        tmp_path: Path) -> None:
    write_tasks(tmp_path)
    app = producer(tmp_path)
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "2", "-n", "a@%h", name="") as first:
        first.wait_ready()
        ids = [app.send_task("tasks.slow", (1.0, i), check=False).id for i in range(6)]
        wait_for(lambda: len(first.busy_children()) == 2, 20, "both children busy")
        children = first.children()
        os.killpg(first.pgid, signal.SIGKILL)
        first.wait(10)
        wait_for(lambda: not any(c.is_running() and c.status() != "zombie" for c in children),
                 5, "the first node's children to die")
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "2", "-n", "b@%h", name="") as second:
        second.wait_ready()
        assert results(app, ids, timeout=30) == list(range(6))
        assert second.stop() == 0
    assert "Requeued" in second.stderr()


@pytest.mark.timeout(60)
def test_warm_stop_finishes_running_and_gives_back_prefetched_at_once(tmp_path: Path) -> None:
    write_tasks(tmp_path)
    app = producer(tmp_path)
    # Queued before the node starts, so that its one child claims all four in one batch.
    running = app.send_task("tasks.slow", (2.0, "slow"), check=False)
    quick = [app.send_task("tasks.add", (i, i), check=False) for i in range(3)]
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "1", "--prefetch-multiplier", "4", "-l", "info",
                     "-n", "a@%h", name="") as first:
        first.wait_ready()
        wait_for(first.busy_children, 20, "the child to begin the slow task")
        wait_for(lambda: app.broker.stats().leased == 4, 10, "all four leased to the node")
        first.send(signal.SIGTERM)
        # Back in the queue at once, while the slow task still runs.
        wait_for(lambda: app.broker.stats().leased == 1, 1.5, "prefetched messages given back")
        assert first.proc.poll() is None
        assert running.state == "STARTED"
        with NodeProcess(tmp_path, "-A", "tasks", "-c", "1", "-n", "b@%h",
                         name="") as second:
            second.wait_ready()
            assert [r.get(timeout=10) for r in quick] == [0, 2, 4]
            assert running.get(timeout=10) == "slow"
            assert first.wait(10) == 0
            assert second.stop() == 0
    assert "gave back 3 prefetched" in first.stderr()


@pytest.mark.timeout(60)
def test_term_to_the_whole_process_group_is_a_warm_stop(tmp_path: Path) -> None:
    write_tasks(tmp_path)
    app = producer(tmp_path)
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "2") as node:
        node.wait_ready()
        result = app.send_task("tasks.slow", (1.5, "done"), check=False)
        wait_for(node.busy_children, 20, "a busy child")
        os.killpg(node.pgid, signal.SIGTERM)
        assert node.wait(20) == 0
        node.wait_message("STOPPING=1", 5)
        assert result.get(timeout=5) == "done"
        wait_for(lambda: not group_alive(node.pgid), 5, "the process group to be gone")
    stats = app.broker.stats()
    assert stats.leased == 0 and not stats.nodes


@pytest.mark.timeout(60)
def test_killed_main_process_takes_its_children_along(tmp_path: Path) -> None:
    write_tasks(tmp_path)
    with NodeProcess(tmp_path, "-A", "tasks", "-c", "2") as node:
        node.wait_ready()
        children = node.children()
        assert len(children) == 2
        os.kill(node.pid, signal.SIGKILL)
        node.wait(10)

        def gone() -> bool:
            return not any(c.is_running() and c.status() != "zombie" for c in children)

        wait_for(gone, 2, "children to die with the node")
