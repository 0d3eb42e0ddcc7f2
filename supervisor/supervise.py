"""`qmulti supervise NODES...`: run the nodes as children in the foreground and keep them up.

One reconcile loop, as gunicorn's arbiter: signal handlers do nothing but let
Python write the signal number to a wake-up pipe (`signal.set_wakeup_fd`); the
loop blocks on that pipe, on a private notify socket the nodes send READY=1 to,
and on a short tick. Each turn it drains the signals into *desired* state
(stop everything, roll through the nodes), reads the nodes' datagrams, reaps
every exited child, then moves each node towards what is desired. Nothing is
logged or signalled inside a handler.

Nodes run in the foreground of their own process group (`qworker` without
`--detach`), so a TERM meant for one node never reaches another, and a KILL
after escalation reaches the node's pool children too. They still hold their
pidfiles, so `qmulti status` and `qmulti stop` see them as usual.

The per-node record and the acts on one node's process (spawn, signal, tidy)
live in `supervised.py`; this module keeps the loop and its decisions.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import socket
import struct
import sys
import tempfile
import time

from qmulti.supervisor.cluster import CHILDREN_WAIT, QUIT_GRACE, check_paths, require_app
from qmulti.supervisor.grammar import Invocation
from qmulti.supervisor.nodes import Node
from qmulti.supervisor.states import ALIVE, WAITING, NodeState, change_state
from qmulti.supervisor.supervise_beat import beat_item
from qmulti.supervisor.supervised import (
    FATAL_CODES,
    HANDLED,
    Supervised,
    already_running,
    describe_exit,
    group_alive,
    node_argv,
)
from qmulti.system import exitcodes as node_exit
from qmulti.system import startsignals
from qmulti.system.backoff import Backoff
from qmulti.system.environ import node_environ
from qmulti.system.notify import Notifier
from qmulti.system.wakeup import Wakeup

S = NodeState
PREFIX = "qmulti supervise"
# Longest wait in one turn of the loop: bounds how late a backoff restart, an
# escalation step or a watchdog ping can be.
TICK = 0.5
_UCRED = struct.Struct("iII")  # struct ucred: pid, uid, gid


class Supervisor:
    """Owns the nodes, the wake-up pipe and the notify socket for one `supervise` run."""

    def __init__(self, nodes: list[Node], cwd: str, stop_timeout: float | None,
                 notifier: Notifier, beat: bool = False) -> None:
        self.cwd = cwd
        self.stop_timeout = stop_timeout
        self.notifier = notifier
        self.tmpdir = tempfile.mkdtemp(prefix="qmulti-supervise-")
        self.notify_path = os.path.join(self.tmpdir, "notify.sock")
        # Each node stops when we die (qmulti.system.startsignals: PR_SET_PDEATHSIG).
        parent = [(startsignals.ENV_PARENT, str(os.getpid()))]
        self.nodes = [Supervised(n, node_argv(n, cwd), os.path.join(cwd, n.pidfile),
                                 node_environ([*n.env, *parent], self.notify_path))
                      for n in nodes]
        if beat:  # one more supervised process, the scheduler (supervise_beat.py)
            self.nodes.append(beat_item(nodes[0], node_environ([*nodes[0].env, *parent],
                                                               self.notify_path)))
        self.by_pid: dict[int, Supervised] = {}
        self.stopping = False
        self.cold = False  # QUIT instead of TERM: a cold stop was asked for
        self.rolling: list[Supervised] | None = None
        self.roll_current: Supervised | None = None
        self.ready_sent = False
        self.last_status = ""
        self.selector = selectors.DefaultSelector()
        self.wakeup = Wakeup()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    # -- the loop ---------------------------------------------------------------

    def run(self) -> int:
        self.wakeup.install(HANDLED)
        try:
            self.sock.bind(self.notify_path)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            self.sock.setblocking(False)
            self.selector.register(self.wakeup.fileno(), selectors.EVENT_READ)
            self.selector.register(self.sock, selectors.EVENT_READ)
            self.log(f"supervising {len(self.nodes)} node(s), pid {os.getpid()}")
            now = time.monotonic()
            for item in self.nodes:
                self._spawn(item, now)
            while True:
                code = self.step()
                if code is not None:
                    return code
        finally:
            self.selector.close()
            self.sock.close()
            self.wakeup.close()
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def step(self) -> int | None:
        """One turn: wait, take in signals, datagrams and exits, reconcile. An exit code ends it."""
        self.selector.select(self._wait_time(time.monotonic()))
        for signum in self.wakeup.drain():
            self._dispatch(signum, time.monotonic())
        self._read_notify()  # before reaping: a node's last words precede its exit
        self.reap()
        code = self.reconcile(time.monotonic())
        self._publish_status()
        self.notifier.watchdog()
        return code

    def _wait_time(self, now: float) -> float:
        deadlines = [item.next_start for item in self.nodes if item.state in WAITING]
        for item in self.nodes:
            deadlines += [t for t in (item.quit_at, item.kill_at) if t is not None]
        return max(0.0, min([TICK, *(t - now for t in deadlines)]))

    def _dispatch(self, signum: int, now: float) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self.handle_stop(signal.Signals(signum).name.removeprefix("SIG"), now, cold=False)
        elif signum == signal.SIGQUIT:
            self.handle_stop("QUIT", now, cold=True)
        elif signum == signal.SIGHUP:
            self.handle_hup()
        # SIGCHLD only wakes us: every turn reaps anyway.

    # -- desired state ------------------------------------------------------------

    def handle_stop(self, why: str, now: float, cold: bool) -> None:
        if self.stopping and not cold:
            self.log(f"{why}: already stopping")
            return
        how = "cold stop (QUIT: running tasks go back to the queue)" if cold else "stopping"
        limit = f", QUIT after {self.stop_timeout:g}s" if self.stop_timeout is not None else ""
        self.log(f"{why}: {how} every node{'' if cold else limit}")
        self.stopping = True
        self.cold = self.cold or cold
        self.rolling, self.roll_current = None, None
        self.notifier.stopping(f"{why}: stopping {len(self.nodes)} node(s)")
        for item in self.nodes:
            if cold and item.state == S.STOPPING and item.stage == "TERM":
                item.send(signal.SIGQUIT, now, self.stop_timeout)

    def handle_hup(self) -> None:
        if self.stopping:
            self.log("HUP: ignored while stopping")
            return
        if self.rolling is not None:
            self.log("HUP: a rolling restart is already under way")
            return
        self.log(f"HUP: rolling restart of {len(self.nodes)} node(s), one at a time")
        for item in self.nodes:
            item.rolled = False
        self.rolling, self.roll_current = list(self.nodes), None
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notifier.send(reloading=1, monotonic_usec=usec, status="rolling restart")

    # -- actual state ---------------------------------------------------------------

    def _read_notify(self) -> None:
        now = time.monotonic()
        while True:
            try:
                data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(_UCRED.size))
            except (BlockingIOError, InterruptedError):
                return
            sender = None
            for level, kind, cdata in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    sender = _UCRED.unpack(cdata[:_UCRED.size])[0]
            fields = {}
            for line in data.decode("utf-8", "replace").splitlines():
                key, sep, value = line.partition("=")
                if sep:
                    fields[key] = value
            mainpid = fields.get("MAINPID", "")
            item = self.by_pid.get(int(mainpid)) if mainpid.isdigit() else None
            item = item or (self.by_pid.get(sender) if sender is not None else None)
            if item is None:
                continue
            if "STATUS" in fields:
                item.last_status = fields["STATUS"]
            if fields.get("READY") == "1" and item.state == S.STARTING:
                item.ready_at = now
                self._set(item, S.RUNNING)

    def reap(self) -> None:
        """Collect every exited child; tolerate having none (ECHILD)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            item = self.by_pid.pop(pid, None)
            if item is not None:
                self._exited(item, os.waitstatus_to_exitcode(status), time.monotonic())

    def _exited(self, item: Supervised, code: int, now: float) -> None:
        how = describe_exit(code, item.we_killed)
        if item.state == S.STOPPING:
            clean = code == 0 and item.stage == "TERM"
            self._set(item, S.STOPPED, how if clean else f"{how}, after {item.stage}")
            item.stage = "" if clean else item.stage
            item.quit_at = item.kill_at = None
            item.tidy_pidfile()
            return
        # A STATUS= line is its reason only when it never got going (RUNNING nodes
        # send their counters as STATUS=).
        failed_start = item.state == S.STARTING or code in FATAL_CODES
        said = f": {item.last_status}" if item.last_status and failed_start else ""
        if code in FATAL_CODES:
            self._set(item, S.FATAL, f"{how}{said}; not restarted (fix it, then HUP)")
            item.tidy_pidfile()
            return
        ran = now - item.ready_at if item.state == S.RUNNING else 0.0
        delay = item.backoff.next_delay(ran)
        item.next_start = now + delay
        new = S.EXITED if item.state == S.RUNNING else S.BACKOFF
        self._set(item, new, f"{how}{said}; restarting in {delay:g}s")

    # -- reconcile ----------------------------------------------------------------------

    def reconcile(self, now: float) -> int | None:
        if self.stopping:
            return self._reconcile_stop(now)
        if self.rolling is not None:
            self._reconcile_roll(now)
        for item in self.nodes:
            if item.state in WAITING and now >= item.next_start:
                self._spawn(item, now)
        if all(item.state == S.FATAL for item in self.nodes):
            self.log(f"every node is FATAL: exiting {node_exit.EX_CONFIG} "
                     "so that systemd does not restart us in a loop")
            return node_exit.EX_CONFIG
        if not self.ready_sent and self.rolling is None and self._consuming():
            self.ready_sent = True
            self.log("ready: " + self._status_text())
            self.notifier.ready(self._status_text())
        return None

    def _consuming(self) -> bool:
        """Every node consumes or has given up for good, and at least one consumes."""
        states = [item.state for item in self.nodes]
        return S.RUNNING in states and all(s in (S.RUNNING, S.FATAL) for s in states)

    def _reconcile_stop(self, now: float) -> int | None:
        for item in self.nodes:
            if item.state in (S.STARTING, S.RUNNING):
                self._stop(item, now)
            elif item.state in WAITING:
                self._set(item, S.STOPPED, "stop requested during its backoff delay")
            elif item.state == S.STOPPING:
                self._escalate(item, now)
        if any(item.state in ALIVE for item in self.nodes):
            return None
        self._wait_groups()
        unclean = [item.name for item in self.nodes if item.stage]
        if unclean:
            self.log(f"stopped; not cleanly: {', '.join(unclean)}")
            return 1
        self.log("stopped: every node finished its tasks")
        return 0

    def _reconcile_roll(self, now: float) -> None:
        """One node at a time: stop it, start it, wait for READY=1, then the next one."""
        assert self.rolling is not None
        item = self.roll_current
        if item is None:
            if not self.rolling:
                self.rolling = None
                self.log("rolling restart done: " + self._status_text())
                self.notifier.send(ready=1, status=self._status_text())
                return
            item = self.roll_current = self.rolling.pop(0)
            item.rolled = item.state == S.STARTING  # a fresh process already
        if item.state in (S.STARTING, S.STOPPING):
            return
        if item.rolled:
            if item.state == S.RUNNING:
                self.roll_current = None
                self._reconcile_roll(now)
                return
            left = ", ".join(i.name for i in self.rolling)
            self.log(f"rolling restart stopped: {item.name} did not come back ({item.state.value})"
                     + (f"; not restarted: {left}" if left else ""))
            self.rolling, self.roll_current = None, None
            self.notifier.send(ready=1, status=self._status_text())
        elif item.state == S.RUNNING:
            self._stop(item, now)
        else:  # STOPPED, BACKOFF, EXITED or FATAL: start it now
            item.rolled = True
            item.backoff = Backoff()
            self._spawn(item, now)

    # -- acting on one node -----------------------------------------------------------------

    def _spawn(self, item: Supervised, now: float) -> None:
        """Start the node; a spawn that fails outright counts as a failed start (BACKOFF)."""
        try:
            pid = item.spawn()
        except OSError as exc:
            change_state(item, S.STARTING)
            delay = item.backoff.next_delay(0.0)
            item.next_start = now + delay
            self._set(item, S.BACKOFF, f"cannot run {sys.executable}: {exc}; retry in {delay:g}s")
            return
        self.by_pid[pid] = item
        self._set(item, S.STARTING)

    def _stop(self, item: Supervised, now: float) -> None:
        sig = signal.SIGQUIT if self.cold else signal.SIGTERM
        self._set(item, S.STOPPING, f"sent {sig.name.removeprefix('SIG')}")
        item.send(sig, now, self.stop_timeout)

    def _escalate(self, item: Supervised, now: float) -> None:
        if item.quit_at is not None and now >= item.quit_at:
            self.log(f"{item.name} still running after {self.stop_timeout:g}s: sent QUIT "
                     "(its running tasks go back to the queue)")
            item.send(signal.SIGQUIT, now, self.stop_timeout)
        elif item.kill_at is not None and now >= item.kill_at:
            self.log(f"{item.name} still running {QUIT_GRACE:g}s after QUIT: sent KILL "
                     "to the node and its children")
            item.send(signal.SIGKILL, now, self.stop_timeout)

    def _wait_groups(self) -> None:
        """Pool children follow their node within moments; what lingers gets KILL."""
        groups = {item.pid for item in self.nodes if item.pid is not None}
        deadline = time.monotonic() + CHILDREN_WAIT
        while groups and time.monotonic() < deadline:
            groups = {pgid for pgid in groups if group_alive(pgid)}
            if groups:
                self.selector.select(0.05)
                self.wakeup.drain()
        for pgid in groups:
            self.log(f"process group {pgid} outlived its node: sent KILL")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)

    def _set(self, item: Supervised, new: NodeState, detail: str = "") -> None:
        change_state(item, new)
        pid = f" (pid {item.pid})" if item.pid is not None else ""
        self.log(f"{item.name} {new.value}{pid}" + (f": {detail}" if detail else ""))

    # -- speaking ------------------------------------------------------------------------------

    def _status_text(self) -> str:
        return ", ".join(f"{item.name} {item.state.value}" for item in self.nodes)

    def _publish_status(self) -> None:
        text = self._status_text()
        if text != self.last_status:
            self.last_status = text
            self.notifier.status(text)

    def log(self, message: str) -> None:
        print(f"{PREFIX}: {message}", file=sys.stderr, flush=True)


def run(inv: Invocation, cwd: str, beat: bool = False) -> int:
    """The `supervise` command: validate as `start` does, then supervise until stopped
    (with `beat`, a periodic-task scheduler beside the nodes)."""
    nodes = list(inv.nodes)
    require_app(inv.nodes, "supervise")
    check_paths(nodes, cwd)
    running = already_running(nodes, cwd)  # retrying against a held pidfile loops forever
    for line in running:
        print(f"{PREFIX}: {line}", file=sys.stderr, flush=True)
    return 1 if running else Supervisor(nodes, cwd, inv.timeout, Notifier.from_env(),
                                             beat).run()
