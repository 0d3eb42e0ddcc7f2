"""`task.apply()`: run a task in the caller as a node would, and hand back an EagerResult.

This is what `task_always_eager` (tests, and projects run without a node) turns
`delay()` into. As in Celery, the task gets a request (`is_eager`, `called_directly`
False), its handlers run, a retry runs it again at once with `retries + 1` (a
countdown would only slow tests down), and nothing is written to the result backend.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from qmulti import appstate, states
from qmulti.exceptions import Ignore, Reject, Retry
from qmulti.protocol import new_id
from qmulti.request import ExceptionInfo, Request
from qmulti.result import EagerResult

if TYPE_CHECKING:
    from qmulti.task import Task


def apply(task: Task, args: Any = None, kwargs: Any = None, task_id: str | None = None,
          retries: int | None = None, throw: bool | None = None,
          **options: Any) -> EagerResult:
    args = tuple(args or ())
    kwargs = dict(kwargs or {})
    task_id = task_id or new_id()
    if throw is None:
        throw = bool(task.app.conf.task_eager_propagates)
    parent = appstate.running_request.get()
    root_id = (parent.root_id or parent.id) if parent is not None else task_id
    tries = retries or 0
    while True:
        request = Request(
            id=task_id, task=task.name, retries=tries, args=args, kwargs=kwargs,
            delivery_info={"is_eager": True, "queue": options.get("queue")},
            hostname=socket.gethostname(), called_directly=False, is_eager=True,
            root_id=root_id, parent_id=None if parent is None else parent.id,
            ignore_result=bool(options.get("ignore_result", False)))
        try:
            retval = task.execute(request, args, kwargs)
        except Retry as exc:
            task.on_retry(exc.exc or exc, task_id, args, kwargs, _einfo(exc.exc or exc))
            tries += 1
            continue
        except Ignore as exc:
            replacement = getattr(exc, "sig", None)
            if replacement is not None:  # Task.replace: the replacement's outcome is ours
                from qmulti.canvas_eager import run

                return run(replacement.set(**_canvas(options)))
            return EagerResult(task_id, exc, states.IGNORED, name=task.name)
        except Reject as exc:
            return EagerResult(task_id, exc, states.REJECTED, name=task.name)
        except Exception as exc:
            einfo = _einfo(exc)
            task.on_failure(exc, task_id, args, kwargs, einfo)
            task.after_return(states.FAILURE, exc, task_id, args, kwargs, einfo)
            if _canvas(options):
                _errbacks(request, exc, einfo, options)
            if throw:
                raise
            return EagerResult(task_id, exc, states.FAILURE, traceback=einfo.traceback,
                               name=task.name)
        task.on_success(retval, task_id, args, kwargs)
        task.after_return(states.SUCCESS, retval, task_id, args, kwargs, None)
        if _canvas(options):
            from qmulti.canvas_eager import after

            after(task_id, states.SUCCESS, retval, options)
        return EagerResult(task_id, retval, states.SUCCESS, name=task.name)


def _einfo(exc: BaseException) -> ExceptionInfo:
    return ExceptionInfo(exc, type(exc))


def _canvas(options: dict[str, Any]) -> dict[str, Any]:
    return {k: options[k] for k in ("link", "link_error", "chain") if options.get(k)}


def _errbacks(request: Request, exc: BaseException, einfo: ExceptionInfo,
              options: dict[str, Any]) -> None:
    from qmulti.canvas_base import signature
    from qmulti.canvas_eager import run
    from qmulti.canvas_options import sig_list, takes_request

    for eb in sig_list(options.get("link_error")):
        sig = signature(eb)
        if takes_request(sig):
            sig(request, exc, einfo.traceback)
        else:
            run(sig, (request.id,))
