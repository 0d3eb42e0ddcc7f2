"""The control messages on the wire (JSON), shared by the caller and the node.

A request: `{"id", "method", "arguments", "reply_to", "expires"}`; `reply_to` is None
when no reply is wanted, `expires` the unix time after which a node ignores it (a
node that starts late must not act on a stale `shutdown`). A reply:
`{"id", "node", "reply"}`, which the caller turns into Celery's `{nodename: reply}`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

from qmulti.brokers.base import DEFAULT_HEARTBEAT_EXPIRY, Broker

__all__ = ["decode_reply", "decode_request", "encode_reply", "encode_request", "live_nodes",
           "new_request_id"]


def new_request_id() -> str:
    return uuid.uuid4().hex


def encode_request(rid: str, method: str, arguments: Mapping[str, Any],
                   reply_to: str | None, timeout: float) -> bytes:
    doc = {"id": rid, "method": method, "arguments": dict(arguments), "reply_to": reply_to,
           "expires": time.time() + max(timeout, 1.0) + 5.0}
    return json.dumps(doc, default=str).encode()


def decode_request(body: bytes) -> dict[str, Any] | None:
    """The request, or None for one that is malformed or expired."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("method"), str):
        return None
    if not isinstance(doc.get("arguments"), dict):
        doc["arguments"] = {}
    expires = doc.get("expires")
    if isinstance(expires, (int, float)) and expires < time.time():
        return None
    return doc


def encode_reply(rid: str, node: str, reply: Any) -> bytes:
    return json.dumps({"id": rid, "node": node, "reply": reply}, default=str).encode()


def decode_reply(body: bytes) -> tuple[str, Any] | None:
    try:
        doc = json.loads(body)
        return str(doc["node"]), doc.get("reply")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None


def live_nodes(broker: Broker, expiry: float = DEFAULT_HEARTBEAT_EXPIRY) -> dict[str, str]:
    """Node name -> node id of every node alive by its heartbeat. A name seen twice (a
    node restarted before its old record expired) is the freshest record; periodic-task
    schedulers heartbeat too but take no control messages."""
    found: dict[str, tuple[float, str]] = {}
    for record in broker.control_nodes(expiry):
        name = record.info.get("name")
        if not isinstance(name, str) or record.info.get("kind") == "beat":
            continue
        if name not in found or found[name][0] < record.heartbeat:
            found[name] = (record.heartbeat, record.node_id)
    return {name: node_id for name, (_, node_id) in sorted(found.items())}
