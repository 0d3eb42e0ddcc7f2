"""`qmulti supervise ... --beat`: a scheduler beside the nodes, supervised like them (issue 13)."""

from __future__ import annotations

import os
import re
import signal

import pytest
from cluster_harness import Cluster
from test_supervise import ARGS, Supervise, _no_signal_deaths

from helpers import wait_for
from qmulti.supervisor.supervise_beat import take_flag

SCHED = '''
from tasks import app

app.conf.beat_schedule = {"every1": {"task": "tasks.tracked", "schedule": 1.0, "args": (7,)}}
'''


def test_take_flag_keeps_words_after_a_double_dash() -> None:
    assert take_flag(["w1", "--beat", "-A", "x"]) == (["w1", "-A", "x"], True)
    assert take_flag(["w1", "-A", "x"]) == (["w1", "-A", "x"], False)
    assert take_flag(["w1", "--", "--beat"]) == (["w1", "--", "--beat"], False)


def _runs(cluster: Cluster) -> int:
    path = cluster.path / "runs.log"
    return path.read_text().count("7\n") if path.exists() else 0


@pytest.mark.timeout(120)
def test_supervised_beat_sends_is_restarted_and_stops_with_the_nodes(cluster: Cluster) -> None:
    (cluster.path / "sched.py").write_text(SCHED)
    args = [arg if arg != "tasks" else "sched" for arg in ARGS]
    run = Supervise(cluster, "w1", "--beat", *args)
    try:
        run.wait_message("READY")  # every node and the scheduler said READY=1
        assert re.search(r"beat@\S+ RUNNING", run.log()), run.log()
        wait_for(lambda: _runs(cluster) >= 2, 20, f"ticks run; log:\n{run.log()}")
        pattern = re.compile(r"beat@\S+ STARTING \(pid (\d+)\)")
        first = int(pattern.findall(run.log())[0])
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: len(pattern.findall(run.log())) >= 2, 20,
                 f"beat restarted; log:\n{run.log()}")
        before = _runs(cluster)
        wait_for(lambda: _runs(cluster) >= before + 2, 20, f"ticks again; log:\n{run.log()}")
        run.proc.send_signal(signal.SIGTERM)
        assert run.wait_exit(60) == 0, run.log()
        log = run.log()
        assert re.search(r"beat@\S+ EXITED \(pid \d+\): killed by signal KILL", log), log
        assert re.search(r"beat@\S+ STOPPED \(pid \d+\): exited with code 0", log), log
        _no_signal_deaths(log)
        wait_for(lambda: not cluster.processes(), 10, "no process left")
    finally:
        run.close()


@pytest.mark.timeout(60)
def test_supervised_beat_dies_with_a_killed_supervise(cluster: Cluster) -> None:
    (cluster.path / "sched.py").write_text(SCHED)
    args = [arg if arg != "tasks" else "sched" for arg in ARGS]
    run = Supervise(cluster, "w1", "--beat", *args)
    try:
        run.wait_message("READY")
        run.proc.kill()
        run.proc.wait()
        wait_for(lambda: not cluster.processes(), 10, "the nodes and the scheduler gone")
    finally:
        run.close()
