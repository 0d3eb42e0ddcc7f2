"""`rpc://`: each result goes to the calling client's own reply queue, as Celery does.

The producer names a reply queue (exclusive to its connection, deleted with it) in the
`reply_to` of every task it sends; the node publishes STARTED and the outcome there, with
the task id as `correlation_id`, before it acks the task. The client keeps what arrives
in memory, so `get()`, `ready()` and `state` work for the process that sent the task.

What it cannot do, by design: another process (or this one after a restart, or a pool
child that forked since) never sees the result; `qmulti result` cannot read it; a result
sent while the client's connection was down is dropped with its queue; a node that has
to store an outcome of a task it no longer holds (a time-limit kill seen by the node's
main process) has no reply queue to send it to. Use a redis:// backend for those.
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict
from typing import Any

import amqp

from qmulti.brokers.base import ResultBackend
from qmulti.states import READY_STATES

log = logging.getLogger(__name__)
KEEP = 10_000  # results remembered per client, oldest dropped first


class RpcBackend(ResultBackend):
    def __init__(self, url: str, broker: Any) -> None:
        self.url = url
        self.broker = broker
        self.queue = f"qmulti.reply.{uuid.uuid4().hex}"
        self._results: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self._listening = ""  # the channel generation our consumer is on
        broker.reply_to = self.queue
        broker.before_publish.append(self._listen)

    def __repr__(self) -> str:
        return "RpcBackend('rpc://')"

    # -- the client side ------------------------------------------------------------------
    def _listen(self, chan: Any) -> None:
        """Declare and consume the reply queue once per channel (it dies with one)."""
        link = self.broker.link
        if self._listening == link.generation:
            return
        chan.queue_declare(self.queue, durable=False, exclusive=True, auto_delete=True)
        chan.basic_consume(self.queue, no_ack=True, callback=self._on_reply)
        self._listening = link.generation

    def _on_reply(self, msg: Any) -> None:
        task_id = str(msg.properties.get("correlation_id") or "")
        state = str((msg.properties.get("application_headers") or {}).get("state") or "")
        body = msg.body if isinstance(msg.body, bytes) else bytes(msg.body)
        self._store(task_id, state, body)

    def _store(self, task_id: str, state: str, blob: bytes) -> None:
        current = self._results.get(task_id)
        if current is not None and current[0] in READY_STATES and not (
                current[0] == "REVOKED" == state):
            return  # a final state stays
        self._results[task_id] = (state, blob)
        self._results.move_to_end(task_id)
        while len(self._results) > KEEP:
            self._results.popitem(last=False)

    def _poll(self, timeout: float) -> None:
        self.broker.link.run(self._listen)
        self.broker.link.drain(timeout)

    def get(self, task_id: str) -> bytes | None:
        found = self._results.get(task_id)
        if found is None or found[0] not in READY_STATES:
            self._poll(0.001)
            found = self._results.get(task_id)
        return None if found is None else found[1]

    def wait(self, task_id: str, timeout: float | None) -> bytes | None:
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            found = self._results.get(task_id)
            if found is not None and found[0] in READY_STATES:
                return found[1]
            remaining = 1.0 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._poll(min(remaining, 1.0))

    def forget(self, task_id: str) -> None:
        self._results.pop(task_id, None)

    # -- the node side --------------------------------------------------------------------
    def reply(self, reply_to: str | None, task_id: str, state: str, blob: bytes) -> None:
        """Send one state to the caller's queue; confirmed before the task is acked."""
        if not reply_to:
            return
        msg = amqp.Message(blob, correlation_id=task_id, delivery_mode=1,
                           application_headers={"state": state})
        self.broker.link.run(
            lambda chan: chan.basic_publish(msg, exchange="", routing_key=reply_to))

    def set(self, task_id: str, state: str, blob: bytes, ttl: float | None) -> None:
        reply_to = self.broker.reply_to_of(task_id)
        if reply_to is not None:
            self.reply(reply_to, task_id, state, blob)
        else:  # our own task (a revoke mark), or one we do not hold: ours to remember
            self._store(task_id, state, blob)
