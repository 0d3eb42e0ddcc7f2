"""`app.conf`: settings from config objects, explicit updates and the environment.

Precedence, lowest first (as Celery's, so a Celery user's expectations hold):

1. the table's defaults (`worker.settings_table`);
2. the object given to `config_from_object` (a second call replaces the first);
3. explicit values: `App(broker=..., **settings)`, `conf.update(...)`, `conf.x = ...`,
   in call order, whatever their order relative to `config_from_object`;
4. `QMULTI_BROKER_URL` / `QMULTI_RESULT_BACKEND` from the environment, read at each
   access, so an env file wins over anything in code.

Every change replaces `conf.generation`, an opaque token, so that the App can keep what
it derives from settings (a task's queue and content type, its connections) and check
with one identity test per `delay()` that nothing changed since. The environment is not
part of the token: `env_overrides()` gives the raw values to compare cheaply.

The node never reads this mutable object: it reads `conf.freeze()`, an immutable
`Settings` snapshot, so a setting cannot change under a running node.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType, ModuleType
from typing import Any

from qmulti.celery_names import is_celery_name
from qmulti.exceptions import ConfigError, ImproperlyConfigured
from qmulti.settings import (
    BY_NAME,
    BY_SPELLING,
    ENV_VARS,
    TABLE,
    Setting,
    coerce,
    lookup,
)
from qmulti.urls import mask_url

logger = logging.getLogger("qmulti.config")

_URL_SETTINGS = frozenset({"broker_url", "result_backend"})

# Settings in the table whose value asks for what qmulti never does: named in the
# warning rather than silently ignored. name -> (does this value ask for it?, why not)
INERT: dict[str, tuple[Callable[[Any], bool], str]] = {
    "task_acks_late": (lambda v: not v, "qmulti always acks after the result is stored"),
    "task_track_started": (lambda v: not v, "STARTED is always stored"),
}


class _Unsupported:
    """The Celery settings this process was given that have no effect here, named in one
    WARNING line (per process, not per app or per `conf.update`) when the first app
    connects or a node freezes its settings; a name given later gets a line of its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, str] = {}
        self._told: set[str] = set()

    def add(self, key: str, why: str) -> None:
        with self._lock:
            if key not in self._told:
                self._pending.setdefault(key, why)

    def report(self) -> None:
        if not self._pending:
            return
        with self._lock:
            pending, self._pending = self._pending, {}
            self._told.update(pending)
        if pending:
            names = ", ".join(f"{k} ({why})" if why else k for k, why in sorted(pending.items()))
            logger.warning("Celery settings without effect in qmulti, ignored: %s", names)


UNSUPPORTED = _Unsupported()


def _shown(setting: Setting, value: Any) -> str:
    """A value for an error message; URLs masked so a password never reaches a log."""
    if setting.name in _URL_SETTINGS and isinstance(value, str):
        return repr(mask_url(value))
    return repr(value)


