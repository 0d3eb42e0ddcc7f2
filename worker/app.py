"""`App`: the settings, the task registry, and this process's broker and backend.

An App holds all the state a producer or node needs (no module-level state anywhere),
so two apps in one process never share connections, tasks or settings. Connections
are made on first use and remembered together with the pid that made them: a forked
pool child that touches `app.broker` gets its own connection instead of sharing the
parent's socket or SQLite handle (which corrupts both).

`delay()` is the producer's hot path, so it does no work that only settings decide:
a task's content type and (without router functions) its queue are resolved once and
kept on the task with the `conf.generation` they were resolved under, and the
connections are kept with the pid, generation and environment overrides they were made
under; one identity test per `delay()` finds either still valid, without the lock.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from qmulti import appstate
from qmulti.appconn import Connections
from qmulti.config import Config, Settings
from qmulti.events.sent import SentEvents
from qmulti.exceptions import ConfigError
from qmulti.middleware import Middleware, Registry, Stack
from qmulti.result import AsyncResult, ResultCache
from qmulti.routing import Router, annotations_for, parse_rate
from qmulti.sending import Sending
from qmulti.settings import annotation_list
from qmulti.signals import Signal, SignalsMiddleware
from qmulti.task import Task

if TYPE_CHECKING:
    from qmulti.brokers import Broker, ResultBackend



class App(Sending, Connections):
    """`App(main=None, broker=None, backend=None, include=None, **settings)`.

    `broker`/`backend`/`include` and `**settings` (new-style names) are explicit settings:
    they override a later `config_from_object`, as Celery's constructor arguments do."""

    def __init__(self, main: str | None = None, broker: str | None = None,
                 backend: str | None = None, include: Iterable[str] | None = None,
                 task_cls: type[Task] = Task, set_as_current: bool = True,
                 **settings: Any) -> None:
        self.main = main
        self.task_cls = task_cls
        self.tasks: dict[str, Task] = {}
        self._lock = threading.RLock()
        self._lock_pid = os.getpid()
        self._broker: Broker | None = None
        self._backend: ResultBackend | None = None
        self._conn_key: tuple[Any, ...] | None = None
        # (pid, conf.generation, env overrides, (broker, backend)): the connections may be
        # used without the lock while all three still hold (see `_connections`).
        self._fast: tuple[int, object, tuple[str | None, ...],
                          tuple[Broker, ResultBackend]] | None = None
        # Connections inherited through fork: kept referenced, never closed, because
        # garbage-collecting a SQLite handle in the child would close its file and drop
        # the child's own POSIX locks on the same database.
        self._inherited: list[object] = []
        self._router: tuple[Any, Router] | None = None
        self._result_cache: ResultCache | None = None
        self._hooks = Registry()
        self._stack: Stack | None = None
        self._finalized = (False, False)  # on_after_configure, on_after_finalize sent
        self.on_after_configure = Signal("app.on_after_configure", {"source"})
        self.on_after_finalize = Signal("app.on_after_finalize")
        self._discovery: list[tuple[Any, str | None]] = []  # autodiscover_tasks, for later
        self.fixups: list[Any] = []  # framework fix-ups of this process (qmulti.fixups)
        self.conf = Config(on_change=self._settings_changed)
        explicit = dict(settings)
        if broker is not None:
            explicit["broker_url"] = broker
        if backend is not None:
            explicit["result_backend"] = backend
        if include is not None:
            explicit["include"] = include
        if explicit:
            self.conf.update(explicit)
        appstate.app_created(self, set_as_current)

    # -- configuration ---------------------------------------------------------------------
    def config_from_object(self, obj: Any, namespace: str | None = None,
                           force: bool = True, silent: bool = False) -> None:
        """Read settings from a module name (`'config'`, `'pkg.mod:attr'`), a module, a
        class, a dict or any object. A second call replaces what the first one read."""
        try:
            self.conf.load_object(obj, namespace=namespace)
        except ConfigError:
            if not silent:
                raise

    def freeze(self) -> Settings:
        """The immutable settings snapshot the node reads (`app.conf.freeze()`)."""
        return self.conf.freeze()

    def accept_content(self) -> frozenset[str]:
        return frozenset(self.conf.accept_content)

    def _settings_changed(self) -> None:
        with self._lock:
            self._stack = None
            self._router = None
            self._result_cache = None
            for task in self.tasks.values():
                self._annotate(task)

    def _annotate(self, task: Task) -> None:
        """Give a task the rate limit its route carries, then its annotations on top."""
        attrs: dict[str, Any] = {}
        route_rate = self.router.static_route(task.name).get("rate_limit")
        if route_rate is not None:
            attrs["rate_limit"] = route_rate
        attrs.update(annotations_for(task.name, annotation_list(self.conf.task_annotations)))
        if "rate_limit" in attrs:
            parse_rate(attrs["rate_limit"])  # a typo is a ConfigError now, not later
        task.annotate(attrs)

    @property
    def router(self) -> Router:
        routes = self.conf.task_routes
        with self._lock:
            if self._router is None or self._router[0] is not routes:
                self._router = (routes, Router(routes))
            return self._router[1]

    @property
    def control(self) -> Any:
        """`app.control`: remote control and inspection of the nodes (qmulti.control),
        made on first use so a producer that never controls imports none of it."""
        found = self.__dict__.get("_control")
        if found is None:
            from qmulti.control import Control

            found = self.__dict__["_control"] = Control(self)
        return found

    @property
    def result_cache(self) -> ResultCache:
        cache = self._result_cache
        if cache is not None:
            return cache
        with self._lock:
            if self._result_cache is None:
                self._result_cache = ResultCache(self.conf.result_cache_max)
            return self._result_cache

    @property
    def events(self) -> Any:
        """Celery's `app.events`: `Receiver`, `State` and our `reader` (qmulti.events)."""
        from qmulti.events import Events

        return Events(self)

    # -- hooks (worker/middleware.py, worker/signals.py) ------------------------------------
    def add_middleware(self, middleware: Any) -> Middleware:
        """Install a middleware (instance, class or dotted path) after the `middleware`
        setting's; a wrong one raises ConfigError here."""
        with self._lock:
            obj = self._hooks.add(middleware)
            self._stack = None
        return obj

    @property
    def middleware(self) -> Stack:
        """The installed middleware, built-in signals first; rebuilt when the settings,
        `add_middleware` or any signal's receivers change. Raises ConfigError for a
        `middleware` setting entry that cannot be loaded."""
        stack = self._stack
        if stack is None or stack.stamp != Signal.changes:
            if self._finalized != (True, True):
                self.finalize()  # the first use of the app's settings (Celery's first read)
            stamp = Signal.changes  # before what it covers: a race rebuilds, never misses
            built_in = [SignalsMiddleware(), SentEvents(self.conf.task_send_sent_event)]
            stack = self._hooks.build(built_in, self.conf.middleware, stamp)
            self._stack = stack
        return stack

    def finalize(self, auto: bool = False) -> None:
        """Send `on_after_configure` (sender=app, source=conf), then `on_after_finalize`,
        once each. The node calls this after loading the app and its imports, before it
        reads its options; a producer, at its first broker connection."""
        with self._lock:
            configured, finalized = self._finalized
            self._finalized = (True, True)
        if not configured:
            self.on_after_configure.send(sender=self, source=self.conf)
        if not finalized:
            self.on_after_finalize.send(sender=self)

    # -- tasks -----------------------------------------------------------------------------
    def task(self, *args: Any, **options: Any) -> Any:
        """`@app.task` or `@app.task(name=..., bind=..., queue=..., ...)`; see worker.task.

        The default name is `module.qualname`; for a task defined in a script run as
        `__main__` it is `<app main>.qualname`, so producer and node agree on it."""
        if len(args) == 1 and callable(args[0]) and not options:
            return self._register(args[0])
        if args:
            raise TypeError("use @app.task or @app.task(option=value, ...)")

        def decorator(fun: Callable[..., Any]) -> Task:
            return self._register(fun, **options)
        return decorator

    def _register(self, fun: Callable[..., Any], name: str | None = None,
                  base: type[Task] | None = None, **options: Any) -> Task:
        if name is None:
            module = fun.__module__
            if module == "__main__" and self.main:
                module = self.main
            name = f"{module}.{fun.__qualname__}"
        if options.get("rate_limit") is not None:
            parse_rate(options["rate_limit"])
        if options.get("pydantic"):
            from qmulti.pydantic_args import wrap

            fun = wrap(fun, name, bool(options.get("pydantic_strict")),
                       options.get("pydantic_context"), options.get("pydantic_dump_kwargs"))
        cls = base or self.task_cls
        task = cls(fun, self, name, **options)
        with self._lock:
            self.tasks[name] = task
            self._annotate(task)
        return task

    def add_periodic_task(self, schedule: Any, sig: Any, args: Any = (), kwargs: Any = (),
                          name: str | None = None, **opts: Any) -> str:
        """Add an entry to `beat_schedule`, as Celery's method does: `sig` is a signature
        (its args, kwargs and options are used) or a task name; returns the entry name."""
        from qmulti.canvas import Signature, signature

        if not isinstance(sig, Signature):
            sig = signature(getattr(sig, "name", sig), args or (), dict(kwargs or {}),
                            app=self)
        entry = {"task": sig.name, "schedule": schedule, "args": sig.args,
                 "kwargs": sig.kwargs, "options": {**sig.options, **opts}}
        key = name or repr(sig)
        self.conf.beat_schedule = {**self.conf.beat_schedule, key: entry}
        return key

    def AsyncResult(self, task_id: str, task_name: str | None = None) -> AsyncResult:  # noqa: N802
        return AsyncResult(task_id, app=self, task_name=task_name)

    # -- the node --------------------------------------------------------------------------
    def import_default_modules(self) -> list[str]:
        """Import `imports` and `include`, then run the `autodiscover_tasks` requests (the
        node calls this at start), so their tasks are registered. Framework fix-ups come
        first (Django: `django.setup()`, so models import). A listed module that does not
        exist is a ConfigError (exit 78)."""
        from qmulti import fixups, imports
        from qmulti.canvas import register_builtins

        register_builtins(self)  # the tasks map/starmap/chunks messages name
        self.fixups = fixups.active()
        for fixup in self.fixups:
            fixup.on_import_modules()
        names = imports.import_listed([*self.conf.imports, *self.conf.include])
        return names + imports.pending_discovery(self._discovery)

    def autodiscover_tasks(self, packages: Any = None, related_name: str | None = "tasks",
                           force: bool = False) -> list[str] | None:
        """Import `<package>.tasks` for each package (a list, or a callable returning
        one; none given: Django's installed apps) when the node starts, or now with
        `force=True` (returning the modules imported)."""
        from qmulti import imports

        if force:
            return imports.discover(packages, related_name)
        self._discovery.append((packages, related_name))
        return None

    def start(self, argv: list[str] | None = None) -> Any:
        """Run the `qworker` command line for this app (`app.start()` in a celery.py).

        `argv` excludes the program name (default: `sys.argv[1:]`); a leading `worker`
        (Celery's sub-command) is dropped so `python -m proj.celery worker -l info` works."""
        # The node is the API's plug-in, looked up by name when it is run: the API's
        # import graph never reaches the runtime (tests/worker/test_layout.py).
        main = importlib.import_module("qmulti.node.cli").main
        args = list(sys.argv[1:] if argv is None else argv)
        if args[:1] == ["worker"]:
            args = args[1:]
        return main(args, app=self)

    def worker_main(self, argv: list[str] | None = None) -> Any:
        """Celery's name for `start`."""
        return self.start(argv)

    def set_current(self) -> None:
        """Make this the app `current_app` and `shared_task` use in this thread."""
        appstate.set_current(self)

    def set_default(self) -> None:
        """Make this the app every thread falls back to."""
        appstate.set_default(self)

    def __repr__(self) -> str:
        return f"<App {self.main or '__main__'}: {len(self.tasks)} tasks>"


Celery = App  # `from qmulti import Celery` in code written for Celery: the same class
appstate.set_app_class(App)
current_app = appstate.current_app
shared_task = appstate.shared_task
