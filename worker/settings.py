"""The one table of settings: new name, old (Celery 3) name, default, coercion.

Every setting name the package knows lives here and nowhere else, so that reading a
config module, `conf.update`, the unknown-name warning, the conflict check and the
frozen snapshot the node reads all agree. Coercion happens when a value is set, so a
wrong type fails at configuration time with the setting's name, not deep inside the
node at the first task.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType
from typing import Any

from qmulti.exceptions import ConfigError, SerializationError
from qmulti.protocol import normalize_content_type
from qmulti.urls import DEFAULT_BROKER_URL

Coerce = Callable[[Any], Any]


@dataclass(frozen=True)
class Setting:
    """One row of the table. `env` names an environment variable that overrides the
    value wherever it was set, so secrets can live in an env file, not a command line."""

    name: str  # the Celery 4+ lower-case name: the canonical key
    old: str | None  # the Celery 3 upper-case name, if there was one
    default: Any
    coerce: Coerce
    env: str | None = None

    @property
    def spellings(self) -> tuple[str, ...]:
        """Every key that names this setting. The upper-cased new name is accepted too,
        because Django-style configs (`namespace='CELERY'`) spell settings that way."""
        names = [self.name]
        if self.old:
            names.append(self.old)
        if self.name.upper() not in names:
            names.append(self.name.upper())
        # Flask projects keep Celery's settings in their own config as CELERY_<NAME>
        # (the Django namespace's spelling) and pass it all to `conf.update`.
        prefixed = "CELERY_" + self.name.upper()
        if prefixed not in names:
            names.append(prefixed)
        return tuple(names)

    def label(self) -> str:
        return f"{self.name} ({self.old})" if self.old else self.name


# ---- coercions: each returns the stored value or raises ValueError/TypeError -----------

def _any(value: Any) -> Any:
    return value


def _opt_str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"expected a non-empty string, got {value!r}")
    return value


def _bool(value: Any) -> bool:
    if isinstance(value, str):  # values read from env files or ini-style configs
        low = value.strip().lower()
        if low in {"1", "true", "yes", "on"}:
            return True
        if low in {"0", "false", "no", "off", ""}:
            return False
        raise ValueError(f"expected a boolean, got {value!r}")
    return bool(value)


def _names(value: Any) -> tuple[str, ...]:
    """Module lists: a single string is one module (a classic typo source otherwise)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    items = tuple(value)
    if not all(isinstance(item, str) for item in items):
        raise TypeError(f"expected module names (strings), got {value!r}")
    return items


def _serializer(value: Any) -> str:
    try:
        return normalize_content_type(_str(value))
    except SerializationError as exc:
        raise ValueError(str(exc)) from None


def _content_types(value: Any) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else tuple(value)
    try:
        return tuple(dict.fromkeys(normalize_content_type(_str(n)) for n in names))
    except SerializationError as exc:
        raise ValueError(str(exc)) from None


def _number(value: Any, *, integer: bool, minimum: float) -> Any:
    if isinstance(value, str):
        value = value.strip()
        value = int(value) if integer else float(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"expected a number, got {value!r}")
    if integer and int(value) != value:
        raise ValueError(f"expected a whole number, got {value!r}")
    if value < minimum:
        raise ValueError(f"expected a value >= {minimum:g}, got {value!r}")
    return int(value) if integer else float(value)


def _int_min(minimum: int, optional: bool = False) -> Coerce:
    def coerce(value: Any) -> int | None:
        if optional and value in (None, ""):
            return None
        return _number(value, integer=True, minimum=minimum)
    return coerce


def _seconds(optional: bool) -> Coerce:
    """Seconds as a float; a timedelta is accepted as Celery accepts it."""
    def coerce(value: Any) -> float | None:
        if optional and value in (None, ""):
            return None
        if isinstance(value, timedelta):
            value = value.total_seconds()
        return _number(value, integer=False, minimum=0)
    return coerce


