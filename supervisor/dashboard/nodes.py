"""Node rows for the dashboard, from the heartbeat records in the broker.

Every node, on every host, writes its record (name, pid, host, pool size, busy
children, finished count, queues, state) with each heartbeat, so the broker alone
tells the dashboard about all of them. Memory use is only known for nodes on this
host (read from the process table); a remote node shows none rather than a guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qmulti.brokers.base import DEFAULT_HEARTBEAT_EXPIRY, NodeRecord


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _rss(pid: int | None, children: Sequence[Any]) -> int | None:
    if pid is None:
        return None
    try:
        import psutil

        total = psutil.Process(pid).memory_info().rss
        for child in children:
            if _int(child) is not None:
                try:
                    total += psutil.Process(child).memory_info().rss
                except psutil.Error:
                    pass
        return int(total)
    except (ImportError, Exception):  # gone, or not ours to read
        return None


def node_rows(records: Sequence[NodeRecord], now: float, hostname: str,
              expiry: float = DEFAULT_HEARTBEAT_EXPIRY) -> list[dict[str, Any]]:
    """One row a node (schedulers are listed with the periodic entries), freshest record
    first when a restarted node's old record has not expired yet."""
    rows: dict[str, dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: r.heartbeat):
        info = record.info
        name = info.get("name")
        if not isinstance(name, str) or info.get("kind") == "beat":
            continue
        age = max(0.0, now - record.heartbeat)
        host = info.get("hostname") if isinstance(info.get("hostname"), str) else None
        pid = _int(info.get("pid"))
        local = host == hostname
        children = info.get("children") if isinstance(info.get("children"), list) else []
        started = info.get("started_at")
        queues = info.get("queues") if isinstance(info.get("queues"), list) else []
        scale = info.get("autoscale")
        rows[name] = {
            "name": name, "node_id": record.node_id, "host": host, "local": local,
            "state": "offline" if age > expiry else str(info.get("state") or "running"),
            "pid": pid,
            "uptime": (now - started) if isinstance(started, (int, float)) else None,
            "rss": _rss(pid, children) if local and age <= expiry else None,
            "pool": _int(info.get("concurrency")), "busy": _int(info.get("active")),
            "children": len(children), "processed": _int(info.get("finished")),
            "failed": _int(info.get("failed")), "heartbeat_age": age,
            "queues": [str(q) for q in queues],
            "autoscale": scale if isinstance(scale, list) else None,
        }
    return [rows[n] for n in sorted(rows)]


def out_rates(prev: dict[str, Any] | None, cur: dict[str, Any],
              span: float) -> dict[str, float]:
    """Messages finished per second per queue: each node's finished count since the last
    tick, shared between the queues it consumes (exact for a node on one queue)."""
    out: dict[str, float] = {}
    if not prev or span <= 0:
        return out
    for name, (done, queues) in cur["processed"].items():
        before = prev["processed"].get(name)
        if before is None or not queues:
            continue
        delta = max(0, done - before[0]) / span / len(queues)
        for q in queues:
            out[q] = out.get(q, 0.0) + delta
    return out
