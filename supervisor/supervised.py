"""One node under `qmulti supervise`: its record, and what is done to its process.

The loop in `supervise.py` decides (when to start, stop, escalate, give up);
this module holds the per-node facts those decisions read and the few system
calls that act on one node's process: spawn it, signal it, describe how it
exited, tidy after it. Kept apart so the loop reads as policy, and so the
process mechanics (own process group, default signal dispositions, which pid
is safe to signal) sit in one place a reviewer can check alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass, field

from qmulti.pidfiles import PidfileError, probe, remove_stale
from qmulti.supervisor.cluster import QUIT_GRACE
from qmulti.supervisor.nodes import Node
from qmulti.supervisor.states import NodeState
from qmulti.system import exitcodes as node_exit
from qmulti.system import startsignals
from qmulti.system.backoff import Backoff

# The signals `supervise` catches. A node is spawned with these at their default
# disposition: it must not inherit our handlers (or their wake-up pipe).
HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD)
# A node exiting with one of these would fail the same way again: FATAL, no restart.
FATAL_CODES = {node_exit.EX_CONFIG: "configuration error", node_exit.EX_USAGE: "usage error"}
# systemd's per-process variables: they name *our* pid and fds, so a node that
# inherited them would ping a watchdog or take sockets meant for us.
@dataclass
class Supervised:
    """One node under supervision: its process (if any) and what is planned for it."""

    node: Node
    argv: list[str]
    pidfile: str
    env: dict[str, str]
    state: NodeState = NodeState.STOPPED
    pid: int | None = None
    ready_at: float = 0.0
    next_start: float = 0.0
    backoff: Backoff = field(default_factory=Backoff)
    stage: str = ""  # the last stop signal sent: TERM, QUIT or KILL
    quit_at: float | None = None
    kill_at: float | None = None
    we_killed: bool = False
    last_status: str = ""  # its last STATUS= line: why it failed, when it says
    rolled: bool = False  # restarted by the current rolling restart

    @property
    def name(self) -> str:
        return self.node.name

    def command(self) -> list[str]:
        """The program words before `argv`: the node's Python running qworker."""
        return self.node.command()

    def spawn(self) -> int:
        """Start a fresh process for the node; raise OSError when it cannot be run.

        Forgets what the previous process left (stop stage, deadlines, last
        STATUS=) first, so nothing about the old life leaks into the new one.
        The node leads its own process group (a KILL by group reaches its pool
        children, and a TERM meant for it reaches no other node) and reads
        from /dev/null rather than our terminal.
        """
        self.last_status, self.stage, self.we_killed = "", "", False
        self.quit_at = self.kill_at = None
        argv = [*self.command(), *self.argv]
        try:
            pid = os.posix_spawn(
                argv[0], argv, self.env, setpgroup=0, setsigdef=HANDLED,
                # Held blocked until the node's entry point can remember them
                # (qmulti.system.startsignals): a TERM while it imports is a warm stop.
                setsigmask=startsignals.HELD,
                file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)],
            )
        except OSError:
            self.pid = None
            raise
        self.pid = pid
        return pid

    def send(self, sig: signal.Signals, now: float, stop_timeout: float | None) -> None:
        """Signal the node's main process (KILL: its whole group) and arm the next escalation.

        The pid is safe to signal: it is our unreaped child, so it cannot be reused.
        """
        if self.pid is None:
            return
        self.stage = sig.name.removeprefix("SIG")
        with contextlib.suppress(ProcessLookupError):
            if sig == signal.SIGKILL:
                self.we_killed = True
                os.killpg(self.pid, sig)
            else:
                os.kill(self.pid, sig)
        if sig == signal.SIGTERM:
            self.quit_at = None if stop_timeout is None else now + stop_timeout
        elif sig == signal.SIGQUIT:
            self.quit_at, self.kill_at = None, now + QUIT_GRACE
        else:
            self.quit_at = self.kill_at = None

    def tidy_pidfile(self) -> None:
        """A node that did not exit cleanly leaves its pidfile; with its lock free it is stale."""
        with contextlib.suppress(PidfileError, OSError):
            remove_stale(self.pidfile)


def node_argv(node: Node, cwd: str) -> list[str]:
    """What `start` runs, minus --detach: the node stays our child."""
    return [word for word in node.argv(cwd) if word not in ("--detach", "-D")]


def already_running(nodes: list[Node], cwd: str) -> list[str]:
    """One line per node whose pidfile is held already (by `qmulti start`, say)."""
    lines = []
    for node in nodes:
        status = probe(os.path.join(cwd, node.pidfile))
        if status.state == "running":
            lines.append(f"{node.name} is already running (pid {status.pid}, pidfile "
                         f"{node.pidfile}); stop it first: qmulti stop {node.name}")
    return lines


def describe_exit(code: int, we_killed: bool = False) -> str:
    """One readable phrase for a wait status turned exit code (negative = signal)."""
    if code >= 0:
        meaning = FATAL_CODES.get(code)
        return f"exited with code {code}" + (f" ({meaning})" if meaning else "")
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = str(-code)
    hint = "" if we_killed or -code != signal.SIGKILL else " (out of memory? see dmesg)"
    return f"killed by signal {name.removeprefix('SIG')}{hint}"


def group_alive(pgid: int) -> bool:
    """Whether any process is left in a node's group (EPERM still means someone is there)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
