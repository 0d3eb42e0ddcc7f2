"""Run one claimed delivery to its outcome: decode, refuse, run, store, ack.

Pure of pool concerns, so prefork children, the threads pool and `-P solo` share it;
the caller passes `Hooks` to learn when a task begins and ends (status pipe, process
title, soft time limit). Every path ends the delivery one way or another (finish,
reschedule, dead-letter or nack) so that a consumer never holds a lease it forgot.
Results are stored before the ack (`broker.finish`), so a crash in between re-runs
the task rather than losing its result.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from qmulti import protocol
from qmulti.brokers.base import LOST, REVOKED_MARK, Broker, Delivery, ResultBackend
from qmulti.exceptions import (
    ContentDisallowed,
    Ignore,
    MalformedMessage,
    NotRegistered,
    Reject,
    Retry,
    SoftTimeLimitExceeded,
    TaskRevokedError,
    TimeLimitExceeded,
)
from qmulti.node import continuations
from qmulti.node.ratelimit import RateLimiter
from qmulti.node.retry import retrying as _retrying
from qmulti.node.retry import settle
from qmulti.node.taskinfo import exception_info as _exception_info
from qmulti.node.taskinfo import extended as _extended
from qmulti.node.taskinfo import format_traceback
from qmulti.node.taskinfo import limit as _limit
from qmulti.node.taskinfo import own as _own
from qmulti.node.taskinfo import request_for as _request
from qmulti.node.taskinfo import short as _short
from qmulti.states import FAILURE, RETRY, REVOKED, STARTED, SUCCESS

# What `execute` returns when the message's lease was taken back before the task began
# (its node was judged dead): the task is not run here; the node that leased it since runs it.
LOST_LEASE = "LOST"

__all__ = ["LOST_LEASE", "Hooks", "RateLimiter", "Running", "Runtime", "execute",
           "format_traceback", "store_time_limit"]


@dataclass
class Runtime:
    """What executing needs, one per consumer (pool child or thread)."""

    app: Any
    broker: Broker
    backend: ResultBackend | None
    hostname: str  # the node's name, w1@host
    accept: frozenset[str]
    result_ct: str = "json"
    ttl: float | None = None
    time_limit: float | None = None  # node defaults; a task's own limits win
    soft_time_limit: float | None = None
    log: logging.Logger = dataclasses.field(default_factory=lambda: logging.getLogger("qmulti"))
    limiter: RateLimiter = dataclasses.field(default_factory=lambda: RateLimiter())
    ignore_result: bool = False  # task_ignore_result: a task's own option wins
    store_errors: bool = False  # task_store_errors_even_if_ignored, likewise
    extended: bool = False  # result_extended: name, args, kwargs, worker, queue stored


@dataclass(frozen=True)
class Running:
    """The task a consumer has begun, as the node main process needs to see it."""

    mid: str
    queue: str
    task_id: str
    name: str
    time_limit: float | None
    soft_time_limit: float | None
    token: str = ""  # the lease's, so the node can settle the message for a killed child


class Hooks(Protocol):
    def reserved(self, broker: Any, batch: Sequence[Delivery]) -> None:
        """A batch was claimed (see pipehooks.py)."""

    def begin(self, running: Running) -> None:
        """The task is about to run (after STARTED was stored)."""

    def returned(self) -> None:
        """The task function returned or raised (disarm soft limits here)."""

    def end(self) -> None:
        """The outcome is stored and the message is gone."""


def execute(rt: Runtime, delivery: Delivery, hooks: Hooks) -> str:
    """Process one delivery; returns the final state, or "DEAD" when dead-lettered."""
    try:
        env = protocol.decode_envelope(delivery.body, rt.accept)
    except (MalformedMessage, ContentDisallowed) as exc:
        return _refuse_undecodable(rt, delivery, exc)
    except RecursionError:  # nested deeper than the decoder's stack: it would crash us
        return _refuse_undecodable(rt, delivery,
                                   MalformedMessage("cannot decode message: nested too deeply"))
    task = rt.app.tasks.get(env.task)
    if task is None:
        return _refuse_unregistered(rt, delivery, env)
    try:
        # Checked before the task begins: a bad option must not crash the child, nor
        # count as a delivery that killed it.
        limits = (_limit(env, task, "time_limit", rt.time_limit),
                  _limit(env, task, "soft_time_limit", rt.soft_time_limit))
    except (AttributeError, TypeError, ValueError) as exc:
        return _refuse_undecodable(rt, delivery,
                                   MalformedMessage(f"bad options in message {env.id}: {exc}"))
    request = _request(rt, delivery, env)
    if env.expires is not None and env.expires < time.time():
        rt.log.info("Task %s[%s] expired before it ran; not running it", env.task, env.id)
        state = _revoke(rt, delivery, env, "expired")
        _emit(rt, "on_revoked", task, request, True)
        return state
    # A start that sees the REVOKED mark (Redis as its own backend, or as an amqp://
    # broker's) saves a round trip per task; otherwise the mark is read here.
    sees_mark = (rt.broker.start_sees_revoked(rt.backend)
                 and not _own(task, "ignore_result", rt.ignore_result))
    if not sees_mark and _is_revoked(rt, env.id):
        return _skip_revoked(rt, delivery, env, task, request)
    _emit(rt, "on_received", rt, request)
    rt.limiter.wait(env.task, getattr(task, "rate_limit", None))
    return _run(rt, delivery, env, task, hooks, limits, request)


def _skip_revoked(rt: Runtime, delivery: Delivery, env: protocol.Envelope, task: Any,
                  request: Any) -> str:
    rt.log.info("Task %s[%s] was revoked; not running it", env.task, env.id)
    # The REVOKED mark is the result; keep it as stored. A chord member still counts.
    then = continuations.revoked(env)
    settle(rt, f"Revoked task {env.id}", lambda: rt.broker.ack([delivery]) if then is None
           else rt.broker.finish(delivery, env.id, REVOKED, None, None, rt.ttl, then))
    _emit(rt, "on_revoked", task, request, False)
    return REVOKED


def _emit(rt: Runtime, hook: str, *args: Any) -> None:
    """One middleware hook (worker/middleware.py): observes only, never raises."""
    stack = rt.app.middleware
    if stack.executing:  # nothing installed, no receiver: no more work per task
        stack.emit(hook, rt.app, *args)


def _after(rt: Runtime, task: Any, request: Any, state: str, retval: Any,
           einfo: Any = None) -> None:
    """After the outcome is stored and acked: `after_return` for a success or failure
    (as Celery: not for a retry or reject), then the `after_execute` hooks."""
    if state in (SUCCESS, FAILURE):
        _handler(rt, task, "after_return", state, retval, request.id, request.args,
                 request.kwargs, einfo)
    _emit(rt, "after_execute", task, request, retval, state)


def _is_revoked(rt: Runtime, task_id: str) -> bool:
    """`AsyncResult.revoke()` stores a REVOKED mark in the backend before the task runs."""
    if rt.backend is None:
        return False
    backend = rt.backend
    # Retried like a write: a broker outage here must not crash the child.
    blob = _retrying(rt, lambda: backend.get(task_id))
    if blob is None:
        return False
    try:
        return protocol.decode_result(blob, rt.accept).get("status") == REVOKED
    except Exception:
        return False




def _run(rt: Runtime, delivery: Delivery, env: protocol.Envelope, task: Any,
         hooks: Hooks, limits: tuple[float | None, float | None], request: Any) -> str:
    _emit(rt, "before_execute", task, request)
    started = protocol.encode_result(env.id, STARTED, {"pid": os.getpid(),
                                     "hostname": rt.hostname}, retries=env.retries,
                                     node=rt.hostname)
    backend = None if _own(task, "ignore_result", rt.ignore_result) else rt.backend
    begun = _retrying(rt, lambda: rt.broker.start(delivery, env.id, started, backend, rt.ttl))
    if begun == REVOKED_MARK:
        return _skip_revoked(rt, delivery, env, task, request)
    if begun == LOST:
        rt.log.info("Task %s[%s] not run here: its lease was taken back before it began "
                    "(this node was judged dead); the node holding it now runs it",
                    env.task, env.id)
        return LOST_LEASE
    running = Running(delivery.mid, delivery.queue, env.id, env.task, *limits,
                      token=delivery.token)
    hooks.begin(running)
    args, kwargs = list(env.args), dict(env.kwargs)
    fixups = getattr(rt.app, "fixups", None) or ()
    for fixup in fixups:  # Django: close stale database connections
        fixup.on_task_prerun()
    began = time.monotonic()
    try:
        try:
            if env.options and "chord_results" in env.options:  # a chord body
                args = continuations.chord_args(rt, env, args)
            retval = task.execute(request, args, kwargs)
        finally:
            hooks.returned()
            for fixup in fixups:
                fixup.on_task_postrun()
    except Retry as exc:
        return _retry(rt, delivery, env, task, exc, hooks, request)
    except Reject as exc:
        hooks.end()
        state = _reject(rt, delivery, env, exc)
        _emit(rt, "on_reject", rt, delivery, exc, request)
        _emit(rt, "after_execute", task, request, exc, "REJECTED")
        return state
    except Ignore as exc:
        rt.log.info("Task %s[%s] ignored", env.task, env.id)
        then = None if getattr(exc, "sig", None) is None else continuations.replaced(
            rt, env, exc.sig)  # type: ignore[attr-defined]
        settle(rt, f"Task {env.task}[{env.id}]",
               lambda: rt.broker.finish(delivery, env.id, "IGNORED", None, None, rt.ttl,
                                        then))
        hooks.end()
        _emit(rt, "after_execute", task, request, exc, "IGNORED")
        return "IGNORED"
    except Exception as exc:
        runtime = time.monotonic() - began
        if isinstance(exc, SoftTimeLimitExceeded) and _is_revoked(rt, env.id):
            # revoke(terminate=True, signal='USR1'): the task was asked to stop
            rt.log.warning("Task %s[%s] revoked: stopped after %.3fs", env.task, env.id,
                           runtime)
            state = _revoke(rt, delivery, env, "revoked and terminated")
            hooks.end()
            return state
        if backend is None and _own(task, "store_errors_even_if_ignored", rt.store_errors):
            backend = rt.backend
        return _fail(rt, delivery, env, task, exc, runtime, backend, hooks, request)
    runtime = time.monotonic() - began
    try:
        then = continuations.after(rt, env, SUCCESS, retval, request)
    except Exception as exc:  # the next step cannot be sent (its arguments): a failure
        return _fail(rt, delivery, env, task, exc, runtime, backend or rt.backend, hooks,
                     request)
    rt.log.info("Task %s[%s] succeeded in %.3fs: %s", env.task, env.id, runtime,
                _short(repr(retval)))
    _handler(rt, task, "on_success", retval, env.id, args, kwargs)
    _emit(rt, "on_success", task, request, retval)
    meta = None if backend is None else protocol.encode_result(
        env.id, SUCCESS, retval, retries=env.retries, node=rt.hostname, ct=rt.result_ct,
        extended=continuations.with_children(_extended(rt, env, delivery), request, then))
    settle(rt, f"Task {env.task}[{env.id}]",
           lambda: rt.broker.finish(delivery, env.id, SUCCESS, meta, backend, rt.ttl, then))
    hooks.end()
    _after(rt, task, request, SUCCESS, retval)
    return SUCCESS


def _fail(rt: Runtime, delivery: Delivery, env: protocol.Envelope, task: Any,
          exc: Exception, runtime: float, backend: ResultBackend | None, hooks: Hooks,
          request: Any) -> str:
    tb = format_traceback(exc)
    rt.log.error("Task %s[%s] raised %s in %.3fs: %s", env.task, env.id, type(exc).__name__,
                 runtime, _short(str(exc)))
    rt.log.debug("%s", tb)
    einfo = _exception_info(exc, tb)
    # Handlers run before the result is visible, so a caller that sees FAILURE also
    # sees what on_failure did (the tutorial's annotation writes to a file).
    _handler(rt, task, "on_failure", exc, env.id, list(env.args), dict(env.kwargs), einfo)
    _emit(rt, "on_failure", task, request, exc, einfo)
    meta = None if backend is None else protocol.encode_result(
        env.id, FAILURE, protocol.exception_to_dict(exc), traceback=tb, retries=env.retries,
        node=rt.hostname, extended=_extended(rt, env, delivery))
    then = continuations.after(rt, env, FAILURE, None, request, exc, tb)
    settle(rt, f"Task {env.task}[{env.id}]",
           lambda: rt.broker.finish(delivery, env.id, FAILURE, meta, backend, rt.ttl, then))
    hooks.end()
    _after(rt, task, request, FAILURE, exc, einfo)
    return FAILURE


def _retry(rt: Runtime, delivery: Delivery, env: protocol.Envelope, task: Any, exc: Retry,
           hooks: Hooks, request: Any) -> str:
    cause = exc.exc if exc.exc is not None else exc
    tb = format_traceback(cause)
    when = exc.when
    delay = getattr(exc, "countdown", None)  # as decided, not as left after the handler
    if delay is None and when is not None:
        delay = max(when - time.time(), 0)
    rt.log.info("Task %s[%s] retry %d%s: %s", env.task, env.id, env.retries + 1,
                "" if delay is None else f" in {delay:.1f}s", _short(str(cause)))
    einfo = _exception_info(cause, tb)
    _handler(rt, task, "on_retry", cause, env.id, list(env.args), dict(env.kwargs), einfo)
    _emit(rt, "on_retry", task, request, exc, einfo)
    again = dataclasses.replace(env, mid=protocol.new_id(), retries=env.retries + 1, eta=when)
    body = protocol.encode_envelope(again)
    if rt.backend is not None:
        meta = protocol.encode_result(env.id, RETRY, protocol.exception_to_dict(cause),
                                      traceback=tb, retries=env.retries, node=rt.hostname)
        backend = rt.backend
        _retrying(rt, lambda: backend.set(env.id, RETRY, meta, rt.ttl))
    queue = env.queue or delivery.queue
    settle(rt, f"Task {env.task}[{env.id}] retry",
           lambda: rt.broker.reschedule(delivery, queue, again.mid, body, when))
    hooks.end()
    _after(rt, task, request, RETRY, exc)
    return RETRY


def _reject(rt: Runtime, delivery: Delivery, env: protocol.Envelope, exc: Reject) -> str:
    if exc.requeue:
        rt.log.warning("Task %s[%s] rejected and requeued: %s", env.task, env.id, exc.reason)
        settle(rt, f"Task {env.task}[{env.id}]", lambda: rt.broker.nack([delivery]))
        return "REQUEUED"
    rt.log.warning("Task %s[%s] rejected; dead-lettered: %s", env.task, env.id, exc.reason)
    settle(rt, f"Task {env.task}[{env.id}]",
           lambda: rt.broker.dead_letter(delivery, f"rejected: {exc.reason}"))
    return "DEAD"


def _refuse_undecodable(rt: Runtime, delivery: Delivery, exc: Exception) -> str:
    reason = str(exc)
    try:
        task_id = protocol.peek_id(delivery.body)
    except RecursionError:
        task_id = None
    rt.log.error("Message %s in queue %s dead-lettered: %s", delivery.mid, delivery.queue,
                 reason)
    if task_id and rt.backend is not None:
        _store_failure(rt, task_id, exc)
    settle(rt, f"Message {delivery.mid}", lambda: rt.broker.dead_letter(delivery, reason))
    _emit(rt, "on_reject", rt, delivery, exc, None)
    return "DEAD"


def _refuse_unregistered(rt: Runtime, delivery: Delivery, env: protocol.Envelope) -> str:
    reason = (f"task {env.task!r} is not registered on node {rt.hostname}; import its module "
              "on the node (the app's imports / CELERY_IMPORTS, or the -A module)")
    rt.log.error("Received unregistered task %s[%s]; dead-lettered: %s", env.task, env.id,
                 reason)
    exc = NotRegistered(reason)
    if rt.backend is not None:
        _store_failure(rt, env.id, exc)
    settle(rt, f"Message {delivery.mid}", lambda: rt.broker.dead_letter(delivery, reason))
    _emit(rt, "on_unknown", rt, delivery, env.task, env.id, exc)
    return "DEAD"


def _store_failure(rt: Runtime, task_id: str, exc: Exception) -> None:
    """A FAILURE for a message that will never run, so the caller's get() does not hang."""
    assert rt.backend is not None
    meta = protocol.encode_result(task_id, FAILURE, protocol.exception_to_dict(exc),
                                  node=rt.hostname)
    try:
        rt.backend.set(task_id, FAILURE, meta, rt.ttl)
    except Exception as err:  # the dead-letter still happens; the log says why
        rt.log.error("Could not store FAILURE for %s: %s", task_id, err)


