"""`qmulti status [--json]`: one row a node, from its pidfile and its process tree.

The row is a dataclass so later issues can add broker-side fields (active and
finished tasks, last heartbeat, queue depths, dead letters) without touching
how rows are gathered or rendered: both go through `as_dict()`.
Exit status 0 when every node runs, 1 otherwise, so scripts can test it.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from supervisor import exitcodes, procs
from supervisor.grammar import Invocation
from supervisor.nodes import Node

STATES = ("running", "stale", "stopped", "unreadable")


@dataclass
class NodeStatus:
    name: str
    state: str  # one of STATES
    pid: int | None = None
    pidfile: str = ""
    uptime: float | None = None  # seconds
    rss: int | None = None  # bytes, node and children
    children: int | None = None
    reason: str | None = None  # why the pidfile is unreadable

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def node_status(node: Node, cwd: str) -> NodeStatus:
    status, pinned = procs.pin(os.path.join(cwd, node.pidfile))
    state = {"missing": "stopped"}.get(status.state, status.state)
    row = NodeStatus(node.name, state, status.pid, node.pidfile, reason=status.reason)
    if pinned is not None:
        try:
            use = procs.usage(pinned.pid)
        finally:
            pinned.close()
        row.uptime, row.rss, row.children = use.uptime, use.rss, use.children
    return row


def _human_bytes(value: int | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return f"{value}B"


def _human_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    seconds = int(value)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def render_table(rows: list[NodeStatus]) -> list[str]:
    table = [("NODE", "STATE", "PID", "UPTIME", "RSS", "CHILDREN")]
    for row in rows:
        table.append((row.name, row.state, "-" if row.pid is None else str(row.pid),
                      _human_seconds(row.uptime), _human_bytes(row.rss),
                      "-" if row.children is None else str(row.children)))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
            for r in table]


def run_status(inv: Invocation, cwd: str | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    rows = [node_status(node, cwd or os.getcwd()) for node in inv.nodes]
    if inv.json:
        print(json.dumps({"nodes": [row.as_dict() for row in rows]}, indent=2), file=out)
    else:
        for line in render_table(rows):
            print(line, file=out)
    running = all(row.state == "running" for row in rows)
    return exitcodes.EX_OK if running else exitcodes.EX_FAILURE
