"""The cluster operations: start, stop, stopwait, kill, restart.

Each takes the parsed invocation, a reporter and the directory relative paths
are read from, and hands one `NodeResult` a node to the reporter; it never
prints. A node is signalled only through `procs.pin`, i.e. only while its
pidfile lock is held, so a stale pidfile naming a reused pid never makes us
signal a stranger.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field

import psutil

from qmulti.exceptions import QmultiError
from qmulti.pidfiles import PidfileError, PidfileStatus, remove_stale
from qmulti.supervisor import procs
from qmulti.supervisor.grammar import Invocation
from qmulti.supervisor.launch import launch_and_wait
from qmulti.supervisor.nodes import Node
from qmulti.supervisor.options import GrammarError
from qmulti.supervisor.report import NodeResult, Reporter

DEFAULT_START_TIMEOUT = 30.0
# After QUIT (cold stop, tasks given back) a node gets this long before KILL.
QUIT_GRACE = 5.0
# After KILL the kernel needs a moment to tear the processes down.
KILL_WAIT = 10.0
# How long the children of a stopped node may take to follow it.
CHILDREN_WAIT = 5.0
# While waiting, say who is still busy at least this often, and when it changes.
PROGRESS_EVERY = 5.0
POLL = 0.25


class PathError(QmultiError):
    """A pid or log directory cannot be used; nothing was started (exit 1)."""


def _abs(cwd: str, path: str) -> str:
    return os.path.join(cwd, path)


def require_app(nodes: tuple[Node, ...], command: str) -> None:
    """start/restart without `-A` would start nodes that load nothing."""
    for node in nodes:
        words = list(node.passthrough)
        has_app = any(opt.key == "--app" and opt.value for opt in node.options) or any(
            w in ("-A", "--app") or w.startswith("--app=") or (w.startswith("-A") and len(w) > 2)
            for w in words)
        if not has_app:
            raise GrammarError(
                f"{command} needs -A MODULE, the app each qworker loads (missing for {node.name})"
            )


def check_paths(nodes: list[Node], cwd: str) -> None:
    """Make sure every pid and log directory exists and is writable, before any launch.

    Missing directories inside the given paths are created (only here, never for
    show/names/expand/get). Failing after some nodes were launched would leave
    half a cluster running; failing here leaves nothing.
    """
    for node in nodes:
        for what, path in (("pidfile", node.pidfile), ("log file", node.main_logfile)):
            directory = os.path.dirname(_abs(cwd, path)) or cwd
            try:
                os.makedirs(directory, exist_ok=True)
            except OSError as exc:
                raise PathError(
                    f"cannot use directory {directory} for the {what} of {node.name}: "
                    f"{exc.strerror}; choose another --{what.replace(' ', '')}"
                ) from None
            if not os.access(directory, os.W_OK | os.X_OK):
                raise PathError(
                    f"directory {directory} for the {what} of {node.name} is not writable; "
                    f"choose another --{what.replace(' ', '')}"
                )


def _prepare(node: Node, cwd: str, reporter: Reporter) -> NodeResult | None:
    """A result when the node must not be launched (running, unreadable pidfile), else None."""
    status, pinned = procs.pin(_abs(cwd, node.pidfile))
    if pinned is not None:
        pinned.close()
        return NodeResult(node.name, True, "already running", status.pid)
    if status.state == "unreadable":
        return NodeResult(node.name, False, "FAILED", None,
                          f"unreadable pidfile {node.pidfile}: {status.reason}")
    if status.state == "stale":
        try:
            if remove_stale(status.path):
                reporter.progress(f"{node.name}: removed stale pidfile {node.pidfile}"
                                  + (f" (pid {status.pid} is not this node)" if status.pid else ""))
        except PidfileError as exc:
            return NodeResult(node.name, False, "FAILED", None, str(exc))
    return None


def start(inv: Invocation, reporter: Reporter, cwd: str) -> None:
    require_app(inv.nodes, "start")
    check_paths(list(inv.nodes), cwd)
    to_launch: list[Node] = []
    for node in inv.nodes:
        early = _prepare(node, cwd, reporter)
        if early is None:
            to_launch.append(node)
        else:
            reporter.node(early)
    if to_launch:
        timeout = DEFAULT_START_TIMEOUT if inv.timeout is None else inv.timeout
        launch_and_wait(to_launch, cwd, timeout, reporter.node)


@dataclass
class _Stopping:
    """A node we sent a stop signal to, until it is gone."""

    node: Node
    pinned: procs.Pinned
    pidfile: str
    children: list[psutil.Process] = field(default_factory=list)
    how: str = ""  # how it ended, if not by TERM alone


def _signal(node: Node, cwd: str, sig: int, reporter: Reporter,
            report_sent: bool) -> _Stopping | None:
    """Send `sig` to a running node; report the node when there is nothing to wait for."""
    path = _abs(cwd, node.pidfile)
    status, pinned = procs.pin(path)
    if pinned is None:
        reporter.node(_not_running(node, status))
        return None
    kids = procs.children(pinned.pid)
    if not pinned.signal(sig):
        pinned.close()
        reporter.node(NodeResult(node.name, True, "DOWN", None))
        return None
    if report_sent:
        name = signal.Signals(sig).name.removeprefix("SIG")
        reporter.node(NodeResult(node.name, True, f"{name} sent", pinned.pid))
        pinned.close()
        return None
    return _Stopping(node, pinned, path, kids)


def _not_running(node: Node, status: PidfileStatus) -> NodeResult:
    """DOWN (tidying a stale pidfile away), or FAILED when the pidfile cannot be read."""
    if status.state == "unreadable":
        return NodeResult(node.name, False, "FAILED", None,
                          f"unreadable pidfile {node.pidfile}: {status.reason}")
    detail = ""
    if status.state == "stale":
        try:
            remove_stale(status.path)
            detail = "removed stale pidfile"
        except PidfileError as exc:
            return NodeResult(node.name, False, "FAILED", None, str(exc))
    return NodeResult(node.name, True, "DOWN", None, detail)


def stop(inv: Invocation, reporter: Reporter, cwd: str) -> None:
    for node in inv.nodes:
        _signal(node, cwd, signal.SIGTERM, reporter, report_sent=True)


def _busy_line(waiting: list[_Stopping]) -> str:
    parts = []
    for item in waiting:
        tasks = procs.busy_tasks(item.pinned.pid)
        if tasks:
            shown = ", ".join(tasks[:3]) + (" ..." if len(tasks) > 3 else "")
            parts.append(f"{item.node.name} ({len(tasks)} busy: {shown})")
        else:
            parts.append(f"{item.node.name} (no task running)")
    count = len(waiting)
    return f"waiting for {count} node{'s' if count > 1 else ''}: " + "; ".join(parts)


def wait_stopped(stopping: list[_Stopping], timeout: float | None,
                 reporter: Reporter) -> list[NodeResult]:
    """Wait until every signalled node has exited, escalating after `timeout`.

    TERM is already sent. With a timeout: QUIT (cold stop: the node gives its
    tasks back) at `timeout`, KILL of the node and its children `QUIT_GRACE`
    later; each step is reported. Without one, wait as long as it takes,
    saying who is still busy.
    """
    results: list[NodeResult] = []
    waiting = list(stopping)
    started = time.monotonic()
    quit_at = None if timeout is None else started + timeout
    kill_at = None if quit_at is None else quit_at + QUIT_GRACE
    stage = "TERM"
    last_line, last_said = "", 0.0
    while waiting:
        now = time.monotonic()
        if stage == "TERM" and quit_at is not None and now >= quit_at:
            stage = "QUIT"
            for item in waiting:
                item.pinned.signal(signal.SIGQUIT)
                item.how = f"cold stop: QUIT after {timeout:g}s"
                reporter.progress(f"{item.node.name}: still running after {timeout:g}s: "
                                  "sent QUIT (its running tasks go back to the queue)")
        elif stage == "QUIT" and kill_at is not None and now >= kill_at:
            stage = "KILL"
            for item in waiting:
                item.children = procs.children(item.pinned.pid) or item.children
                procs.kill_tree(item.pinned)
                item.how = f"killed: KILL {QUIT_GRACE:g}s after QUIT"
                reporter.progress(f"{item.node.name}: still running {QUIT_GRACE:g}s after QUIT: "
                                  "sent KILL to the node and its children")
        line = _busy_line(waiting)
        if line != last_line or now - last_said >= PROGRESS_EVERY:
            reporter.progress(line)
            last_line, last_said = line, now
        nexts = [t for t in (quit_at, kill_at) if t is not None and t > now]
        wait = min([POLL * 4, *(t - now for t in nexts)])
        for item in procs.wait_any([w.pinned for w in waiting], max(wait, 0.01)):
            done = next(w for w in waiting if w.pinned is item)
            waiting.remove(done)
            results.append(_finish(done, reporter))
    return results


def _finish(item: _Stopping, reporter: Reporter) -> NodeResult:
    """The node's main process is gone: let its children follow, drop its pidfile."""
    pid = item.pinned.pid
    item.pinned.close()
    alive = procs.wait_gone(item.children, CHILDREN_WAIT)
    for child in alive:  # orphaned pool children would keep working without a node
        try:
            child.kill()
        except psutil.Error:
            pass
    try:
        remove_stale(item.pidfile)
    except PidfileError as exc:
        result = NodeResult(item.node.name, False, "FAILED", pid, str(exc))
    else:
        result = NodeResult(item.node.name, True, "OK", pid, item.how or "stopped")
    reporter.node(result)
    return result