def _revoke(rt: Runtime, delivery: Delivery, env: protocol.Envelope, why: str) -> str:
    meta = protocol.encode_result(env.id, REVOKED,
                                  protocol.exception_to_dict(TaskRevokedError(why)),
                                  retries=env.retries, node=rt.hostname)
    backend, then = rt.backend, continuations.revoked(env)
    settle(rt, f"Task {env.task}[{env.id}]",
           lambda: rt.broker.finish(delivery, env.id, REVOKED, meta, backend, rt.ttl, then))
    return REVOKED


def store_time_limit(broker: Broker, backend: ResultBackend | None, running: Running,
                     node: str, ttl: float | None) -> None:
    """The node main process's verdict on a child it killed for its hard time limit:
    FAILURE stored and the message acked, so the task does not run again."""
    exc = TimeLimitExceeded(f"task {running.name} ran past its time limit of "
                            f"{running.time_limit:g}s")
    meta = protocol.encode_result(running.task_id, FAILURE, protocol.exception_to_dict(exc),
                                  traceback=f"TimeLimitExceeded: {exc}\n", node=node)
    delivery = Delivery(running.mid, running.queue, b"", 0, running.token)
    broker.finish(delivery, running.task_id, FAILURE, meta, backend, ttl)


def _handler(rt: Runtime, task: Any, name: str, *args: Any) -> None:
    handler = getattr(task, name, None)
    if handler is None:
        return
    try:
        handler(*args)
    except Exception:
        rt.log.exception("%s handler of task %s raised (ignored)", name,
                         getattr(task, "name", "?"))
