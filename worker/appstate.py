"""Which app is current, and the tasks declared with `shared_task` for every app.

This is the one piece of process-wide state the API keeps, because Celery's
`current_app` and `shared_task` are process-wide by definition: a reusable app module
(`@shared_task` in a Django app's tasks.py) must not name the project's App. As in
Celery, the last App made is current unless it was made with `set_as_current=False`
or another was chosen with `app.set_current()`; `app.set_default()` names the app a
thread falls back to. With no app at all, a default one is made on first use, with
the default settings (the embedded SQLite broker).

This module never imports `qmulti.app` (that would be an import cycle: app imports
this): app.py hands its class over with `set_app_class` when it is imported.
"""

from __future__ import annotations

import contextvars
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qmulti.app import App
    from qmulti.task import Task


class _State(threading.local):
    current: App | None = None


_lock = threading.RLock()
_thread = _State()
_default: App | None = None
_apps: weakref.WeakSet[App] = weakref.WeakSet()
_shared: list[tuple[Callable[..., Any], dict[str, Any]]] = []
# The request of the task running in this context (node or apply()), so that a task it
# sends gets it as parent, and `current_task` can name it. A ContextVar, not a global:
# the threads pool runs one task per thread.
running_request: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "qmulti.running_request", default=None)
_app_class: type[App] | None = None


def set_app_class(cls: type[App]) -> None:
    """Called once by qmulti.app at import: the class a default app is made from."""
    global _app_class
    _app_class = cls


def app_created(app: App, set_as_current: bool) -> None:
    """Called by `App.__init__`: the app gets every shared task declared so far."""
    with _lock:
        _apps.add(app)
        shared = list(_shared)
    for fun, options in shared:
        app._register(fun, **options)
    if set_as_current:
        set_current(app)


def set_current(app: App | None) -> None:
    _thread.current = app


def set_default(app: App | None) -> None:
    global _default
    _default = app


def get_current_app() -> App:
    """The current app: this thread's, else the default, else a new default app."""
    global _default
    app = _thread.current or _default
    if app is not None:
        return app
    with _lock:
        if _default is None:
            _default = _default_app_class()("default", set_as_current=False)
        return _default


def _default_app_class() -> type[App]:
    if _app_class is None:
        # nothing has imported qmulti.app yet (e.g. only `from qmulti import AsyncResult`):
        # the package's lazy export loads it by name, and its import registers the class
        import qmulti

        return qmulti.App
    return _app_class


def shared_task(*args: Any, **options: Any) -> Any:
    """`@shared_task` or `@shared_task(bind=True, ...)`: a task every app has, now and
    later. The returned object stands for the current app's task of that name, so
    `add.delay(...)` publishes through whichever app is current at the call."""
    if len(args) == 1 and callable(args[0]) and not options:
        return _share(args[0], {})
    if args:
        raise TypeError("use @shared_task or @shared_task(option=value, ...)")

    def decorator(fun: Callable[..., Any]) -> SharedTask:
        return _share(fun, options)
    return decorator


def _share(fun: Callable[..., Any], options: dict[str, Any]) -> SharedTask:
    with _lock:
        _shared.append((fun, options))
        apps = list(_apps)
    name = None
    for app in apps:
        try:
            name = app._register(fun, **options).name
        except Exception:  # noqa: BLE001 - that app's own settings are wrong (a bad
            # annotation): it raises when it uses the task, never in another app's import
            continue
    return SharedTask(fun, options, name)


class SharedTask:
    """Celery's task proxy: attribute access, calls and `isinstance(x, Task)`-style use go
    to the current app's task, registered there on first use if that app is new."""

    def __init__(self, fun: Callable[..., Any], options: dict[str, Any],
                 name: str | None) -> None:
        object.__setattr__(self, "_fun", fun)
        object.__setattr__(self, "_options", options)
        object.__setattr__(self, "_name", name)
        self.__wrapped__ = fun  # for inspect and pytest

    def _resolve(self) -> Task:
        app = get_current_app()
        name = self._name
        task = app.tasks.get(name) if name else None
        # getattr: a task's run may wrap the function (pydantic=True)
        if task is None or getattr(task.run, "__wrapped__", task.run) is not self._fun:
            task = app._register(self._fun, **self._options)
            object.__setattr__(self, "_name", task.name)
        return task

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._resolve(), attr)

    def __setattr__(self, attr: str, value: Any) -> None:
        setattr(self._resolve(), attr, value)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._resolve()(*args, **kwargs)

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # noqa: D105 - isinstance(proxy, Task) holds, as in Celery
        return type(self._resolve())

    def __repr__(self) -> str:
        return repr(self._resolve())


class CurrentApp:
    """`qmulti.current_app`: the current app, looked up at each use."""

    def __getattr__(self, attr: str) -> Any:
        return getattr(get_current_app(), attr)

    def __setattr__(self, attr: str, value: Any) -> None:
        setattr(get_current_app(), attr, value)

    def _get_current_object(self) -> App:
        """The app itself (Celery's proxy method of the same name)."""
        return get_current_app()

    def __repr__(self) -> str:
        return repr(get_current_app())

    def __eq__(self, other: object) -> bool:
        return get_current_app() is other or other is self

    def __hash__(self) -> int:
        return hash(get_current_app())


current_app = CurrentApp()


class CurrentTask:
    """`qmulti.current_task`: the task running in this context, or None-like (falsy)."""

    def _get_current_object(self) -> Task | None:
        request = running_request.get()
        if request is None or not request.task:
            return None
        return get_current_app().tasks.get(request.task)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._get_current_object(), attr)

    def __bool__(self) -> bool:
        return self._get_current_object() is not None

    def __repr__(self) -> str:
        return repr(self._get_current_object())


current_task = CurrentTask()
