"""Signals that arrive while a process is still starting: held, then handled in order.

A node or `qmulti supervise` spends tens to hundreds of milliseconds importing before
its main loop installs the wake-up pipe. A TERM in that window used to kill it by the
signal (a node restarted by supervise died so, and supervise printed `stopped; not
cleanly`). So the entry point calls `hold()` before any heavy import: it installs
handlers that only remember the signal, then unblocks the signals, which the parent
(supervise, or a HUP re-exec) kept blocked across fork/exec so that none is lost or
fatal before these handlers exist. The main loop calls `take()` once its own handlers
are in place and replays what was held, so a TERM at any instant is a warm stop.

Parent death: a node supervise starts is told supervise's pid (ENV_PARENT). It asks
Linux for a TERM when that parent dies (PR_SET_PDEATHSIG), then checks that the
parent is still its parent: had supervise died before the prctl, no signal would ever
come, so the TERM is recorded here instead. Either way the node stops warmly.
"""

from __future__ import annotations

import ctypes
import os
import signal
from typing import Any

# The signals both main loops give meaning to at start: warm/cold stop and restart.
HELD = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP)
ENV_PARENT = "QMULTI_PARENT_PID"  # set by supervise for its nodes: die with it
_PR_SET_PDEATHSIG = 1

# What arrived before the main loop took over; module state because a signal handler
# has nowhere else to write, and there is one such window per process.
_received: list[int] = []
_holding: list[bool] = [False]


def _remember(signum: int, frame: Any) -> None:
    _received.append(signum)


def hold(die_with_parent: bool = False) -> None:
    """Install the remembering handlers, then unblock HELD (idempotent)."""
    if not _holding[0]:
        for sig in HELD:
            signal.signal(sig, _remember)
        _holding[0] = True
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD)
    if die_with_parent:
        _arm_parent_death()


def _arm_parent_death() -> None:
    parent = os.environ.pop(ENV_PARENT, "")
    if not parent.isdigit():
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return  # not Linux: supervise's own stop still reaches the node
    if os.getppid() != int(parent):  # it died before the prctl: no TERM would come
        _received.append(int(signal.SIGTERM))


def take() -> list[int]:
    """The held signals, oldest first; from now on the caller's handlers are in charge."""
    _holding[0] = False
    held, _received[:] = list(_received), []
    return held


def block() -> Any:
    """Block HELD (before fork/exec of a process that calls `hold`); returns the old mask."""
    return signal.pthread_sigmask(signal.SIG_BLOCK, HELD)
