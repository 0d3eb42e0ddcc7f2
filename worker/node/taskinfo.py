"""What a delivery's envelope tells the task: its request, limits and options, and how
its failures are shown (traceback from the task's own frame, short log texts).

Pure functions of the envelope and the consumer's runtime, kept apart from execute.py
so the path from claim to ack reads in one place there.
"""

from __future__ import annotations

import math
import os
import traceback
from typing import TYPE_CHECKING, Any

from qmulti import protocol
from qmulti.brokers.base import Delivery
from qmulti.request import ExceptionInfo, Request

if TYPE_CHECKING:
    from qmulti.node.execute import Runtime


def limit(env: protocol.Envelope, task: Any, name: str, default: float | None) -> float | None:
    """The message's own limit first; raises for one that is not a positive number (the
    message comes from outside: a producer bug or a hostile sender)."""
    for value in (env.options.get(name), getattr(task, name, None), default):
        if value:
            seconds = float(value)
            if not math.isfinite(seconds) or seconds <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
            return seconds
    return None


def own(task: Any, option: str, node_default: bool) -> bool:
    """A task's own option (None: not set) else the app's setting."""
    value = getattr(task, option, None)
    return node_default if value is None else bool(value)


def extended(rt: Runtime, env: protocol.Envelope, delivery: Delivery) -> dict[str, Any] | None:
    if not rt.extended:
        return None
    return {"name": env.task, "args": list(env.args), "kwargs": dict(env.kwargs),
            "worker": rt.hostname, "queue": env.queue or delivery.queue}


def request_for(rt: Runtime, delivery: Delivery, env: protocol.Envelope) -> Request:
    info = {"queue": delivery.queue, "routing_key": delivery.queue, "mid": delivery.mid,
            "deliveries": delivery.deliveries + 1}
    return Request(id=env.id, task=env.task, retries=env.retries, args=list(env.args),
                   kwargs=dict(env.kwargs), delivery_info=info, hostname=rt.hostname,
                   eta=env.eta, expires=env.expires, called_directly=False,
                   root_id=env.root_id or env.id, parent_id=env.parent_id)


def exception_info(exc: BaseException, tb: str) -> ExceptionInfo:
    return ExceptionInfo(exc, type(exc), tb)


def format_traceback(exc: BaseException) -> str:
    """The remote traceback as the caller sees it: from the task's own code down, without
    the node's frames above it (they are the same for every task)."""
    tb = exc.__traceback__
    here = os.path.dirname(os.path.abspath(__file__))
    while tb is not None and tb.tb_next is not None and \
            os.path.dirname(os.path.abspath(tb.tb_frame.f_code.co_filename)) == here:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def result_ttl(conf: Any) -> float | None:
    value = getattr(conf, "result_expires", None)
    if value is None:
        return None
    seconds = value.total_seconds() if hasattr(value, "total_seconds") else float(value)
    return seconds if seconds > 0 else None