def _positive_seconds_or_none(value: Any) -> float | None:
    seconds = _seconds(True)(value)
    return None if not seconds else seconds  # 0 means "no limit", as on Celery's CLI


def _prefetch(value: Any) -> int:
    count = _number(value, integer=True, minimum=0)
    if count == 0:
        raise ValueError("0 (unlimited prefetch) is not supported: a node holds at most "
                         "concurrency x multiplier tasks; use 1 or more")
    return count


def _routes(value: Any) -> Any:
    """A mapping, a router callable, or a list/tuple of those; validated by worker.routing."""
    if value is None:
        return ()
    if isinstance(value, Mapping) or callable(value):
        return (value,)
    if isinstance(value, (list, tuple)) and all(
            isinstance(v, Mapping) or callable(v) for v in value):
        return tuple(value)
    raise TypeError(f"expected a dict, a router function or a list of them, got {value!r}")


def annotation_list(value: Any) -> tuple[Mapping[str, Any], ...]:
    """The annotations as a sequence of dicts, however they were given."""
    if value is None:
        return ()
    return (value,) if isinstance(value, Mapping) else tuple(value)


def _annotations(value: Any) -> Any:
    """Validated, and kept as given: `conf.task_annotations` reads back what was set."""
    items = value if isinstance(value, (list, tuple)) else (value,)
    if value is None or all(isinstance(v, Mapping) for v in items):
        for ann in annotation_list(value):
            for key, attrs in ann.items():
                if not isinstance(attrs, Mapping):
                    raise TypeError(f"annotation for {key!r} must be a dict of task "
                                    f"attributes, got {attrs!r}")
        return value
    raise TypeError(f"expected a dict {{task name or '*': {{attr: value}}}} or a list of "
                    f"them, got {value!r}")


def _middleware(value: Any) -> tuple[Any, ...]:
    """Middleware instances, classes or dotted paths; loaded (and checked) when the app
    first needs them (worker/middleware.py), since a path may name the project itself."""
    if value is None:
        return ()
    items = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    for item in items:
        if isinstance(item, str) and not item.strip():
            raise ValueError("an empty middleware path")
    return items


def _mapping(value: Any) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a dict, got {value!r}")
    return dict(value)


