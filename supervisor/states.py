"""The life of one supervised node, as supervisord's process states.

`change_state` is the only writer of a node's state: every transition goes
through it and is checked against `ALLOWED`, so an impossible move (a FATAL
node silently coming back, a STOPPED node "exiting") is a bug caught where it
happens instead of a confusing log line later.
"""

from __future__ import annotations

import enum
from typing import Protocol


class NodeState(enum.Enum):
    STOPPED = "STOPPED"  # not running and not meant to run (before start, after a stop)
    STARTING = "STARTING"  # spawned, has not said READY=1 yet
    RUNNING = "RUNNING"  # said READY=1: it consumes
    BACKOFF = "BACKOFF"  # died while STARTING; waits for its backoff delay
    STOPPING = "STOPPING"  # we sent TERM (then maybe QUIT, KILL); waiting for it to exit
    EXITED = "EXITED"  # died while RUNNING; waits for its backoff delay
    FATAL = "FATAL"  # exited 78/64: a restart would fail the same way; not restarted


S = NodeState
ALLOWED: dict[NodeState, frozenset[NodeState]] = {
    # STOPPED -> STARTING: first start, or a stopped node started again by a rolling restart
    S.STOPPED: frozenset({S.STARTING}),
    # STARTING -> RUNNING: READY=1 from its main pid
    # STARTING -> BACKOFF: died before READY=1 (restart after the backoff delay)
    # STARTING -> FATAL: exited 78 or 64 before READY=1
    # STARTING -> STOPPING: a stop (TERM to supervise, or a rolling restart) arrived first
    S.STARTING: frozenset({S.RUNNING, S.BACKOFF, S.FATAL, S.STOPPING}),
    # RUNNING -> EXITED: died (crash, KILL, OOM) without being asked
    # RUNNING -> FATAL: exited 78 or 64 while running (config broke under it)
    # RUNNING -> STOPPING: we asked it to stop
    S.RUNNING: frozenset({S.EXITED, S.FATAL, S.STOPPING}),
    # BACKOFF/EXITED -> STARTING: its delay is over (or a rolling restart reached it)
    # BACKOFF/EXITED -> STOPPED: a stop arrived while it waited; nothing to signal
    S.BACKOFF: frozenset({S.STARTING, S.STOPPED}),
    S.EXITED: frozenset({S.STARTING, S.STOPPED}),
    # STOPPING -> STOPPED: it exited after our signal (how cleanly is logged)
    S.STOPPING: frozenset({S.STOPPED}),
    # FATAL -> STARTING: only a rolling restart (HUP, after the config was fixed) retries it
    S.FATAL: frozenset({S.STARTING}),
}

# States in which a node has a live process of ours.
ALIVE = frozenset({S.STARTING, S.RUNNING, S.STOPPING})
# States that wait for a backoff delay before the next start.
WAITING = frozenset({S.BACKOFF, S.EXITED})


class HasState(Protocol):
    state: NodeState


class IllegalTransition(RuntimeError):
    """A bug in the supervisor: a transition `ALLOWED` does not list."""


def change_state(holder: HasState, new: NodeState) -> NodeState:
    """Move `holder` to `new`; return the state it left. The only writer of `.state`."""
    old = holder.state
    if new not in ALLOWED[old]:
        raise IllegalTransition(f"{old.value} -> {new.value}")
    holder.state = new
    return old
