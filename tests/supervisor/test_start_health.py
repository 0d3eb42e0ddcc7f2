"""`qmulti start` reports a node healthy only once its pool children are up (issue 11,
item 6): a child that dies at start makes the node FAILED, with the child's reason."""

from __future__ import annotations

import pytest
from cluster_harness import Cluster

BAD_CHILD = '''
from tasks import app


def _boom():
    raise RuntimeError("no GPU in the pool child")


app.reset_after_fork = _boom  # runs in each pool child, as a worker_process_init hook
'''


@pytest.mark.timeout(120)
def test_child_that_dies_at_start_fails_the_start_with_its_reason(cluster: Cluster) -> None:
    (cluster.path / "badchild.py").write_text(BAD_CHILD)
    result = cluster.qmulti("start", "w1", "-A", "badchild", "-c", "2", "--timeout", "30")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "Traceback" not in out
    first = out.splitlines()[0]
    assert first.startswith("w1@") and "FAILED" in first, out
    assert "pool child" in first and "no GPU in the pool child" in first, out
    assert ": OK" not in out
    status = cluster.qmulti("status", "w1", "-A", "badchild")
    assert status.returncode == 1, status.stdout + status.stderr


@pytest.mark.timeout(120)
def test_healthy_node_is_still_ok(cluster: Cluster) -> None:
    result = cluster.qmulti("start", "w1", "-A", "tasks", "-c", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0].endswith(": OK") or ": OK" in result.stdout
    assert cluster.qmulti("stopwait", "w1", "-A", "tasks").returncode == 0
