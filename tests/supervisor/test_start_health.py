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


CRASHING_CHILD = '''
import os
import signal

from qmulti.signals import worker_process_init
from tasks import app


@worker_process_init.connect
def _crash(**kwargs):
    os.kill(os.getpid(), signal.SIGSEGV)  # a native extension crashing at import
'''


@pytest.mark.timeout(120)
def test_child_killed_by_a_signal_at_start_points_at_its_stack(cluster: Cluster) -> None:
    """A child that dies without a word: the FAILED line names the signal and the child's
    own log, which holds the Python stack the crash left."""
    (cluster.path / "crashchild.py").write_text(CRASHING_CHILD)
    result = cluster.qmulti("start", "w1", "-A", "crashchild", "-c", "1", "--timeout", "30")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    first = out.splitlines()[0]
    assert "FAILED" in first and "killed by SIGSEGV" in first, out
    hint = first.split("(its log: ", 1)[1].split(")", 1)[0]
    text = (cluster.path / hint).read_text()
    assert "Segmentation fault" in text and "_crash" in text, text
