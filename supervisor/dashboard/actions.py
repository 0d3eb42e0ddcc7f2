"""What the dashboard's buttons do: pool grow/shrink and warm shutdown of a node,
revoke (and terminate) of a task, retry and discard of a dead letter.

Node actions go through `app.control` (the broker's broadcast, reaching nodes on any
host) when this qmulti has it. Without it they fall back to the node's own signals
(TTIN, TTOU, TERM: the contract's), which reach only nodes on this host; a remote
node's action then fails with a line saying so. The pid signalled is the one the
node's own heartbeat reported, and only after checking that that process still is a
qworker, so a recycled pid is never signalled.

Each action returns a short human sentence (the page shows it) or raises
ActionError with one.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

from qmulti.urls import mask_url


class ActionError(Exception):
    """A refused or failed action: its message is shown as is."""


class Actions:
    def __init__(self, app: Any, collector: Any) -> None:
        self.app = app
        self.collector = collector
        self._lock = threading.Lock()  # one action at a time on this connection pair
        self._pair: tuple[Any, Any] | None = None

    def _store(self) -> tuple[Any, Any]:
        if self._pair is None:
            from qmulti.brokers import connect

            self._pair = connect(self.app.conf)
        return self._pair

    def _node(self, name: str) -> dict[str, Any]:
        for row in self.collector.snapshot().get("nodes", []):
            if row["name"] == name:
                return row
        raise ActionError(f"no node named {name!r} in the broker's heartbeats")

    # -- nodes -----------------------------------------------------------------------------
    def node(self, name: str, action: str, n: int = 1) -> str:
        if action not in ("pool_grow", "pool_shrink", "shutdown"):
            raise ActionError(f"unknown node action {action!r}")
        if n < 1 or n > 64:
            raise ActionError("n must be between 1 and 64")
        row = self._node(name)
        control = getattr(self.app, "control", None)
        if control is not None and hasattr(control, action):
            with self._lock:
                args = () if action == "shutdown" else (n,)
                replies = getattr(control, action)(*args, destination=[name], reply=True)
            return _reply_text(name, action, replies)
        return self._signal(row, action, n)

    def _signal(self, row: dict[str, Any], action: str, n: int) -> str:
        name, pid = row["name"], row["pid"]
        if not row["local"] or pid is None:
            raise ActionError(f"{name} runs on {row['host'] or 'another host'}; this qmulti "
                              "reaches remote nodes only through app.control")
        if not _is_qworker(pid, name):
            raise ActionError(f"{name}: pid {pid} is no longer a qworker")
        sig = {"pool_grow": signal.SIGTTIN, "pool_shrink": signal.SIGTTOU,
               "shutdown": signal.SIGTERM}[action]
        for _ in range(1 if action == "shutdown" else n):
            os.kill(pid, sig)
            _wait_delivered(pid, sig)  # a second TTIN while one is pending would merge
        if action == "shutdown":
            return f"{name}: warm shutdown asked (TERM to pid {pid})"
        verb = "grow" if action == "pool_grow" else "shrink"
        return f"{name}: pool {verb} by {n} asked"

    # -- tasks -----------------------------------------------------------------------------
    def revoke(self, task_id: str, terminate: bool) -> str:
        from qmulti.result import AsyncResult

        if not task_id or len(task_id) > 200:
            raise ActionError("a task id is needed")
        with self._lock:
            AsyncResult(task_id, app=self.app).revoke(terminate=terminate)
        return f"{task_id}: revoked" + (" (terminate)" if terminate else "")

    def result(self, task_id: str) -> dict[str, Any] | None:
        """The stored result document (args, kwargs, result or traceback when stored)."""
        import json

        with self._lock:
            try:
                _, backend = self._store()
                blob = backend.get(task_id)
            except Exception as exc:
                self._pair = None
                raise ActionError(mask_url(str(exc)) or type(exc).__name__) from None
        if blob is None:
            return None
        try:
            doc = json.loads(blob)
        except ValueError:
            return None
        if isinstance(doc, dict) and doc.get("ct") == "pickle":
            doc["result"] = "(pickled; not shown)"
        return doc if isinstance(doc, dict) else None

    # -- dead letters ----------------------------------------------------------------------
    def dead_letter(self, queue: str, mid: str, action: str) -> str:
        if action not in ("retry", "discard"):
            raise ActionError(f"unknown dead-letter action {action!r}")
        with self._lock:
            try:
                broker, _ = self._store()
                done = getattr(broker, f"{action}_dead_letter")(queue, mid)
            except Exception as exc:
                self._pair = None
                raise ActionError(mask_url(str(exc)) or type(exc).__name__) from None
        if not done:
            raise ActionError(f"{mid} is no longer dead-lettered (retried or discarded "
                              "already)")
        self.collector.mark_dead_stale()
        return f"{mid}: " + ("republished to " + queue if action == "retry" else "discarded")


def _wait_delivered(pid: int, sig: int, timeout: float = 2.0) -> None:
    """Until `sig` is no longer pending for `pid` (Linux's /proc status masks): signals of
    one kind sent while one is pending are delivered once, so n grows would be one."""
    import time

    bit = 1 << (sig - 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/status") as status:
                masks = [int(line.split()[1], 16) for line in status
                         if line.startswith(("SigPnd:", "ShdPnd:"))]
        except (OSError, ValueError, IndexError):
            return  # no /proc, or the process is gone: nothing more to wait for
        if not any(m & bit for m in masks):
            return
        time.sleep(0.005)


def _reply_text(name: str, action: str, replies: Any) -> str:
    """Celery's reply shape, `[{nodename: {"ok": text} or {"error": text}}]`, as one line."""
    for reply in replies or ():
        if isinstance(reply, dict) and name in reply:
            answer = reply[name]
            if isinstance(answer, dict) and answer.get("error"):
                raise ActionError(f"{name}: {answer['error']}")
            text = answer.get("ok") if isinstance(answer, dict) else None
            return f"{name}: {text or action + ' done'}"
    raise ActionError(f"{name} did not answer within the timeout")


def _is_qworker(pid: int, name: str) -> bool:
    """The node's main process still holds that pid: its title (qmulti.node.proctitle)
    names it, or, without titles, its command line is a qworker's."""
    try:
        import psutil

        cmd = " ".join(psutil.Process(pid).cmdline())
    except Exception:
        return False
    if cmd.startswith("qworker:"):
        return cmd.startswith(f"qworker: {name} main")
    return "qworker" in cmd or "qmulti.node" in cmd
