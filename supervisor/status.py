"""`qmulti status [--json]`: one row a node, from its pidfile and its process tree.

The row is a dataclass; rendering goes through `as_dict()`. When the broker is
known (`-A`, `-b` or QMULTI_BROKER_URL, as for `start`), each row also gets what the
node's last heartbeat said (active and finished tasks, seconds since), and a
footer (JSON: a top-level "broker" object) shows queue depths, scheduled, leased
and dead-letter counts; see `supervisor.brokerinfo`. Every broker the nodes use is
read (once each; JSON "brokers" when there are several), and the nodes found there
that run on other hosts get rows of their own, from their heartbeats, marked remote.
A broker that is down or missing is reported in that footer. Exit status: 0 when
every node runs and the brokers (when known) answer, 1 otherwise, so scripts can test
it: nodes that run but cannot reach their broker do no work.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from qmulti.exceptions import QmultiError
from qmulti.supervisor import brokerinfo, exitcodes, procs
from qmulti.supervisor.grammar import Invocation
from qmulti.supervisor.nodes import Node
from qmulti.urls import mask_url

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
    active: int | None = None  # tasks running now, per the node's last heartbeat
    finished: int | None = None  # tasks finished since the node started
    heartbeat_age: float | None = None  # seconds since the node's last heartbeat
    autoscale: tuple[int, int] | None = None  # (MAX, MIN) when the pool autoscales
    remote: bool = False  # on another host: known from its heartbeat only
    hostname: str | None = None  # the host of a remote node

    def as_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        if not self.remote:  # the same document as before for a node of this host
            del doc["remote"], doc["hostname"]
        if self.autoscale is None:
            del doc["autoscale"]  # the same document as before for a fixed pool
        else:
            doc["autoscale"] = {"max": self.autoscale[0], "min": self.autoscale[1]}
        return doc


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


def _dash(value: int | None) -> str:
    return "-" if value is None else str(value)


def _children(row: NodeStatus) -> str:
    if row.autoscale is None:
        return _dash(row.children)
    return f"{_dash(row.children)} (autoscale {row.autoscale[1]}-{row.autoscale[0]})"


def render_table(rows: list[NodeStatus], broker: bool = False) -> list[str]:
    head = ("NODE", "STATE", "PID", "UPTIME", "RSS", "CHILDREN")
    table = [head + (("ACTIVE", "FINISHED", "HEARTBEAT") if broker else ())]
    for row in rows:
        state = f"{row.state} (remote: {row.hostname})" if row.remote else row.state
        cells: tuple[str, ...] = (row.name, state, _dash(row.pid),
                                  _human_seconds(row.uptime), _human_bytes(row.rss),
                                  _children(row))
        if broker:
            beat = "-" if row.heartbeat_age is None else f"{row.heartbeat_age:.1f}s ago"
            cells += (_dash(row.active), _dash(row.finished), beat)
        table.append(cells)
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
            for r in table]


def broker_side(inv: Invocation, cwd: str,
                environ: dict[str, str] | None = None) -> brokerinfo.BrokerInfo | None:
    """The broker's view, when something names the broker (the first node's)."""
    infos = brokers_side(inv, cwd, environ)
    return next(iter(infos.values()), None) if infos else None


def brokers_side(inv: Invocation, cwd: str, environ: dict[str, str] | None = None
                 ) -> dict[str, brokerinfo.BrokerInfo]:
    """Every broker the nodes use (each read once), by node name; a node whose broker
    nothing names is absent."""
    env = dict(os.environ if environ is None else environ)
    by_url: dict[str, brokerinfo.BrokerInfo] = {}
    out: dict[str, brokerinfo.BrokerInfo] = {}
    for node in inv.nodes:
        try:
            url = brokerinfo.broker_url(node, env, cwd)
        except QmultiError as exc:  # a bad -A or URL: the pidfile rows are still worth seeing
            out[node.name] = brokerinfo.BrokerInfo("?", error=mask_url(str(exc)))
            continue
        if url is None:
            continue
        if url not in by_url:
            by_url[url] = brokerinfo.gather(url, cwd)
        out[node.name] = by_url[url]
    return out


def remote_rows(infos: list[brokerinfo.BrokerInfo], listed: set[str],
                here: str) -> list[NodeStatus]:
    """Nodes on other hosts, as their heartbeats describe them, once each."""
    rows: dict[str, NodeStatus] = {}
    now = time.time()
    for info in infos:
        for name, seen in sorted(info.nodes.items()):
            if name in listed or name in rows or not seen.hostname or seen.hostname == here:
                continue
            row = NodeStatus(name, "running", seen.pid, remote=True, hostname=seen.hostname,
                             children=seen.children)
            row.uptime = None if seen.started_at is None else max(0.0, now - seen.started_at)
            _merge(row, info)
            rows[name] = row
    return list(rows.values())


def _merge(row: NodeStatus, info: brokerinfo.BrokerInfo) -> None:
    seen = info.nodes.get(row.name)
    if seen is not None:
        row.active, row.finished = seen.active, seen.finished
        row.heartbeat_age = seen.heartbeat_age
        row.autoscale = seen.autoscale


def run_status(inv: Invocation, cwd: str | None = None, out: TextIO | None = None,
               environ: dict[str, str] | None = None) -> int:
    out = out or sys.stdout
    cwd = cwd or os.getcwd()
    rows = [node_status(node, cwd) for node in inv.nodes]
    by_node = brokers_side(inv, cwd, environ)
    infos = list({id(i): i for i in by_node.values()}.values())  # each broker once
    info = infos[0] if infos else None
    for row in rows:
        if row.name in by_node:
            _merge(row, by_node[row.name])
    remote = remote_rows(infos, {row.name for row in rows}, socket.gethostname())
    if inv.json:
        doc: dict[str, Any] = {"nodes": [row.as_dict() for row in rows + remote]}
        if info is not None:
            doc["broker"] = info.as_dict()
        if len(infos) > 1:
            doc["brokers"] = [i.as_dict() for i in infos]
        print(json.dumps(doc, indent=2), file=out)
    else:
        for line in render_table(rows + remote, broker=info is not None):
            print(line, file=out)
        for each in infos:
            for line in brokerinfo.footer(each):
                print(line, file=out)
    running = all(row.state == "running" for row in rows)
    reachable = all(i.answered for i in infos)
    return exitcodes.EX_OK if running and reachable else exitcodes.EX_FAILURE
