"""Publishing: `send_task` and the per-task plan that keeps `delay()` cheap.

Every check (arguments, serializer, route, eta, options) happens before anything is
sent, so a bad call raises in the caller and publishes nothing. The resolved parts that
only settings decide are kept on the task (`_publish_plan`) with the settings
generation they were made under, so the hot path does one identity test per call.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from qmulti import appstate
from qmulti.canvas_options import CANVAS_OPTIONS, CONTINUES, canvas_options
from qmulti.exceptions import ContentDisallowed, NotRegistered
from qmulti.middleware import Outgoing
from qmulti.protocol import encode_message, new_id, normalize_content_type
from qmulti.result import AsyncResult
from qmulti.signals import Signal
from qmulti.task import Task

if TYPE_CHECKING:
    from qmulti.brokers.base import Message
    from qmulti.config import Config

# apply_async options Celery users pass that mean nothing on our brokers: accepted so
# that shared code runs, and ignored.
_IGNORED_OPTIONS = frozenset({"routing_key", "exchange", "priority", "headers", "compression"})
_PER_CALL_LIMITS = ("time_limit", "soft_time_limit")


class Sending:
    """Mixin of `App`: turning a call into a published message."""

    conf: Config
    tasks: Any
    broker: Any
    _stack: Any

    def send_task(self, name: str, args: Any = None, kwargs: Any = None, *,
                  countdown: float | None = None, eta: datetime | float | None = None,
                  expires: datetime | float | None = None, queue: str | None = None,
                  task_id: str | None = None, serializer: str | None = None,
                  retries: int = 0, check: bool = False, task: Task | None = None,
                  root_id: str | None = None, parent_id: str | None = None,
                  **options: Any) -> AsyncResult:
        """Publish a task message; every check happens here, before anything is sent.

        `name` need not be a task this process knows: decoupled producers send by name,
        and a node that does not know it either stores a FAILURE and dead-letters it
        (`check=True` refuses an unknown name here instead).
        `countdown` seconds or `eta` (datetime, or unix time) delays it in the broker;
        `expires` (seconds from now, or a datetime) makes a late message REVOKED, not run.
        `queue`: explicit, else `task_routes`, else the task's `queue`, else
        `task_default_queue`. `time_limit`/`soft_time_limit` travel in the envelope's
        options for the node. Sent from a running task, the message names it as parent.
        Only `task.apply_async` (which passes `task`) honours `task_always_eager`, as in
        Celery."""
        from_task = task is not None
        if task is None:
            task = self.tasks.get(name)
            if task is None and check:
                raise NotRegistered(
                    f"unknown task {name!r}; is the module that defines it imported? "
                    "(add it to imports/include)")
        args = _as_args(args, name)
        kwargs = _as_kwargs(kwargs, name)
        env_options = self._envelope_options(options) if options else {}
        plan = None if task is None else self._plan(task)
        if from_task and plan is not None and plan[5]:  # task_always_eager
            self._envelope_options(options)
            assert task is not None
            return task.apply(args, kwargs, task_id=task_id, retries=retries, **options)
        if env_options and any(env_options.get(k) for k in CONTINUES):
            self.broker.check_canvas()  # link= on amqp:// with rpc:// only
        queue, mid, task_id, when, expires_at, ct, body = self._encode(
            name, args, kwargs, task, plan, countdown, eta, expires, queue, task_id,
            serializer, retries, root_id, parent_id, env_options)
        stack = self._stack
        if stack is None or stack.stamp != Signal.changes:
            stack = self.middleware
        if stack.publishing:
            out = Outgoing(name, task_id, args, kwargs, queue, when, expires_at, retries, ct,
                           env_options, mid)
            stack.emit("before_publish", self, out)
            self.broker.publish(queue, mid, body, when)
            stack.emit("after_publish", self, out)
        else:
            self.broker.publish(queue, mid, body, when)
        return AsyncResult(task_id, app=self, task_name=name)

    def _encode(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                task: Task | None, plan: tuple[Any, ...] | None, countdown: float | None,
                eta: datetime | float | None, expires: datetime | float | None,
                queue: str | None, task_id: str | None, serializer: str | None,
                retries: int, root_id: str | None, parent_id: str | None,
                env_options: dict[str, Any]) -> tuple[Any, ...]:
        """The message of one call, not sent: (queue, mid, task id, eta, expires, content
        type, body)."""
        if serializer is None and plan is not None and plan[3] is not None:
            ct = plan[3]
        else:
            ct = self._content_type(serializer, task)
        if not queue:
            routed = None if plan is None else plan[4]
            queue = routed if routed is not None else self._route(name, args, kwargs, task)
        when = None if countdown is None and eta is None else self._eta(countdown, eta)
        expires_at = None if expires is None else self._expires(expires)
        if task_id:
            mid = new_id()  # the caller's id may have been published before
        else:
            # An id made here has never been published: it can be this first publish's
            # message id too (a retry republishes under a new one), saving one uuid.
            task_id = mid = new_id()
        parent = appstate.running_request.get()
        if parent is not None and parent_id is None:
            parent_id = parent.id
            root_id = root_id or parent.root_id or parent.id
            parent.children.append(task_id)  # AsyncResult.children of the sender
        body = encode_message(mid, task_id, name, args, kwargs, queue, when, expires_at,
                              retries, ct, env_options, root_id,
                              parent_id)  # SerializationError: nothing sent
        return queue, mid, task_id, when, expires_at, ct, body

    def compose(self, name: str, args: Any = None, kwargs: Any = None, *,
                countdown: float | None = None, eta: datetime | float | None = None,
                expires: datetime | float | None = None, queue: str | None = None,
                task_id: str | None = None, serializer: str | None = None,
                root_id: str | None = None, parent_id: str | None = None,
                **options: Any) -> Message:
        """The message `send_task` would publish, unsent: a canvas continuation, which
        the node publishes in the finish of the task before it (never eager)."""
        from qmulti.brokers.base import Message

        task = self.tasks.get(name)
        args = _as_args(args, name)
        kwargs = _as_kwargs(kwargs, name)
        env_options = self._envelope_options(options) if options else {}
        plan = None if task is None else self._plan(task)
        queue, mid, _, when, _, _, body = self._encode(
            name, args, kwargs, task, plan, countdown, eta, expires, queue, task_id,
            serializer, 0, root_id, parent_id, env_options)
        return Message(queue, mid, body, when)

    def _plan(self, task: Task) -> tuple[Any, ...]:
        """`(generation, task.queue, task.serializer, content type, queue, always eager)`
        for `task`,
        resolved again only when the settings or those two attributes have changed.

        A part that fails to resolve (or whose queue a router function must decide) is
        None, and `send_task` resolves it per call, so it raises exactly where and when
        it did before this cache: only for a call that needs it."""
        plan = task._publish_plan
        # Read before anything it covers (see Config.generation): a concurrent change
        # can make a plan stale, never wrongly current.
        generation = self.conf.generation
        if (plan is not None and plan[0] is generation and plan[1] is task.queue
                and plan[2] is task.serializer):
            return plan
        own_queue, own_serializer = task.queue, task.serializer
        try:
            ct: str | None = self._content_type(own_serializer, task)
        except Exception:
            ct = None
        queue: str | None = None
        try:
            router = self.router
            if router.by_name_only:
                route = router.route(task.name, task=task)
                queue = str(route.get("queue") or own_queue or self.conf.task_default_queue)
        except Exception:
            queue = None
        plan = (generation, own_queue, own_serializer, ct, queue,
                bool(self.conf.task_always_eager))
        task._publish_plan = plan
        return plan

    def _envelope_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        unknown = set(options) - _IGNORED_OPTIONS - set(_PER_CALL_LIMITS) - CANVAS_OPTIONS
        if unknown:
            raise TypeError(f"apply_async() got unsupported options: {', '.join(sorted(unknown))}")
        out = {k: float(options[k]) for k in _PER_CALL_LIMITS if options.get(k) is not None}
        if not CANVAS_OPTIONS.isdisjoint(options):
            out.update(canvas_options(options))
        return out

    def _content_type(self, serializer: str | None, task: Task | None) -> str:
        name = serializer or (task.serializer if task else None) or self.conf.task_serializer
        ct = normalize_content_type(name)
        if ct == "pickle" and "pickle" not in self.accept_content():
            raise ContentDisallowed(
                "refusing to send a pickle message: pickle runs arbitrary code when loaded. "
                "To opt in, add 'pickle' to accept_content on producers and nodes, e.g. "
                "app.conf.accept_content = ['json', 'pickle'], and only if every producer "
                "is trusted")
        return ct

    def _route(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
               task: Task | None) -> str:
        route = self.router.route(name, args, kwargs, task=task)
        queue = route.get("queue") or (task.queue if task else None)
        return str(queue or self.conf.task_default_queue)

    def _eta(self, countdown: float | None, eta: datetime | float | None) -> float | None:
        if countdown is not None and eta is not None:
            raise ValueError("give countdown or eta, not both")
        if countdown is not None:
            return time.time() + float(countdown)
        return None if eta is None else self._timestamp(eta)

    def _expires(self, expires: datetime | float | None) -> float | None:
        if expires is None:
            return None
        if isinstance(expires, datetime):
            return self._timestamp(expires)
        return time.time() + float(expires)

    def _timestamp(self, when: datetime | float) -> float:
        """Unix time; a naive datetime is UTC when `enable_utc` (Celery's default), else
        in `timezone` (or local time when none is set)."""
        if not isinstance(when, datetime):
            return float(when)
        if when.tzinfo is None:
            if self.conf.enable_utc:
                when = when.replace(tzinfo=timezone.utc)
            elif self.conf.timezone:
                from zoneinfo import ZoneInfo

                when = when.replace(tzinfo=ZoneInfo(self.conf.timezone))
        return when.timestamp()


def _as_args(args: Any, name: str) -> tuple[Any, ...]:
    if args is None:
        return ()
    if isinstance(args, (list, tuple)):
        return tuple(args)
    raise TypeError(f"{name}: args must be a list or tuple, got {type(args).__name__} "
                    "(did you mean apply_async((x,)) instead of apply_async(x)?)")


def _as_kwargs(kwargs: Any, name: str) -> dict[str, Any]:
    if kwargs is None:
        return {}
    if type(kwargs) is dict:  # the usual case, without the slower ABC check
        return dict(kwargs)
    if isinstance(kwargs, Mapping):
        return dict(kwargs)
    raise TypeError(f"{name}: kwargs must be a dict, got {type(kwargs).__name__}")