_S = Setting
TABLE: tuple[Setting, ...] = (
    # -- connections ----------------------------------------------------------------
    _S("broker_url", "BROKER_URL", DEFAULT_BROKER_URL, _opt_str, env="QMULTI_BROKER_URL"),
    _S("result_backend", "CELERY_RESULT_BACKEND", None, _opt_str, env="QMULTI_RESULT_BACKEND"),
    _S("broker_pool_limit", "BROKER_POOL_LIMIT", 10, _int_min(0, optional=True)),
    _S("broker_connection_timeout", "BROKER_CONNECTION_TIMEOUT", 4.0, _seconds(False)),
    _S("broker_transport_options", "BROKER_TRANSPORT_OPTIONS", {}, _mapping),
    _S("broker_max_deliveries", None, 5, _int_min(1)),
    # -- modules the node imports at start --------------------------------------------
    _S("imports", "CELERY_IMPORTS", (), _names),
    _S("include", "CELERY_INCLUDE", (), _names),
    # -- serialization ----------------------------------------------------------------
    _S("task_serializer", "CELERY_TASK_SERIALIZER", "json", _serializer),
    _S("result_serializer", "CELERY_RESULT_SERIALIZER", "json", _serializer),
    _S("accept_content", "CELERY_ACCEPT_CONTENT", ("json",), _content_types),
    # -- time -------------------------------------------------------------------------
    _S("timezone", "CELERY_TIMEZONE", None, _opt_str),
    _S("enable_utc", "CELERY_ENABLE_UTC", True, _bool),
    # -- tasks ------------------------------------------------------------------------
    _S("task_routes", "CELERY_ROUTES", (), _routes),
    _S("task_annotations", "CELERY_ANNOTATIONS", None, _annotations),
    _S("task_default_queue", "CELERY_DEFAULT_QUEUE", "celery", _str),
    _S("task_default_rate_limit", "CELERY_DEFAULT_RATE_LIMIT", None, _opt_str),
    _S("task_acks_late", "CELERY_ACKS_LATE", False, _bool),
    _S("task_ignore_result", "CELERY_IGNORE_RESULT", False, _bool),
    _S("task_track_started", "CELERY_TRACK_STARTED", True, _bool),  # always tracked
    _S("task_store_errors_even_if_ignored", "CELERY_STORE_ERRORS_EVEN_IF_IGNORED", False,
       _bool),
    _S("task_always_eager", "CELERY_ALWAYS_EAGER", False, _bool),
    _S("task_eager_propagates", "CELERY_EAGER_PROPAGATES_EXCEPTIONS", False, _bool),
    _S("task_time_limit", "CELERYD_TASK_TIME_LIMIT", None, _positive_seconds_or_none),
    _S("task_soft_time_limit", "CELERYD_TASK_SOFT_TIME_LIMIT", None, _positive_seconds_or_none),
    # -- results ----------------------------------------------------------------------
    _S("result_expires", "CELERY_TASK_RESULT_EXPIRES", 86400.0, _seconds(True)),
    _S("result_cache_max", "CELERY_MAX_CACHED_RESULTS", 100, _int_min(-1, optional=True)),
    _S("result_extended", "CELERY_RESULT_EXTENDED", False, _bool),
    # -- extension points (worker/middleware.py) ----------------------------------------
    _S("middleware", None, (), _middleware),
    # -- the node ---------------------------------------------------------------------
    _S("worker_concurrency", "CELERYD_CONCURRENCY", None, _int_min(1, optional=True)),
    _S("worker_prefetch_multiplier", "CELERYD_PREFETCH_MULTIPLIER", 4, _prefetch),
    _S("worker_max_tasks_per_child", "CELERYD_MAX_TASKS_PER_CHILD", None,
       _int_min(1, optional=True)),
    _S("worker_max_memory_per_child", "CELERYD_MAX_MEMORY_PER_CHILD", None,  # KiB
       _int_min(1, optional=True)),
    # -- periodic tasks (qmulti.node.beat) ----------------------------------------------
    _S("beat_schedule", "CELERYBEAT_SCHEDULE", {}, _mapping),
    _S("worker_heartbeat_interval", None, 2.0, _seconds(False)),
    _S("worker_heartbeat_expiry", None, 10.0, _seconds(False)),
    # -- events (qmulti.events): -E, the producer's task-sent, the stream's cap ---------------
    _S("worker_send_task_events", "CELERYD_SEND_EVENTS", False, _bool),
    _S("task_send_sent_event", "CELERY_SEND_TASK_SENT_EVENT", False, _bool),
    _S("event_stream_maxlen", None, 10_000, _int_min(1)),
)

BY_NAME: Mapping[str, Setting] = MappingProxyType({s.name: s for s in TABLE})
BY_SPELLING: Mapping[str, Setting] = MappingProxyType(
    {spelling: s for s in TABLE for spelling in s.spellings})

# The environment variables that override settings (see Setting.env), in table order.
ENV_VARS: tuple[str, ...] = tuple(s.env for s in TABLE if s.env)


def lookup(key: str) -> Setting | None:
    """The setting a key names in any accepted spelling, or None."""
    return BY_SPELLING.get(key)


def coerce(setting: Setting, value: Any, spelling: str | None = None) -> Any:
    """The value as stored, or a ConfigError naming the setting as the user spelled it."""
    try:
        return setting.coerce(value)
    except (TypeError, ValueError) as exc:
        shown = spelling or setting.name
        raise ConfigError(f"bad value for setting {shown}: {exc}") from None