def stopwait(inv: Invocation, reporter: Reporter, cwd: str) -> None:
    stopping = [s for node in inv.nodes
                if (s := _signal(node, cwd, signal.SIGTERM, reporter, False)) is not None]
    wait_stopped(stopping, inv.timeout, reporter)


def kill(inv: Invocation, reporter: Reporter, cwd: str) -> None:
    for node in inv.nodes:
        path = _abs(cwd, node.pidfile)
        status, pinned = procs.pin(path)
        if pinned is None:
            reporter.node(_not_running(node, status))
            continue
        count = procs.kill_tree(pinned)
        gone = pinned.wait(KILL_WAIT)
        pinned.close()
        if not gone:
            reporter.node(NodeResult(node.name, False, "FAILED", status.pid,
                                     f"still alive {KILL_WAIT:g}s after KILL"))
            continue
        try:
            remove_stale(path)
        except PidfileError as exc:
            reporter.node(NodeResult(node.name, False, "FAILED", status.pid, str(exc)))
            continue
        reporter.node(NodeResult(node.name, True, "KILLED", status.pid,
                                 f"with {count} child{'ren' if count != 1 else ''}"))


def restart(inv: Invocation, reporter: Reporter, cwd: str) -> None:
    """Rolling: one node at a time is down, so the others keep consuming.

    Stops at the first node that does not come back: restarting the next ones
    could take the whole cluster down with the same broken code or settings.
    """
    require_app(inv.nodes, "restart")
    check_paths(list(inv.nodes), cwd)
    timeout = DEFAULT_START_TIMEOUT if inv.timeout is None else inv.timeout
    nodes = list(inv.nodes)
    for index, node in enumerate(nodes):
        old_pid = None
        stopping = _signal_quiet(node, cwd, reporter)
        if stopping is False:
            _skip(nodes[index + 1:], node, reporter)
            return
        if stopping is not None:
            old_pid = stopping.pinned.pid
            reporter.progress(f"{node.name}: stopping (pid {old_pid})")
            wait_stopped([stopping], inv.timeout, _Muted(reporter))
        (result,) = launch_and_wait([node], cwd, timeout)
        if result.ok and old_pid is not None:
            result = NodeResult(result.name, True, result.status, result.pid,
                                f"restarted (was pid {old_pid})")
        reporter.node(result)
        if not result.ok:
            _skip(nodes[index + 1:], node, reporter)
            return


def _signal_quiet(node: Node, cwd: str, reporter: Reporter) -> _Stopping | None | bool:
    """TERM a running node for restart: the stop is not a result of its own.

    Returns the node to wait for, None when it was not running (start it), or
    False when it cannot be handled (its pidfile is unreadable: reported).
    """
    collected: list[NodeResult] = []
    stopping = _signal(node, cwd, signal.SIGTERM, _Collect(collected, reporter), False)
    if collected and not collected[0].ok:
        reporter.node(collected[0])
        return False
    return stopping


def _skip(rest: list[Node], failed: Node, reporter: Reporter) -> None:
    for node in rest:
        reporter.node(NodeResult(node.name, False, "SKIPPED", None,
                                 f"not restarted because {failed.name} did not come back"))


class _Collect:
    """Keeps node results, passes progress on."""

    def __init__(self, into: list[NodeResult], outer: Reporter) -> None:
        self.into, self.outer = into, outer

    def node(self, result: NodeResult) -> None:
        self.into.append(result)

    def progress(self, message: str) -> None:
        self.outer.progress(message)


class _Muted(_Collect):
    """For the stop inside a restart: its progress shows, its result does not."""

    def __init__(self, outer: Reporter) -> None:
        super().__init__([], outer)
