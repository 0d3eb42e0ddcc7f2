"""The broker side of `qmulti status`: which store the nodes use, and what it says.

The controller learns the broker as a node would (`-b URL` / QMULTI_BROKER_URL, else
the `-A` app's settings), but only looks: status must never create a store (a sqlite
URL whose file is missing is reported, not made) nor fail because the broker is down;
a broker problem becomes a line in the footer and the pidfile-side rows still print.
The URL is only ever shown masked.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qmulti.exceptions import QmultiError
from qmulti.supervisor.nodes import Node
from qmulti.urls import mask_url, parse_url

URL_ENV_VAR = "QMULTI_BROKER_URL"
BACKEND_ENV_VAR = "QMULTI_RESULT_BACKEND"


@dataclass
class NodeBrokerInfo:
    """What the node's last heartbeat said of it."""

    active: int | None = None
    finished: int | None = None
    heartbeat_age: float | None = None  # seconds since its last heartbeat
    autoscale: tuple[int, int] | None = None  # (MAX, MIN) children under --autoscale
    hostname: str | None = None  # the host it runs on, as the node reported it
    pid: int | None = None
    children: int | None = None
    started_at: float | None = None  # unix time


@dataclass
class BrokerInfo:
    url: str  # masked
    error: str | None = None  # "no such store", "unreachable: ..."
    queues: dict[str, int] = field(default_factory=dict)
    scheduled: int | None = None
    leased: int | None = None
    dead: int | None = None
    nodes: dict[str, NodeBrokerInfo] = field(default_factory=dict)  # by node name
    # periodic-task schedulers alive: (name, heartbeat age, next entry, its due time)
    schedulers: list[tuple[str, float, str | None, float | None]] = field(default_factory=list)
    # sentinel:// only: (master name, master address, replica addresses) right now
    sentinel: tuple[str, str, list[str]] | None = None

    @property
    def answered(self) -> bool:
        """The store was read (memory:// has nothing to read and is not a failure)."""
        return self.error is None or self.url.startswith("memory:")

    def as_dict(self) -> dict[str, Any]:
        return {"url": self.url, "error": self.error, "queues": dict(self.queues),
                "scheduled": self.scheduled, "leased": self.leased, "dead": self.dead,
                "schedulers": [{"name": n, "heartbeat_age": round(a, 1), "next_entry": e,
                                "next_due": d} for n, a, e, d in self.schedulers],
                **({} if self.sentinel is None else {"sentinel": {
                    "master_name": self.sentinel[0], "master": self.sentinel[1],
                    "replicas": list(self.sentinel[2])}})}


def _option(node: Node, key: str) -> str | None:
    for opt in node.options:
        if opt.key == key and opt.value is not None:
            return opt.value
    return None


def broker_settings(node: Node, environ: Mapping[str, str],
                    cwd: str) -> tuple[str | None, dict[str, Any]]:
    """The broker URL this node would use (None when nothing names the app or broker),
    and the app's broker_transport_options when the app was loaded for it (a
    sentinel:// URL needs its master_name).

    The node's own `-b` wins, then the environment (as in the node), then the `-A`
    app's setting. Loading the app only imports the user's modules, as the node does
    before connecting; it opens no connection.
    """
    spec = _option(node, "--app")
    url = next((value for key, value in node.env if key == URL_ENV_VAR and value), None)
    url = url or environ.get(URL_ENV_VAR) or None
    # An amqp:// broker keeps its node records in the result backend (the node's own
    # --result-backend, then the environment's, then the app's).
    backend = next((v for k, v in node.env if k == BACKEND_ENV_VAR and v), None)
    backend = backend or environ.get(BACKEND_ENV_VAR) or None
    extra = {} if backend is None else {"result_backend": backend}
    if url is not None and (spec is None or not url.lower().startswith(("sentinel:", "amqp",
                                                                        "pyamqp"))):
        return url, extra
    if spec is None:
        return url, extra
    from qmulti.node.loader import load_app

    previous = os.getcwd()
    os.chdir(cwd)  # the app's relative sqlite path is relative to where the node runs
    try:
        app = load_app(spec)
        url = url or app.conf.broker_url
        options = dict(app.conf.broker_transport_options or {})
        if backend or app.conf.result_backend:
            options["result_backend"] = backend or app.conf.result_backend
    finally:
        os.chdir(previous)
    return parse_url(url, "broker").url, options


