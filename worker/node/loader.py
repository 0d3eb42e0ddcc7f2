"""Find the app that `-A` names, as Celery does, so existing project layouts work as is.

Order, as Celery's `find_app`: `pkg.mod:attr`; `a.b` is attribute `b` of module `a`
when it has one, else module `a.b`; in a module, its `app`, then its `celery`, then
the same in the submodule `pkg.celery` (the tutorial's `mycelery/celery.py`), then
its only `App` instance.
An import error raised inside the user's own code is shown as such, never disguised
as "module not found", because that is the error users chase for hours.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from types import ModuleType
from typing import Any

from qmulti.exceptions import ConfigError


def _app_class() -> type:
    from qmulti.app import App

    return App


def load_app(spec: str) -> Any:
    """The App named by `spec`, with its `imports` imported."""
    spec = spec.strip()
    if not spec:
        raise ConfigError("-A needs a module name, for example -A proj or -A proj.app:app")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    modname, _, attr = spec.partition(":")
    if attr:
        app = _from_attr(import_module(modname, spec), attr, spec)
    else:
        found = _symbol(spec)
        if isinstance(found, ModuleType):
            app = _find_app(found, spec)
        else:
            app = _as_app(found, spec.rpartition(".")[2], spec)
    try:
        app.import_default_modules()
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"cannot import {exc.name!r} listed in the app's imports (CELERY_IMPORTS): "
            f"{exc}; fix the setting or the module name"
        ) from None
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"error while importing the app's imports: {_describe(exc)}"
        ) from None
    return app


def import_module(name: str, spec: str) -> ModuleType:
    """Import `name`, telling "no such module" apart from an error inside it."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (name == missing or name.startswith(missing + ".")):
            raise ConfigError(
                f"cannot import module {name!r} given by -A {spec}: No module named "
                f"{missing!r}; check the name and that the current directory is the "
                "project root"
            ) from None
        raise ConfigError(f"error while importing module {name!r}: {_describe(exc)}") from None
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"error while importing module {name!r}: {_describe(exc)}") from None


def _describe(exc: BaseException) -> str:
    """`Type: message (file:line)`, naming where in the user's code it was raised."""
    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    user = [f for f in frames if "importlib" not in f.filename]
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f" ({exc.filename}:{exc.lineno})"
    elif user:
        where = f" ({user[-1].filename}:{user[-1].lineno})"
    return f"{type(exc).__name__}: {exc}{where}"


def _from_attr(module: ModuleType, attr: str, spec: str) -> Any:
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(
                f"module {module.__name__!r} has no attribute {attr!r} (from -A {spec})"
            ) from None
    return _as_app(obj, attr, spec)


def _as_app(obj: Any, what: str, spec: str) -> Any:
    app_cls = _app_class()
    if not isinstance(obj, app_cls) and callable(obj) and not isinstance(obj, ModuleType):
        obj = obj()  # an app factory, as Celery allows
    if not isinstance(obj, app_cls):
        raise ConfigError(f"-A {spec}: {what} is a {type(obj).__name__}, not an App")
    return obj


def _symbol(spec: str) -> Any:
    """`a.b.c` as Celery's `symbol_by_name` reads it: attribute `c` of module `a.b` when
    that module has one (`-A app.celery` with `celery = Celery()` in app.py), else the
    module `a.b.c` itself."""
    head, _, tail = spec.rpartition(".")
    if head:
        try:
            module = import_module(head, spec)
        except ConfigError:
            module = None  # `head` is no module: then `spec` must be one (said below)
        if module is not None and tail in vars(module) and not isinstance(
                vars(module)[tail], ModuleType):
            return vars(module)[tail]
    return import_module(spec, spec)


def _attribute_app(module: ModuleType, name: str) -> Any | None:
    found = vars(module).get(name)
    return found if isinstance(found, _app_class()) else None


def _find_app(module: ModuleType, spec: str) -> Any:
    """Celery's `find_app` order: the module's `app`, then its `celery`, then (for a
    package) the same search in `<package>.celery`, then any App instance in it."""
    for name in ("app", "celery"):
        app = _attribute_app(module, name)
        if app is not None:
            return app
    name = module.__name__
    sub = f"{name}.celery"
    if hasattr(module, "__path__"):  # only a package has submodules
        try:
            submodule = importlib.import_module(sub)
        except ModuleNotFoundError as exc:
            if exc.name != sub:
                raise ConfigError(f"error while importing {sub!r}: {_describe(exc)}") from None
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(f"error while importing {sub!r}: {_describe(exc)}") from None
        else:
            for attr in ("app", "celery"):
                app = _attribute_app(submodule, attr)
                if app is not None:
                    return app
            apps = _instances(submodule)
            if len(apps) == 1:
                return apps[0]
    apps = _instances(module)
    if len(apps) == 1:
        return apps[0]
    several = f"{len(apps)} App instances" if apps else "no App instance"
    raise ConfigError(
        f"no app found in module {name!r} given by -A {spec}: looked for {name}.app, "
        f"{name}.celery, {sub}.app and a single App instance ({several}); name it with "
        f"-A {name}:attribute"
    )


def _instances(module: ModuleType) -> list[Any]:
    app_cls = _app_class()
    return list({id(v): v for v in vars(module).values() if isinstance(v, app_cls)}.values())
