"""`revoke(terminate=True, signal=...)`: stopping a task that is running now.

`AsyncResult.revoke(terminate=True)` stores the REVOKED mark with the signal asked
for (`"terminate": "TERM"`). While any child runs a task, the node main process looks
up the running tasks' results every POLL seconds; a task whose mark asks for
termination gets its child signalled, once:

- TERM, KILL (and any other ending signal): the child is killed and replaced; the
  main process then stores REVOKED and acks the message, as for a hard time limit.
  (Pool children ignore TERM so that a TERM to the whole process group is a warm stop
  of the node; Celery's TERM kills its pool process just the same.)
- USR1: Celery's soft time-limit signal: SoftTimeLimitExceeded is raised inside the
  task (our children raise it on SIGALRM), so it can clean up; the child stores
  REVOKED itself and runs on.
No broker change is needed: the mark is the request, wherever the task runs.
"""

from __future__ import annotations

import signal
from typing import Any

from qmulti import protocol
from qmulti.brokers.base import Broker, Delivery, ResultBackend
from qmulti.exceptions import TaskRevokedError
from qmulti.states import REVOKED

POLL = 0.25  # seconds between looks at the running tasks' marks: well within 1 s
SOFT = {"USR1", "ALRM"}  # the others end the child


def requested(backend: ResultBackend, task_id: str, accept: frozenset[str]) -> str | None:
    """The signal a REVOKED mark asks to terminate `task_id` with, or None."""
    blob = backend.get(task_id)
    if blob is None:
        return None
    try:
        doc = protocol.decode_result(blob, accept)
    except Exception:
        return None
    if doc.get("status") != REVOKED or not doc.get("terminate"):
        return None
    return str(doc["terminate"])


def os_signal(name: str) -> int:
    """What the main process sends the child for a requested signal name."""
    return signal.SIGALRM if name in SOFT else signal.SIGKILL


def store_terminated(broker: Broker, backend: ResultBackend | None, running: Any,
                     node: str, ttl: float | None) -> None:
    """The main process's verdict on a child it killed for a revoke: REVOKED stored and
    the message acked, so the task does not run again."""
    exc = TaskRevokedError(f"task {running.task_id} was revoked and terminated")
    meta = protocol.encode_result(running.task_id, REVOKED, protocol.exception_to_dict(exc),
                                  node=node)
    broker.finish(Delivery(running.mid, running.queue, b"", 0), running.task_id, REVOKED,
                  meta, backend, ttl)
