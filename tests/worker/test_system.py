"""qmulti.system: the wake-up pipe with real signals sent to this process, the node environment."""

from __future__ import annotations

import os
import select
import signal

from qmulti.system.backoff import Backoff
from qmulti.system.environ import node_environ
from qmulti.system.wakeup import Wakeup


def test_signals_arrive_in_order_and_close_restores() -> None:
    before = signal.getsignal(signal.SIGUSR1)
    wakeup = Wakeup()
    wakeup.install([signal.SIGUSR1, signal.SIGUSR2])
    try:
        assert wakeup.drain() == []
        os.kill(os.getpid(), signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGUSR2)
        ready, _, _ = select.select([wakeup.fileno()], [], [], 10)
        assert ready == [wakeup.fileno()]
        assert wakeup.drain() == [signal.SIGUSR1, signal.SIGUSR2]
        assert wakeup.drain() == []
    finally:
        wakeup.close()
    assert signal.getsignal(signal.SIGUSR1) is before
    assert signal.set_wakeup_fd(-1) == -1  # the previous wake-up fd (none) is back


def test_close_can_keep_the_quiet_handlers() -> None:
    before = signal.getsignal(signal.SIGUSR1)
    wakeup = Wakeup()
    wakeup.install([signal.SIGUSR1])
    wakeup.close(restore_handlers=False)
    try:
        os.kill(os.getpid(), signal.SIGUSR1)  # ignored, not fatal
        assert signal.getsignal(signal.SIGUSR1) is not before
    finally:
        signal.signal(signal.SIGUSR1, before)


def test_the_node_environment() -> None:
    base = {"PATH": "/bin", "WATCHDOG_USEC": "1", "WATCHDOG_PID": "2", "LISTEN_FDS": "1",
            "LISTEN_PID": "2", "NOTIFY_SOCKET": "/run/systemd/notify",
            "QMULTI_BROKER_URL": "redis://old"}
    env = node_environ([("QMULTI_BROKER_URL", "redis://:pw@h/0")], "/tmp/x/notify.sock", base)
    assert env == {"PATH": "/bin", "QMULTI_BROKER_URL": "redis://:pw@h/0",
                   "NOTIFY_SOCKET": "/tmp/x/notify.sock"}
    assert base["WATCHDOG_USEC"] == "1"  # a copy: ours is untouched
    assert node_environ((), "s")["PATH"] == os.environ["PATH"]


def test_backoff_doubles_to_its_cap_and_resets() -> None:
    backoff = Backoff(first=0.1, cap=0.5)
    assert [backoff.next_delay(0.0) for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    backoff.reset()
    assert backoff.next_delay(0.0) == 0.1
    restarts = Backoff()  # supervise's: a long good run starts again from the first delay
    assert [restarts.next_delay(1.0) for _ in range(3)] == [1.0, 2.0, 4.0]
    assert restarts.next_delay(60.0) == 1.0