def _sqlite_file(url: str, cwd: str) -> str:
    """The file a sqlite URL names, relative paths read from `cwd` (where nodes run)."""
    from qmulti.brokers.sqlite.schema import db_path

    db_path(url)  # validates the URL the way the store does
    path = url.partition("://")[2].split("?", 1)[0][1:]
    return os.path.abspath(os.path.join(cwd, path))


def gather(url: str, cwd: str, now: float | None = None,
           options: Mapping[str, Any] | None = None) -> BrokerInfo:
    """Read the broker's stats; a store problem is recorded, never raised. `options`:
    the app's broker_transport_options (a sentinel:// URL's master_name)."""
    from qmulti.brokers import PASSED_THROUGH, create_broker

    info = BrokerInfo(mask_url(url))
    try:
        kind = parse_url(url, "broker").kind
        if kind == "memory":
            info.error = "memory:// is private to one process; nothing to show"
            return info
        if kind == "sqlite":
            path = _sqlite_file(url, cwd)
            if not os.path.isfile(path):
                info.error = "no such store"
                return info
            url = "sqlite:///" + path  # absolute: three slashes and a leading /
        passed = {k: v for k, v in (options or {}).items() if k in PASSED_THROUGH}
        if kind == "amqp" and (options or {}).get("result_backend"):
            passed["result_backend"] = options["result_backend"]  # its node records
        if kind == "redis":
            from qmulti.brokers.redis.sentinel import topology, with_master_name

            passed = with_master_name(url, {**passed, "connect_timeout": 3.0})
        broker = create_broker(url, **{"connect_timeout": 3.0, **passed})
        try:
            stats = broker.stats()
            if kind == "redis":
                info.sentinel = topology(broker)
        finally:
            broker.close()
    except (QmultiError, OSError) as exc:
        info.error = mask_url(str(exc)) or type(exc).__name__
        return info
    now = time.time() if now is None else now
    info.queues = dict(stats.queues)
    info.scheduled, info.leased, info.dead = stats.scheduled, stats.leased, stats.dead
    # A name seen twice (a restarted node whose old record has not expired yet): the
    # freshest heartbeat is the live one.
    for record in sorted(stats.nodes, key=lambda r: r.heartbeat):
        name = record.info.get("name")
        if not isinstance(name, str):
            continue
        if record.info.get("kind") == "beat":
            due = record.info.get("next_due")
            info.schedulers.append((name, max(0.0, now - record.heartbeat),
                                    record.info.get("next_entry"),
                                    float(due) if isinstance(due, (int, float)) else None))
            continue
        scale = record.info.get("autoscale")
        bounds = (tuple(scale) if isinstance(scale, list) and len(scale) == 2
                  and all(_int(v) is not None for v in scale) else None)
        kids = record.info.get("children")
        started = record.info.get("started_at")
        info.nodes[name] = NodeBrokerInfo(
            _int(record.info.get("active")), _int(record.info.get("finished")),
            max(0.0, now - record.heartbeat), bounds,  # type: ignore[arg-type]
            str(record.info.get("hostname") or "") or None, _int(record.info.get("pid")),
            len(kids) if isinstance(kids, list) else None,
            float(started) if isinstance(started, (int, float)) else None)
    return info


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def footer(info: BrokerInfo) -> list[str]:
    if info.error is not None:
        return [f"broker: {info.url}: {info.error}"]
    queues = " ".join(f"{q}={n}" for q, n in sorted(info.queues.items())) or "-"
    lines = [f"broker: {info.url}",
             f"queues: {queues}",
             f"scheduled: {info.scheduled}  leased: {info.leased}  dead-letter: {info.dead}"]
    if info.sentinel is not None:
        name, master, replicas = info.sentinel
        lines.append(f"redis master: {name} at {master}  replicas: "
                     f"{', '.join(replicas) or 'none'}")
    if info.schedulers:
        parts = []
        for name, age, entry, due in sorted(info.schedulers):
            when = "" if due is None else " next " + entry_time(entry, due)
            parts.append(f"{name} ({age:.0f}s ago{when})")
        lines.append("schedulers: " + ", ".join(parts))
    return lines


def entry_time(entry: str | None, due: float) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(due))
    return f"{entry} at {stamp}"
