"""A TERM from the very first instant, when the launcher blocks the stop signals (issue 11).

A plain `qmulti supervise` cannot catch a TERM that lands while the Python interpreter
itself starts (about 50 ms before our first line runs): nothing of ours exists yet, and
the default disposition kills it (exit 143). A signal mask survives exec, so a launcher
that blocks TERM, INT, HUP and QUIT (systemd/qmulti.service runs `env
--block-signal=...`) turns such a TERM into a pending signal; our entry point installs
its handlers, then unblocks, and the TERM is a warm stop like any other. These tests
launch both ways such a launcher can: `env --block-signal` exactly as the units do
(timed from the instant the mask is in place), and a parent that blocks the signals
around its fork (as supervise does for its nodes; timed from the spawn's return).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from cluster_harness import Cluster
from test_supervise import ARGS, Supervise, _catches_term, _no_signal_deaths

from helpers import wait_for
from qmulti.system import startsignals

BLOCK = ("env", "--block-signal=TERM,INT,HUP,QUIT")
DELAYS = [0.0, 0.01, 0.05, 0.1]

pytestmark = pytest.mark.skipif(
    subprocess.run(["env", "--block-signal=TERM", "true"], capture_output=True).returncode != 0,
    reason="env has no --block-signal (coreutils < 8.31)")


def _term_blocked(pid: int) -> bool:
    return _catches_term(pid, "SigBlk")


def _when_blocked(pid: int, proc: subprocess.Popen[bytes]) -> None:
    """Spin (no sleep: the instant matters) until `env` has blocked the signals."""
    deadline = time.monotonic() + 10
    while not _term_blocked(pid):
        assert proc.poll() is None, f"exited {proc.returncode} before blocking"
        assert time.monotonic() < deadline, "env never blocked TERM"


def _launch_supervise(cluster: Cluster, how: str) -> Supervise:
    if how == "env":
        run = Supervise(cluster, "w1", "w2", *ARGS, launcher=BLOCK)
        _when_blocked(run.proc.pid, run.proc)
        return run
    old = startsignals.block()  # our fork inherits the mask, as a node does from supervise
    try:
        return Supervise(cluster, "w1", "w2", *ARGS)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@pytest.fixture
def runs() -> Iterator[list[Supervise]]:
    started: list[Supervise] = []
    try:
        yield started
    finally:
        for run in started:
            run.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["env", "inherited"])
@pytest.mark.parametrize("delay", DELAYS)
def test_term_from_the_first_instant_of_a_blocked_launch_is_a_clean_stop(
        cluster: Cluster, runs: list[Supervise], how: str, delay: float) -> None:
    run = _launch_supervise(cluster, how)
    runs.append(run)
    time.sleep(delay)  # the instant under test, not synchronisation
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait_exit(60) == 0, run.log()
    log = run.log()
    _no_signal_deaths(log)
    assert "stopped" in log, log
    wait_for(lambda: not cluster.processes(), 10, "no process left")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("delay", DELAYS)
def test_beat_launched_blocked_stops_cleanly_at_any_instant(
        cluster: Cluster, delay: float) -> None:
    """`qmulti beat` under qmulti-beat.service's `env --block-signal`: exit 0, and never
    left with TERM blocked for good (it would then ignore `systemctl stop`)."""
    proc = subprocess.Popen([*BLOCK, sys.executable, "-m", "qmulti.supervisor", "beat",
                             "-A", "tasks"], cwd=cluster.path, env=cluster.env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        _when_blocked(proc.pid, proc)
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.timeout(30)
def test_other_commands_do_not_keep_an_inherited_block() -> None:
    """A blocked TERM inherited by `qmulti status` must still end it: only supervise and
    beat give the stop signals a meaning; every other command gets them unblocked."""
    code = ("import signal, sys\n"
            "from qmulti.supervisor import entry\n"
            "entry.main(['names', '2'])\n"
            "mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])\n"
            "sys.stdout.write(str(signal.SIGTERM in mask))\n")
    out = subprocess.run([*BLOCK, sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=20)
    assert out.stdout.strip().endswith("False"), out
