"""`Middleware`: observe publishing, node and process life, and every task's outcome.

A middleware is a class whose hooks are no-ops until overridden (Dramatiq's shape).
`app.add_middleware(obj)` or the `middleware` setting (instances, classes or dotted
paths such as `'proj.hooks:Metrics'`) installs it; Celery's signals are one built-in
middleware (`qmulti.signals`), so every hook takes the same path.

Hooks only observe. `Stack.emit` runs "before" hooks in installation order and the
rest in reverse (the first installed wraps the others), and a hook that raises is
logged with its name and the exception (the traceback the first time that hook fails
in a process) and never reaches the caller: it cannot change "store the result, then
acknowledge", nor lose a task.

Where each hook runs (process and moment):

| hook | process | when |
|---|---|---|
| `before_publish(app, message)` / `after_publish` | the sender | around `broker.publish` |
| `node_init(app, node)` | node main | after the app is loaded, before connecting |
| `node_ready(app, node)` | node main | consuming, just before READY=1 |
| `node_shutdown(app, node)` | node main | after the last child is gone |
| `process_start(app, consumer)` | each consumer: pool child, or thread (threads/solo) | first |
| `process_stop(app, consumer, exitcode)` | the same | last |
| `on_received(app, consumer, request)` | the consumer | a known, live task is about to run |
| `before_execute(app, task, request)` | the consumer | before STARTED is stored |
| `on_success(app, task, request, retval)` etc. | the consumer | before the outcome is stored |
| `after_execute(app, task, request, retval, state)` | the consumer | after it is stored and acked |
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from qmulti.exceptions import ConfigError

log = logging.getLogger("qmulti.middleware")


@dataclass(frozen=True)
class Outgoing:
    """A task message as the publish hooks see it (built only when a hook wants it)."""

    task: str
    id: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    queue: str
    eta: float | None = None  # unix time
    expires: float | None = None
    retries: int = 0
    content_type: str = "json"
    options: dict[str, Any] = field(default_factory=dict)
    message_id: str = ""


class Middleware:
    """Override the hooks you need; every one is a no-op here. Arguments are passed
    positionally in the order shown, so a hook may name them as it likes."""

    # -- the sender ----------------------------------------------------------------------
    def before_publish(self, app: Any, message: Outgoing) -> None:
        """The message is encoded and about to be published."""

    def after_publish(self, app: Any, message: Outgoing) -> None:
        """The broker accepted the message."""

    # -- the node main process -----------------------------------------------------------
    def node_init(self, app: Any, node: Any) -> None:
        """The node is set up (app loaded, logging on) and about to connect and fork."""

    def node_ready(self, app: Any, node: Any) -> None:
        """The node consumes; READY=1 follows."""

    def node_shutdown(self, app: Any, node: Any) -> None:
        """The node stopped: its children are gone and its leases given back."""

    # -- each consumer (pool child, or consumer thread) ------------------------------------
    def process_start(self, app: Any, consumer: Any) -> None:
        """A consumer starts, before its first claim: open per-process resources here."""

    def process_stop(self, app: Any, consumer: Any, exitcode: int) -> None:
        """A consumer leaves (not called when it is killed)."""

    def on_received(self, app: Any, consumer: Any, request: Any) -> None:
        """A claimed message names a registered task that is neither expired nor revoked."""

    def before_execute(self, app: Any, task: Any, request: Any) -> None:
        """The task is about to run."""

    def after_execute(self, app: Any, task: Any, request: Any, retval: Any,
                      state: str) -> None:
        """The task's outcome (any state) is stored and its message acknowledged."""

    def on_success(self, app: Any, task: Any, request: Any, retval: Any) -> None:
        """The task returned; its result is stored next."""

    def on_failure(self, app: Any, task: Any, request: Any, exc: BaseException,
                   einfo: Any) -> None:
        """The task raised (not a retry); FAILURE is stored next."""

    def on_retry(self, app: Any, task: Any, request: Any, reason: BaseException,
                 einfo: Any) -> None:
        """The task asked to be retried; it is rescheduled next."""

    def on_reject(self, app: Any, consumer: Any, message: Any, exc: BaseException,
                  request: Any) -> None:
        """A message is refused without an outcome: undecodable (`request` is None) or the
        task raised `Reject`."""

    def on_revoked(self, app: Any, task: Any, request: Any, expired: bool) -> None:
        """A revoked or expired task is dropped without running."""

    def on_unknown(self, app: Any, consumer: Any, message: Any, name: str, task_id: str,
                   exc: BaseException) -> None:
        """A message names a task this node does not have; it is dead-lettered."""

    def active_hooks(self) -> Iterable[str]:
        """The hooks to call; by default those this class overrides. A middleware whose
        needs change at run time (the signals one) answers from its state."""
        base = Middleware
        return [h for h in HOOKS if getattr(type(self), h) is not getattr(base, h)]