class _Lookup:
    """Read access shared by the live `Config` and the frozen `Settings`: attributes and
    items, in any accepted spelling of a setting, plus unknown keys stored verbatim."""

    def _value(self, name: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _extra_value(self, key: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, key: str) -> Any:
        setting = lookup(key)
        if setting is not None:
            return self._value(setting.name)
        return self._extra_value(key)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"no setting named {key!r}") from None

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (key in BY_SPELLING or key in self._extras())

    def __iter__(self) -> Iterator[str]:
        yield from BY_NAME
        yield from self._extras()

    def __len__(self) -> int:
        return len(BY_NAME) + len(self._extras())

    def _extras(self) -> Mapping[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def items(self) -> Iterator[tuple[str, Any]]:
        return ((key, self[key]) for key in self)


class Settings(_Lookup):
    """An immutable snapshot of every setting (defaults filled in, environment applied).

    This is what the node and its pool children read; `Config.freeze()` makes one."""

    __slots__ = ("_data", "_extra")

    def __init__(self, data: Mapping[str, Any], extra: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_data", MappingProxyType(dict(data)))
        object.__setattr__(self, "_extra", MappingProxyType(dict(extra)))

    def _value(self, name: str) -> Any:
        return self._data[name]

    def _extra_value(self, key: str) -> Any:
        return self._extra[key]

    def _extras(self) -> Mapping[str, Any]:
        return self._extra

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("settings are frozen; change app.conf before the node starts")

    def __reduce__(self) -> tuple[Any, ...]:
        # The default protocol would restore through __setattr__, which refuses.
        return (Settings, (dict(self._data), dict(self._extra)))

    def __repr__(self) -> str:
        return f"<Settings broker_url={mask_url(str(self._data['broker_url']))!r}>"


class Config(_Lookup):
    """The live settings of one App (`app.conf`). `on_change` is called after every
    change, so the App can re-apply annotations and routes to its tasks."""

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        object.__setattr__(self, "_source", {})
        object.__setattr__(self, "_explicit", {})
        object.__setattr__(self, "_extra", {})
        object.__setattr__(self, "_warned", set())
        object.__setattr__(self, "_on_change", on_change)
        object.__setattr__(self, "_generation", object())

    # -- reading -------------------------------------------------------------------------
    @property
    def generation(self) -> object:
        """A token replaced by every change (`update`, `conf.x = ...`, `load_object`).

        Replaced after the change is made and before `on_change` runs, so a value read
        after fetching the token is never older than the token says."""
        return self._generation

    @staticmethod
    def env_overrides() -> tuple[str | None, ...]:
        """The raw environment overrides now; compare it to detect an env change."""
        return tuple(map(os.environ.get, ENV_VARS))

    def _value(self, name: str) -> Any:
        setting = BY_NAME[name]
        if setting.env:
            env_value = os.environ.get(setting.env)
            if env_value:
                return coerce(setting, env_value, setting.env)
        if name in self._explicit:
            return self._explicit[name]
        if name in self._source:
            return self._source[name]
        return setting.default

    def _extra_value(self, key: str) -> Any:
        return self._extra[key]

    def _extras(self) -> Mapping[str, Any]:
        return self._extra

    def freeze(self) -> Settings:
        """The snapshot the node reads: immutable, every setting present."""
        UNSUPPORTED.report()
        return Settings({s.name: self._value(s.name) for s in TABLE}, self._extra)

    def changed(self) -> dict[str, Any]:
        """Settings set explicitly or by the config object (not defaults), by new name."""
        return {**self._source, **self._explicit}

    # -- writing -------------------------------------------------------------------------
    def __setattr__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def update(self, mapping: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        """Set settings explicitly; keys in any spelling. Two spellings of one setting with
        different values in one call are an error: which one was meant is a guess."""
        pairs = list((mapping or {}).items()) + list(kwargs.items())
        values, extra = self._parse(pairs, "conf.update()")
        self._explicit.update(values)
        self._extra.update(extra)
        self._notify()

    def setdefault(self, key: str, value: Any) -> Any:
        """Set `key` only if nothing but the default sets it yet."""
        setting = lookup(key)
        is_set = setting.name in self.changed() if setting else key in self._extra
        if not is_set:
            self.update({key: value})
        return self[key]

    def load_object(self, obj: Any, namespace: str | None = None) -> None:
        """Replace the config-object layer with the settings found on `obj`.

        UPPER-case names are settings (an unknown one warns once); lower-case names are
        read only when they are known settings, so a config module's imports and helper
        functions are ignored. With `namespace='CELERY'` only `CELERY_*` names count,
        the prefix stripped (Django style)."""
        if isinstance(obj, str):
            obj = import_object(obj)
        what = _describe(obj)
        pairs: list[tuple[str, Any]] = []
        for key, value in _attributes(obj):
            if namespace:
                prefix = namespace.rstrip("_") + "_"
                if not key.upper().startswith(prefix.upper()):
                    continue
                key = key[len(prefix):]
            if key.isupper() or lookup(key) is not None or is_celery_name(key):
                pairs.append((key, value))
        values, extra = self._parse(pairs, what)
        object.__setattr__(self, "_source", values)
        self._extra.update(extra)
        self._notify()

    def _parse(self, pairs: list[tuple[str, Any]],
               what: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Coerce known settings, set aside unknown ones (with a warning), and refuse one
        setting spelled twice with different values."""
        values: dict[str, Any] = {}
        spelled: dict[str, str] = {}
        extra: dict[str, Any] = {}
        for key, raw in pairs:
            if not isinstance(key, str):
                raise ConfigError(f"setting names must be strings, got {key!r} in {what}")
            setting = lookup(key)
            if setting is None:
                self._warn_unknown(key, what)
                extra[key] = raw
                continue
            value = coerce(setting, raw, key)
            inert = INERT.get(setting.name)
            if inert is not None and inert[0](value):
                UNSUPPORTED.add(key, inert[1])
            if setting.name in values and values[setting.name] != value:
                first = spelled[setting.name]
                raise ConfigError(
                    f"setting {setting.name} given twice in {what} with different values: "
                    f"{first}={_shown(setting, values[setting.name])} and "
                    f"{key}={_shown(setting, value)}; keep one of them"
                )
            values[setting.name] = value
            spelled.setdefault(setting.name, key)
        return values, extra

    def _warn_unknown(self, key: str, what: str) -> None:
        """A Celery setting qmulti lacks (or a near miss of one it has) is named in the
        process's one warning (`report_unsupported`); any other name, quietly."""
        if key in self._warned:
            return
        self._warned.add(key)
        celery = is_celery_name(key)
        close = [] if key.isupper() and not celery else difflib.get_close_matches(
            key, list(BY_SPELLING), n=1, cutoff=0.8)
        if celery or close:
            UNSUPPORTED.add(key, f"did you mean {close[0]}?" if close else "")
        else:
            logger.debug("%s in %s is not a setting; ignored", key, what)

    def _notify(self) -> None:
        object.__setattr__(self, "_generation", object())
        if self._on_change is not None:
            self._on_change()

    def __repr__(self) -> str:
        return f"<Config broker_url={mask_url(str(self._value('broker_url')))!r}>"


def import_object(path: str) -> Any:
    """`'config'`, `'pkg.settings'`, `'pkg.mod:attr'` or `'pkg.mod.attr'` -> the object.

    A module that does not exist is a ConfigError (the node exits 78 with one line);
    an error raised while the module itself runs is the user's bug and propagates."""
    module_name, _, attr = path.partition(":")
    try:
        obj: Any = _import(module_name)
    except ModuleNotFoundError as exc:
        head, _, tail = module_name.rpartition(".")
        if attr or not head or exc.name != module_name:
            raise _not_found(path, exc) from None
        try:
            return getattr(_import(head), tail)
        except (ModuleNotFoundError, AttributeError):
            raise _not_found(path, exc) from None
    for part in filter(None, attr.split(".")):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImproperlyConfigured(
                f"cannot load configuration {path!r}: {module_name} has no attribute {part!r}"
            ) from None
    return obj


def _import(name: str) -> ModuleType:
    return importlib.import_module(name)


def _not_found(path: str, exc: ModuleNotFoundError) -> ImproperlyConfigured:
    missing = exc.name or path
    if missing == path.partition(":")[0] or path.startswith(missing + "."):
        return ImproperlyConfigured(
            f"cannot load configuration {path!r}: no module named {missing!r} "
            "(is its directory the current directory or on PYTHONPATH?)")
    # the config module exists but itself imports something missing
    return ImproperlyConfigured(f"cannot load configuration {path!r}: {exc}")


def _attributes(obj: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(obj, Mapping):
        yield from obj.items()
        return
    for key in dir(obj):
        if key.startswith("_"):
            continue
        try:
            yield key, getattr(obj, key)
        except AttributeError:  # a property that raises is not a setting
            continue


def _describe(obj: Any) -> str:
    if isinstance(obj, ModuleType):
        return f"module {obj.__name__}"
    if isinstance(obj, type):
        return f"class {obj.__qualname__}"
    if isinstance(obj, Mapping):
        return "config mapping"
    return f"config object {type(obj).__qualname__}"