# hook name -> the number of positional arguments after `self` (checked at load time)
HOOKS: dict[str, int] = {
    name: len(inspect.signature(getattr(Middleware, name)).parameters) - 1
    for name in ("before_publish", "after_publish", "node_init", "node_ready",
                 "node_shutdown", "process_start", "process_stop", "on_received",
                 "before_execute", "after_execute", "on_success", "on_failure", "on_retry",
                 "on_reject", "on_revoked", "on_unknown")
}
# Run in installation order; every other hook runs in reverse (the outermost last).
BEFORE_HOOKS = frozenset({"before_publish", "node_init", "process_start", "on_received",
                          "before_execute"})


class Stack:
    """An app's middleware, with each hook's implementations found once.

    `publishing` / `executing` let a hot path skip building hook arguments when no
    middleware wants them; `stamp` says what the stack was built under (see App)."""

    def __init__(self, middleware: Sequence[Middleware], stamp: object = None) -> None:
        self.middleware = tuple(middleware)
        self.stamp = stamp
        self._hooks: dict[str, tuple[tuple[str, Any], ...]] = {}
        self._failed: set[str] = set()
        for mw in self.middleware:
            wanted = set(mw.active_hooks())
            for hook in HOOKS:
                if hook in wanted:
                    entry = (_name(mw, hook), getattr(mw, hook))
                    self._hooks[hook] = (*self._hooks.get(hook, ()), entry)
        for hook in set(self._hooks) - BEFORE_HOOKS:
            self._hooks[hook] = tuple(reversed(self._hooks[hook]))
        self.publishing = bool(self._hooks.get("before_publish")
                               or self._hooks.get("after_publish"))
        self.executing = any(h not in ("before_publish", "after_publish", "node_init",
                                       "node_ready", "node_shutdown") for h in self._hooks)

    def wants(self, hook: str) -> bool:
        return hook in self._hooks

    def emit(self, hook: str, *args: Any) -> None:
        """Call `hook` on each middleware that has it; never raises."""
        for name, fn in self._hooks.get(hook, ()):
            try:
                fn(*args)
            except Exception as exc:
                report(log, name, exc, self._failed)


def report(logger: logging.Logger, name: str, exc: BaseException, failed: set[str]) -> None:
    """Log a raising hook once per failure, with its name; its traceback only the first
    time it fails in this process, so a hook broken for every task cannot flood the log."""
    first = name not in failed
    failed.add(name)
    logger.error("Hook %s raised %s: %s (ignored)", name, type(exc).__name__, exc,
                 exc_info=exc if first else None)


def _name(mw: Middleware, hook: str) -> str:
    cls = type(mw)
    return f"{cls.__module__}.{cls.__qualname__}.{hook}"


def load(spec: Any) -> Middleware:
    """A setting's entry (instance, class or dotted path) -> a checked instance; a wrong
    one is a ConfigError naming it, so the node exits 78 at start, not at the first task."""
    obj = _import(spec) if isinstance(spec, str) else spec
    if isinstance(obj, type) and issubclass(obj, Middleware):
        try:
            obj = obj()
        except TypeError as exc:
            raise ConfigError(f"middleware {spec!r} cannot be made without arguments: "
                              f"{exc}") from None
    if not isinstance(obj, Middleware):
        raise ConfigError(f"middleware {spec!r} is not a qmulti.middleware.Middleware "
                          f"(got {type(obj).__name__})")
    check(obj)
    return obj


def check(mw: Middleware) -> None:
    """Each overridden hook must accept the arguments the node will pass."""
    for hook in mw.active_hooks():
        count = HOOKS.get(hook)
        if count is None:
            continue
        try:
            inspect.signature(getattr(mw, hook)).bind(*range(count))
        except TypeError as exc:
            raise ConfigError(f"middleware {_name(mw, hook)} cannot take the {count} "
                              f"argument(s) of {hook}: {exc}") from None
        except ValueError:  # no signature to check (a builtin): trust it
            continue


def _import(path: str) -> Any:
    module_name, colon, attr = path.partition(":")
    if not colon:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"middleware {path!r} is not a dotted path such as "
                          "'pkg.module:Class'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"cannot load middleware {path!r}: no module named "
                          f"{exc.name or module_name!r}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"cannot load middleware {path!r}: {module_name} has no "
                              f"attribute {part!r}") from None
    return obj


class Registry:
    """What one App installs: the built-in middleware, then the `middleware` setting's,
    then `add_middleware`'s, in that order."""

    def __init__(self) -> None:
        self.added: list[Middleware] = []

    def add(self, mw: Any) -> Middleware:
        obj = load(mw)
        self.added.append(obj)
        return obj

    def build(self, builtin: Sequence[Middleware], setting: Sequence[Any],
              stamp: object) -> Stack:
        return Stack([*builtin, *(load(s) for s in setting), *self.added], stamp)
